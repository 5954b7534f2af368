"""The plant simulator is deterministic and its ground truth is additive and never negative."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from compute.model import NS_PER_S, Quality
from compute.plant import Plant
from ingest.simulator.model import PlantSimulator, load_shape
from ingest.source import opcua_quality

T0 = 1_795_000_000 * NS_PER_S


def test_same_seed_same_values_other_seed_other_values(plant: Plant) -> None:
    a, b, c = (PlantSimulator(plant, seed=s, start_ns=T0) for s in (1, 1, 2))
    key = "main-incomer.energy-import"
    t = T0 + 3600 * NS_PER_S
    assert a.value(key, t) == b.value(key, t) != c.value(key, t)
    assert a.value("cleanroom-a-env.temperature", t) == b.value("cleanroom-a-env.temperature", t)


def test_advance_is_additive_and_matches_counter_values(plant: Plant) -> None:
    sim = PlantSimulator(plant, seed=3, start_ns=T0)
    key = "line-1-meter.energy-import"
    t1, t2, t3 = T0 + 1_500_000_000, T0 + 61_250_000_000, T0 + 3_600 * NS_PER_S
    assert sim.advance(key, t1, t3) == pytest.approx(
        sim.advance(key, t1, t2) + sim.advance(key, t2, t3)
    )
    assert sim.value(key, t3) - sim.value(key, t1) == pytest.approx(sim.advance(key, t1, t3))
    assert sim.advance(key, t1, t3) > 0


def test_counters_only_grow(plant: Plant) -> None:
    sim = PlantSimulator(plant, seed=5, start_ns=T0)
    values = [sim.value("steam-gas.volume", T0 + i * 7 * NS_PER_S) for i in range(200)]
    assert all(b >= a for a, b in itertools.pairwise(values))


def test_weekday_days_are_busier_than_nights_and_weekends() -> None:
    import zoneinfo

    tz = zoneinfo.ZoneInfo("Asia/Shanghai")
    monday_noon = 1_795_406_400 * NS_PER_S  # 2026-11-23 04:00 UTC = 12:00 in Shanghai
    saturday_noon = monday_noon + 5 * 86400 * NS_PER_S
    night = monday_noon + 14 * 3600 * NS_PER_S
    shape = load_shape(np.array([monday_noon, saturday_noon, night]), tz)
    assert shape.tolist() == [1.0, 0.25, 0.0]


def test_opcua_status_severity_maps_to_quality() -> None:
    assert opcua_quality(0) is Quality.GOOD
    assert opcua_quality(0x40000000) is Quality.UNCERTAIN
    assert opcua_quality(0x80000000) is Quality.BAD
    assert opcua_quality(0x808B0000) is Quality.BAD

"""Shared pieces of the end-to-end tests: a test plant on free ports and the ground-truth check."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from compute.model import NS_PER_S
from compute.plant import ChannelKind, Plant
from ingest.simulator.model import PlantSimulator
from services.config import load_plant
from tests.harness import free_port

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "medtech-plant.yaml"
BUCKET_S = 10
BUCKET_NS = BUCKET_S * NS_PER_S


def plant_on_free_ports(tmp_path: Path) -> tuple[Plant, Path]:
    """The example plant on free ports, with the office meter a few Wh before its rollover."""
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    opcua, modbus = free_port(), free_port()
    for m in data["meters"]:
        m["endpoint"] = m["endpoint"].replace(":4840/", f":{opcua}/").replace(":5020", f":{modbus}")
        if m["id"] == "office-meter":
            m["channels"][0]["simulate"]["start"] = 42949672.96 - 0.04
    path = tmp_path / "plant.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_plant(path), path


SPAN_SQL = (
    "SELECT channel_id, min(ts_ns), max(ts_ns) FROM readings WHERE quality = 0 GROUP BY channel_id"
)


def window(plant: Plant, spans: list[tuple[str, int, int]]) -> tuple[int, int]:
    """Whole buckets inside every counter's stored good readings (rows of SPAN_SQL), so each
    total is the counter's advance between readings on both sides; on a loaded machine the
    first and last readings can lag the run's start and stop by seconds.
    """
    counters = {k for k, r in plant.channels.items() if r.channel.kind is ChannelKind.COUNTER}
    first = max(lo for key, lo, _ in spans if key in counters)
    last = min(hi for key, _, hi in spans if key in counters)
    a = -(-first // BUCKET_NS) * BUCKET_NS
    b = last // BUCKET_NS * BUCKET_NS
    assert b - a >= 2 * BUCKET_NS, "the run was too short for a two-bucket window"
    return a, b


def iso(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / NS_PER_S, UTC).isoformat()


def resolution(plant: Plant, key: str) -> float:
    """A counter's resolution: its register scale, or 1e-6 of a unit for floating-point values."""
    reg = plant.channels[key].channel.modbus
    return reg.scale if reg is not None else 1e-6


def assert_totals_match_ground_truth(
    plant: Plant, sim: PlantSimulator, totals: dict[str, Any], a_ns: int, b_ns: int
) -> None:
    """Per channel and per utility, served totals equal the simulator's advance to the resolution.

    Two resolution steps: the register truncates at both ends of the period.
    """
    served = {c["channel_id"]: c["total"] for c in totals["channels"]}
    counters = [k for k, r in plant.channels.items() if r.channel.kind is ChannelKind.COUNTER]
    assert set(served) == set(counters)
    for key in counters:
        truth = sim.advance(key, a_ns, b_ns)
        assert truth > 0 or key.startswith("line-1-plc")
        assert abs(served[key] - truth) <= 2 * resolution(plant, key), (key, served[key], truth)
    for u in totals["utilities"]:
        truth = sum(sim.advance(k, a_ns, b_ns) for k in u["channels"])
        res = sum(2 * resolution(plant, k) for k in u["channels"])
        assert abs(u["total"] - truth) <= res, (u, truth)
        assert all(plant.channels[k].meter.parent is None for k in u["channels"])

"""GET /v1/live's one-pass rendering gives what the LiveValue response model describes."""

from __future__ import annotations

import json
import zoneinfo

from compute.model import NS_PER_S, Quality
from compute.plant import Plant
from services.api import LiveValue
from services.live_values import LiveValues
from services.store import Latest

NOW_NS = 1_795_406_400 * NS_PER_S


def test_values_quality_age_and_times(plant: Plant) -> None:
    zones = {s.id: zoneinfo.ZoneInfo(s.timezone) for s in plant.sites}
    first, second, third, *rest = plant.channels
    latest = [
        Latest(
            channel_id=first,
            ts_ns=NOW_NS - 1_500_000_000,
            value=1.25,
            quality=int(Quality.GOOD),
            receive_ts_ns=0,
        ),
        Latest(
            channel_id=second,
            ts_ns=NOW_NS - 3600 * NS_PER_S,
            value=2.0,
            quality=int(Quality.GOOD),
            receive_ts_ns=0,
        ),
        Latest(
            channel_id=third,
            ts_ns=NOW_NS,
            value=float("nan"),
            quality=int(Quality.BAD),
            receive_ts_ns=0,
        ),
    ]
    body = LiveValues(plant, zones, 5).render(latest, NOW_NS, site=None, covers=lambda s: True)
    got = {x["channel_id"]: x for x in json.loads(body)}
    assert list(got) == list(plant.channels)
    for x in got.values():
        LiveValue.model_validate(x)
    assert got[first]["value"] == 1.25 and got[first]["quality"] == "good"
    assert got[first]["age_s"] == 1.5
    assert got[first]["ts"] == "2026-11-23T11:59:58.500000+08:00"  # the site's zone, as pydantic
    assert got[second]["quality"] == "stale"
    assert got[third]["value"] is None and got[third]["quality"] == "bad"
    assert all(got[k]["quality"] == "missing" and got[k]["ts"] is None for k in rest)
    none = LiveValues(plant, zones, 5).render(latest, NOW_NS, site=None, covers=lambda s: False)
    assert json.loads(none) == []

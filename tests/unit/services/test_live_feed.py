"""The live feed: latest values with quality and cleanroom status from the store, site figures
(power, today against yesterday), rolling figures from the metrics topic, alerts from a topic."""

from __future__ import annotations

import json
import zoneinfo
from pathlib import Path

import pytest

from compute import codec
from compute.model import NS_PER_S, Quality, ReadingBatch
from compute.plant import Plant
from services.aggregator import Aggregator
from services.bus import Message
from services.bus.memory import MemoryBus
from services.live_feed import FeedSettings, LiveFeed
from services.live_hub import LiveHub
from services.live_site import day_bounds
from services.store.sqlite import SqliteStore

T0 = 1_795_406_400 * NS_PER_S  # 2026-11-23 12:00 in Shanghai
KW = 100.0  # the incomer's load


def _messages() -> list[Message]:
    energy = [
        ("main-incomer.energy-import", T0 + t * NS_PER_S, 1000.0 + t * KW / 3600, Quality.GOOD)
        for t in range(181)
    ]
    room = [
        (f"cleanroom-a-env.{c}", T0 + t * NS_PER_S, v, Quality.GOOD)
        for t in range(181)
        for c, v in (("pressure-diff", 8.0), ("temperature", 21.5), ("humidity", 46.0))
    ]
    batches = [
        ReadingBatch.from_rows(meter_id="main-incomer", receive_ts_ns=T0, rows=energy),
        ReadingBatch.from_rows(meter_id="cleanroom-a-env", receive_ts_ns=T0, rows=room),
    ]
    return [
        Message(topic="t", partition=0, offset=i, key=b"m", value=codec.encode(b))
        for i, b in enumerate(batches)
    ]


def _data(hub: LiveHub, key: str) -> dict[str, object]:
    got: dict[str, object] = json.loads(hub.state[key].json)
    return got


async def test_the_feed_publishes_values_sites_and_rolling_figures(
    plant: Plant, tmp_path: Path
) -> None:
    now_ns = T0 + 182 * NS_PER_S
    async with SqliteStore(tmp_path / "s.sqlite3") as store:
        agg = Aggregator(plant, MemoryBus(), store, group="g", clock_ns=lambda: now_ns)
        await agg.handle(_messages())
        hub = LiveHub()
        feed = LiveFeed(plant, store, hub, FeedSettings(bucket_s=60), clock_ns=lambda: now_ns)

        await feed.refresh_latest()
        dp = _data(hub, "channel:cleanroom-a-env.pressure-diff")
        assert dp["value"] == 8.0 and dp["quality"] == "good" and dp["age_s"] == 2.0
        assert dp["status"] == "red"  # under the 10 Pa action limit
        assert _data(hub, "channel:cleanroom-a-env.temperature")["status"] == "green"
        assert _data(hub, "channel:cleanroom-a-env.humidity")["status"] == "amber"  # < 47 %RH
        assert _data(hub, "channel:cleanroom-a-env.particles-5um")["status"] == "unknown"
        assert _data(hub, "channel:steam-gas.volume")["quality"] == "missing"
        assert feed.publish_channels() == 0  # nothing changed: nothing sent again

        await feed.refresh_sites()
        site = _data(hub, "site:suzhou")
        utilities = site["utilities"]
        assert isinstance(utilities, dict)
        power = utilities["electricity"]
        assert power["rate_per_h"] == pytest.approx(KW, rel=0.02)  # kW over the bucket [60, 120)
        assert power["today"] == pytest.approx(180 * KW / 3600, rel=0.02)
        assert power["yesterday_same_time"] is None and power["yesterday"] is None  # no data
        assert utilities["natural_gas"]["rate_per_h"] is None and site["rolling"] is None

        snapshot = agg.live.snapshot(now_ns)
        feed.on_metrics(Message(topic="m", partition=0, offset=0, key=b"g", value=snapshot))
        figures = _data(hub, "channel:main-incomer.energy-import")["figures"]
        assert isinstance(figures, dict)
        assert [w["window_s"] for w in figures["windows"]] == [900, 3600, 86400]
        rolling = _data(hub, "site:suzhou")["rolling"]
        assert isinstance(rolling, list) and rolling[0]["window_s"] == 900
        assert power["today"] == _data(hub, "site:suzhou")["utilities"]["electricity"]["today"]  # type: ignore[index]

        old = json.loads(snapshot) | {"ts_ns": now_ns - 3600 * NS_PER_S}
        before = hub.state["site:suzhou"].seq
        feed.on_metrics(
            Message(topic="m", partition=0, offset=1, key=b"g", value=json.dumps(old).encode())
        )
        assert hub.state["site:suzhou"].seq == before  # a replayed, old snapshot is skipped

        alert = {
            "id": "a1",
            "site": "suzhou",
            "state": "active",
            "severity": "action",
            "message": "Δp below 10 Pa",
            "ts_ns": now_ns,
            "channel_id": "cleanroom-a-env.pressure-diff",
        }
        feed.on_alert(
            Message(topic="a", partition=0, offset=0, key=b"a1", value=json.dumps(alert).encode())
        )
        assert [json.loads(e.json)["message"] for e in hub.active_alerts()] == ["Δp below 10 Pa"]


def test_yesterday_runs_to_the_same_wall_clock_time_across_dst() -> None:
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    # 2026-10-26 09:30 CET; yesterday (25 October) had 25 hours
    now_ns = 1_793_003_400 * NS_PER_S
    b = day_bounds(now_ns, berlin)
    assert (b.today_start_ns - b.yesterday_start_ns) // NS_PER_S == 25 * 3600
    assert (b.yesterday_same_time_ns - b.yesterday_start_ns) // NS_PER_S == 10 * 3600 + 1800
    assert (now_ns - b.today_start_ns) // NS_PER_S == 9 * 3600 + 1800

"""The aggregator on MemoryBus and SqliteStore: bad messages go to the DLQ with their reason and
consumption goes on; a crash between the store commit and the bus commit counts nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from random import Random
from typing import Any

import pytest

from compute import codec
from compute.model import NS_PER_S, Quality, ReadingBatch
from compute.plant import Plant
from services.aggregator import Aggregator
from services.bus import Message
from services.bus.memory import MemoryBus, _Sub
from services.store.sqlite import SqliteStore

TOPIC = "plantpulse.readings"
KEY = "main-incomer.energy-import"


def _batch(t_s: int, value: float, channel: str = KEY) -> bytes:
    rows = [(channel, t_s * NS_PER_S, value, Quality.GOOD)]
    return codec.encode(ReadingBatch.from_rows(meter_id="main-incomer", receive_ts_ns=0, rows=rows))


async def _run_until_committed(agg: Aggregator, bus: MemoryBus) -> None:
    task = asyncio.create_task(agg.run())
    try:
        for _ in range(100):
            await asyncio.sleep(0.05)
            ends = [p.end for p in bus.partitions(TOPIC)]
            if bus.committed(TOPIC, agg.group) == ends:
                return
        raise AssertionError("not all messages were committed")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_bad_messages_go_to_the_dlq_with_a_reason_and_good_ones_flow(
    plant: Plant, tmp_path: Path
) -> None:
    bus = MemoryBus()
    await bus.publish(TOPIC, b"main-incomer", _batch(0, 100.0))
    await bus.publish(TOPIC, b"main-incomer", b"not a batch")
    await bus.publish(TOPIC, b"main-incomer", _batch(5, 101.0, channel="main-incomer.ghost"))
    await bus.publish(TOPIC, b"main-incomer", _batch(30, 102.5))
    async with SqliteStore(tmp_path / "s.sqlite3") as store:
        await _run_until_committed(Aggregator(plant, bus, store, group="g"), bus)
        totals = await store.totals([KEY], 0, 60 * NS_PER_S)
    assert totals[KEY].sum == pytest.approx(2.5)
    dlq = [m for p in bus.partitions(f"{TOPIC}.dlq") for m in p.log]
    reasons = sorted(dict(m.headers)["reason"].decode() for m in dlq)
    assert reasons[0].startswith("undecodable: bad magic")
    assert reasons[1].startswith("unknown channels ['main-incomer.ghost']")
    assert all(dict(m.headers)["source"].startswith(TOPIC.encode()) for m in dlq)


class _CommitFailsOnce(MemoryBus):
    """A bus whose first commit fails, as if the process died right after the store commit."""

    failed = False

    @contextlib.asynccontextmanager
    async def subscribe(self, topic: str, group: str) -> AsyncIterator[_Sub]:
        async with super().subscribe(topic, group) as sub:
            commit = sub.commit

            async def flaky(messages: Sequence[Message]) -> None:
                if not self.failed:
                    self.failed = True
                    raise OSError("connection to the bus lost")
                await commit(messages)

            sub.commit = flaky  # type: ignore[method-assign]
            yield sub


async def test_a_replay_after_the_store_committed_counts_nothing_twice(
    plant: Plant, tmp_path: Path
) -> None:
    bus = _CommitFailsOnce()
    for t_s, v in [(0, 100.0), (20, 101.0), (40, 103.0)]:
        await bus.publish(TOPIC, b"main-incomer", _batch(t_s, v))
    async with SqliteStore(tmp_path / "s.sqlite3") as store:
        await _run_until_committed(Aggregator(plant, bus, store, group="g", max_backoff_s=0.1), bus)
        total = (await store.totals([KEY], 0, 60 * NS_PER_S))[KEY]
    assert bus.failed
    assert (total.sum, total.n) == (pytest.approx(3.0), 3)


def _messages(polls: Sequence[Sequence[tuple[str, int, float]]]) -> list[Message]:
    """One message per poll of (channel, t_s, value) readings."""
    out = []
    for i, rows in enumerate(polls):
        batch = ReadingBatch.from_rows(
            meter_id="m",
            receive_ts_ns=0,
            rows=[(c, t * NS_PER_S, v, Quality.GOOD) for c, t, v in rows],
        )
        out.append(Message(topic=TOPIC, partition=0, offset=i, key=b"m", value=codec.encode(batch)))
    return out


GAUGE = "cleanroom-a-env.temperature"


async def _series_after(
    plant: Plant, path: Path, polls: list[Message], *, now_ns: int = 10**9 * 3600
) -> tuple[list[tuple[int, float, float, int]], list[tuple[int, int, float]]]:
    async with SqliteStore(path) as store:
        agg = Aggregator(plant, MemoryBus(), store, group="g", clock_ns=lambda: now_ns)
        for m in polls:
            await agg.handle([m])
        energy = await store.series(KEY, 0, 10 * 60 * NS_PER_S)
        gauge = await store.series(GAUGE, 0, 10 * 60 * NS_PER_S)
        revisions = await store.revisions(KEY, 0, 10 * 60 * NS_PER_S)
    rows = [(b.bucket_start_ns, round(b.sum, 9), round(b.estimated, 9), b.n) for b in energy]
    rows += [(b.bucket_start_ns, b.sum, b.max or 0.0, b.n) for b in gauge]
    return rows, revisions


async def test_late_readings_recount_their_buckets_to_what_in_order_delivery_gives(
    plant: Plant, tmp_path: Path
) -> None:
    readings = [(KEY, t, 100.0 + 0.5 * t) for t in range(0, 300, 10)]
    readings += [(GAUGE, t, 20.0 + (t % 7)) for t in range(0, 300, 10)]
    in_order = _messages([readings[i : i + 3] for i in range(0, len(readings), 3)])
    expected, _ = await _series_after(plant, tmp_path / "a.sqlite3", in_order)
    assert len(expected) == 5 + 5  # five minutes of energy and of temperature buckets
    for seed in range(5):
        shuffled = list(in_order) + in_order[seed::4]  # some redelivered
        Random(seed).shuffle(shuffled)
        got, _ = await _series_after(plant, tmp_path / f"s{seed}.sqlite3", shuffled)
        assert got == expected, f"seed {seed}"


async def test_a_late_reading_for_a_closed_bucket_is_recorded_as_a_restatement(
    plant: Plant, tmp_path: Path
) -> None:
    # 0 s and 170 s arrive first: 85 kWh over a gap, spread evenly (estimated); then 65 s
    # arrives and splits it: 10 kWh over (0, 65], 75 kWh over (65, 170]
    polls = _messages([[(KEY, 0, 100.0), (KEY, 170, 185.0)], [(KEY, 65, 110.0)]])
    got, revisions = await _series_after(plant, tmp_path / "s.sqlite3", polls)
    energy = got[:3]
    expected = [60 / 65 * 10, 5 / 65 * 10 + 55 / 105 * 75, 50 / 105 * 75]
    assert [s for _, s, _, _ in energy] == pytest.approx(expected)
    assert sum(s for _, s, _, _ in energy) == pytest.approx(85.0)  # the total never moves
    assert [b // NS_PER_S for b, _, _ in revisions] == [0, 60, 120]  # all closed an hour ago
    assert sum(d for _, _, d in revisions) == pytest.approx(0.0)


async def test_rolling_figures_are_published_and_survive_a_restart(
    plant: Plant, tmp_path: Path
) -> None:
    now_ns = 3600 * NS_PER_S
    # 2 kWh a minute for the last 20 minutes: the 15-min window holds 30 kWh, 120 kW
    readings = [(KEY, t, 1000.0 + 2.0 * (t - 2400) / 60) for t in range(2400, 3601, 30)]
    made = [("line-1-plc.units-made", t, 50.0 + (t - 2400) / 30) for t in range(2400, 3601, 30)]
    polls = _messages([readings[i : i + 4] + made[i : i + 4] for i in range(0, len(made), 4)])
    sites: list[Any] = []

    async def published(agg: Aggregator, bus: MemoryBus) -> dict[str, Any]:
        await agg.publish_live()
        (last,) = [p.log[-1] for p in bus.partitions("plantpulse.metrics") if p.log]
        message = json.loads(last.value)
        sites.append(message["sites"]["suzhou"])
        figures: dict[str, Any] = message["channels"][KEY]
        return figures

    async with SqliteStore(tmp_path / "s.sqlite3") as store:
        bus = MemoryBus()
        agg = Aggregator(plant, bus, store, group="g", clock_ns=lambda: now_ns)
        for m in polls:
            await agg.handle([m])
        first = await published(agg, bus)
        restarted = Aggregator(plant, bus, store, group="g", clock_ns=lambda: now_ns)
        await restarted.handle(_messages([[(KEY, 3610, 1000.0 + 2.0 * 1210 / 60)]]))
        again = await published(restarted, bus)
    quarter = next(w for w in first["windows"] if w["window_s"] == 900)
    assert quarter["end_ns"] == now_ns  # [45 min, 60 min): the minute from now on is open
    assert quarter["sum"] == pytest.approx(30.0, rel=1e-6)
    assert quarter["rate_per_h"] == pytest.approx(120.0, rel=1e-6)
    assert first["unit"] == "kWh" and "demand_month_max_kw" in first
    assert again["windows"] == first["windows"]  # rebuilt from the store's buckets
    electricity = sites[0][0]["utilities"]["electricity"]  # the 15-min window of the site
    assert electricity["total"]["value"] == pytest.approx(30.0, rel=1e-6)  # the incomer alone
    per_unit = electricity["per_unit_produced"]
    assert per_unit["value"] == pytest.approx(1.0, rel=1e-6)  # 30 kWh for 30 units
    assert per_unit["unit"] == "kWh/unit (units_produced)" and 0 < per_unit["coverage"] <= 1


async def test_a_crash_at_any_point_then_a_replay_converges_to_the_same_buckets(
    plant: Plant, tmp_path: Path
) -> None:
    readings = [(KEY, t, 100.0 + 0.7 * t + (t % 13)) for t in range(0, 600, 7)]
    readings += [(GAUGE, t, 20.0 + (t % 5)) for t in range(0, 600, 11)]
    readings.sort(key=lambda r: r[1])
    polls = _messages([readings[i : i + 5] for i in range(0, len(readings), 5)])
    expected, _ = await _series_after(plant, tmp_path / "clean.sqlite3", polls)
    for seed in range(4):
        rnd = Random(seed)
        delivered: list[Message] = []
        committed = 0
        for i in range(len(polls)):
            delivered.append(polls[i])
            if rnd.random() < 0.3:  # killed after the store commit, before the bus commit:
                delivered += polls[committed : i + 1]  # a new process replays from the commit
            if rnd.random() < 0.5:
                committed = i + 1
        got, _ = await _series_after(plant, tmp_path / f"crash{seed}.sqlite3", delivered)
        assert got == expected, f"seed {seed}"


async def test_late_data_restates_a_closed_day(plant: Plant, tmp_path: Path) -> None:
    day_ns = 86_400 * NS_PER_S
    now_ns = 2 * day_ns + 3600 * NS_PER_S  # day 1 closed long ago
    on_time = _messages([[(KEY, 86_400 + t, 500.0 + t / 60) for t in range(0, 86_400, 3600)]])
    # a logger export of day 1 arrives late: the readings between the hourly ones
    # (the line ran in the first half of each hour: 50 of its 60 kWh)
    late = _messages(
        [[(KEY, 86_400 + t, 500.0 + (t - 1800) / 60 + 50) for t in range(1800, 82_800, 3600)]]
    )
    async with SqliteStore(tmp_path / "s.sqlite3") as store:
        agg = Aggregator(plant, MemoryBus(), store, group="g", clock_ns=lambda: now_ns)
        await agg.handle(on_time)
        before = await store.series(KEY, day_ns, 2 * day_ns)
        await agg.handle(late)
        after = await store.series(KEY, day_ns, 2 * day_ns)
        revisions = await store.revisions(KEY, day_ns, 2 * day_ns)
    # the day's total stands (the counter at both ends decides it); its profile was estimated
    # (hourly readings of a 1 s meter are gaps) and the late readings re-split it
    assert sum(b.sum for b in after) == pytest.approx(sum(b.sum for b in before))
    assert [b.sum for b in after] != [b.sum for b in before]
    assert sum(b.estimated for b in before) > 0
    assert revisions and {at for _, at, _ in revisions} == {now_ns}  # restated now, traceably
    assert sum(b.n for b in after) == sum(b.n for b in before) + len(range(1800, 82_800, 3600))

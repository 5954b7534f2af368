"""The aggregator on MemoryBus and SqliteStore: bad messages go to the DLQ with their reason and
consumption goes on; a crash between the store commit and the bus commit counts nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

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

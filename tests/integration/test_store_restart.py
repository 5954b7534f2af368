"""The database restarted mid-ingest: the aggregator stops consuming while it is down, resumes by
itself when it is back, and every reading published meanwhile is stored exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import psycopg
import pytest

from compute import codec
from compute.model import NS_PER_S, Quality, ReadingBatch
from compute.plant import Plant
from services.aggregator import Aggregator
from services.bus.memory import MemoryBus
from services.store.timescale import TimescaleStore
from tests.harness.postgres import PostgresCluster

pytestmark = pytest.mark.postgres

TOPIC = "plantpulse.readings"
KEY = "main-incomer.energy-import"


def _stored(dsn: str) -> tuple[int, float]:
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        n, total = conn.execute(
            "SELECT (SELECT count(*) FROM readings), (SELECT coalesce(sum(sum), 0) FROM buckets)"
        ).fetchone() or (0, 0.0)
    return int(n), float(total)


async def test_a_database_restart_mid_ingest_loses_nothing(plant: Plant, tmp_path: Path) -> None:
    cluster = PostgresCluster(tmp_path / "pg", durable_commits=True)
    cluster.create()
    cluster.start()
    bus = MemoryBus()
    sent = 0

    async def publish(n: int) -> None:
        nonlocal sent
        for _ in range(n):
            rows = [(KEY, (sent + 1) * NS_PER_S, 1000.0 + 0.5 * sent, Quality.GOOD)]
            batch = ReadingBatch.from_rows(meter_id="main-incomer", receive_ts_ns=0, rows=rows)
            await bus.publish(TOPIC, b"main-incomer", codec.encode(batch))
            sent += 1
            await asyncio.sleep(0.01)

    try:
        async with TimescaleStore(cluster.dsn, timeout_s=2.0) as store:
            agg = Aggregator(plant, bus, store, group="g", max_backoff_s=0.5)
            task = asyncio.create_task(agg.run())
            try:
                await publish(100)
                cluster.stop()  # as a crash: immediate, no checkpoint
                await publish(100)  # the aggregator backs off; the bus keeps them
                stalled = bus.committed(TOPIC, "g")
                await asyncio.sleep(1.0)
                assert bus.committed(TOPIC, "g") == stalled  # nothing consumed while down
                cluster.start()
                await publish(100)
                deadline = time.monotonic() + 60
                while bus.committed(TOPIC, "g") != [p.end for p in bus.partitions(TOPIC)]:
                    assert time.monotonic() < deadline, "the aggregator did not resume"
                    await asyncio.sleep(0.2)
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        n, total = _stored(cluster.dsn)
        assert n == sent == 300
        assert total == pytest.approx(0.5 * (sent - 1))  # the counter's advance, counted once
    finally:
        cluster.remove()

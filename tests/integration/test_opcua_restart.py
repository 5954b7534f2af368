"""An OPC UA server restart mid-run: the source reconnects, re-creates its subscription and values
resume, with the outage visible as stale samples rather than silently missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

from compute.model import NS_PER_S, Quality, ReadingBatch
from compute.plant import Protocol
from ingest.opcua_source import OpcUaSource
from ingest.simulator.model import PlantSimulator
from ingest.simulator.servers import serve_opcua_endpoint
from tests.e2e.support import plant_on_free_ports


@contextlib.asynccontextmanager
async def _server(sim: PlantSimulator, endpoint: str) -> AsyncIterator[None]:
    task = asyncio.create_task(serve_opcua_endpoint(sim, endpoint))
    await asyncio.sleep(2.0)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_values_resume_after_a_server_restart(tmp_path: Path) -> None:
    plant, _ = plant_on_free_ports(tmp_path)
    sim = PlantSimulator(plant, seed=3, start_ns=time.time_ns())
    refs = [r for r in plant.channels.values() if r.meter.protocol is Protocol.OPCUA]
    endpoint = refs[0].meter.endpoint
    source = OpcUaSource(endpoint, refs, publish_interval_s=0.5, timeout_s=2.0, max_backoff_s=1.0)
    got: list[ReadingBatch] = []

    async def pump() -> None:
        async for batch in source.batches():
            got.append(batch)

    async def take(seconds: float) -> list[ReadingBatch]:
        start = len(got)
        await asyncio.sleep(seconds)
        return got[start:]

    task = asyncio.create_task(pump())
    try:
        async with _server(sim, endpoint):
            before = await take(4)
        down_ns = time.time_ns()
        during = await take(5)
        up_ns = time.time_ns()
        async with _server(sim, endpoint):
            after = await take(8)
    finally:
        task.cancel()

    def good(batches: list[ReadingBatch]) -> set[str]:
        return {
            b.channel_ids[i]
            for b in batches
            for i, q in zip(b.channel_index, b.quality, strict=True)
            if q == Quality.GOOD
        }

    keys = {r.key for r in refs}
    assert good(before) == keys
    assert good(after) == keys, "every channel resumes after the restart"
    resumed = [int(t) for b in after for t in b.ts_ns]
    assert min(resumed) >= up_ns - NS_PER_S
    stale = [
        (b.channel_ids[i], int(t))
        for b in during
        for i, t, q in zip(b.channel_index, b.ts_ns, b.quality, strict=True)
        if q == Quality.STALE
    ]
    assert {c for c, _ in stale} == keys, "the outage is marked, channel by channel"
    assert all(down_ns <= t <= up_ns + NS_PER_S for _, t in stale)

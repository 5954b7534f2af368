"""The embedded pipeline end to end: simulated plant -> gateway -> MemoryBus -> aggregator ->
SQLite -> API, with the aggregator killed and restarted mid-run.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import httpx

from compute import codec
from compute.model import NS_PER_S
from ingest.simulator.model import PlantSimulator
from ingest.simulator.servers import serve
from services.aggregator import Aggregator
from services.api import create_app
from services.bus.memory import MemoryBus
from services.gateway import run_gateway
from services.store.sqlite import SqliteStore
from tests.e2e.support import (
    BUCKET_S,
    SPAN_SQL,
    assert_totals_match_ground_truth,
    iso,
    plant_on_free_ports,
    window,
)
from tests.tokens import bearer, token_for

TOPIC = "plantpulse.readings"


async def _drained(bus: MemoryBus, group: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ends = [p.end for p in bus.partitions(TOPIC)]
        if bus.committed(TOPIC, group) == ends:
            return
        await asyncio.sleep(0.2)
    raise AssertionError("the aggregator did not catch up")


async def test_totals_equal_ground_truth_across_an_aggregator_restart(tmp_path: Path) -> None:
    plant, _ = plant_on_free_ports(tmp_path)
    sim = PlantSimulator(plant, seed=11, start_ns=time.time_ns())
    db = tmp_path / "store.sqlite3"
    async with serve(sim), MemoryBus() as bus, SqliteStore(db) as store:
        app = create_app(plant, store, bucket_s=BUCKET_S)
        transport = httpx.ASGITransport(app=app)
        headers = bearer(await token_for(store))
        api = httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers)

        def aggregator() -> asyncio.Task[None]:
            agg = Aggregator(plant, bus, store, group="agg", bucket_s=BUCKET_S)
            return asyncio.create_task(agg.run())

        bus.committed(TOPIC, "audit")  # a group that never commits keeps every message
        started_ns = time.time_ns()
        gateway = asyncio.create_task(run_gateway(plant, bus))
        agg = aggregator()
        await asyncio.sleep(14)
        agg.cancel()  # killed mid-stream; batches pile up uncommitted on the bus
        await asyncio.sleep(6)
        agg = aggregator()
        await asyncio.sleep(22)
        live = (await api.get("/v1/live")).json()
        gateway.cancel()
        done, _ = await asyncio.wait([gateway], timeout=15)  # no publish may land after this
        assert done, "the gateway did not stop within 15 s of being cancelled"
        stopped_ns = time.time_ns()
        await _drained(bus, "agg")
        agg.cancel()

        with sqlite3.connect(db) as conn:
            a, b = window(plant, conn.execute(SPAN_SQL).fetchall())
        params = {"start": iso(a), "end": iso(b)}
        totals = (await api.get("/v1/sites/suzhou/totals", params=params)).json()
        await api.aclose()

    assert_totals_match_ground_truth(plant, sim, totals, a, b)
    assert {c["channel_id"] for c in live} == set(plant.channels)
    assert all(c["quality"] == "good" and c["age_s"] < 30 for c in live)
    office = next(c for c in live if c["channel_id"] == "office-meter.energy-import")
    assert office["value"] < 100.0, "the office meter rolled over from 42,949,672.92 kWh"

    published = {
        (cid, int(ts))
        for part in bus.partitions(TOPIC)
        for m in part.log
        for batch in [codec.decode(m.value)]
        for cid, ts in zip(
            [batch.channel_ids[i] for i in batch.channel_index], batch.ts_ns, strict=True
        )
    }
    with sqlite3.connect(db) as conn:
        stored = set(conn.execute("SELECT channel_id, ts_ns FROM readings").fetchall())
        with_server_time = dict(
            conn.execute(
                "SELECT channel_id, max(server_ts_ns IS NOT NULL) FROM readings GROUP BY channel_id"
            ).fetchall()
        )
    assert with_server_time == {
        k: int(r.meter.protocol == "opcua") for k, r in plant.channels.items()
    }, "OPC UA readings keep the server's timestamp; Modbus has none"
    assert stored == published, "every published reading is stored exactly once"
    assert len(published) > 30 * len(plant.channels) * 0.8
    assert stopped_ns - started_ns > 40 * NS_PER_S

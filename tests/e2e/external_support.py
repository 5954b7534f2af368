"""The embedded pipeline for the external-data tests: MemoryBus -> aggregator -> SQLite -> API
with the bus as its producer, a small Shanghai plant, and "live" batches published as a gateway
publishes them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from compute import codec
from compute.model import NS_PER_S, Quality, ReadingBatch, datetime_ns
from compute.plant import Plant
from services.access import Role
from services.aggregator import Aggregator
from services.api import create_app
from services.bus.memory import MemoryBus
from services.store.sqlite import SqliteStore
from tests.plants import meter, one_site
from tests.tokens import bearer, token_for

TOPIC = "plantpulse.readings"
TZ = ZoneInfo("Asia/Shanghai")
DAY_S = 86_400


def local_ns(text: str) -> int:
    """A site-local time "2026-03-10T08:00" in ns."""
    return datetime_ns(datetime.fromisoformat(text).replace(tzinfo=TZ))


def plant(replacements: Sequence[dict[str, Any]] = ()) -> Plant:
    """main.energy (kWh) and main.temp (a gauge) on one meter, gasm.volume (m3) on another;
    polled every minute."""
    energy = {
        "id": "energy",
        "unit": "kWh",
        "kind": "counter",
        "utility": "electricity",
        "node_id": "ns=2;s=e",
        "replacements": list(replacements),
    }
    temp = {"id": "temp", "unit": "C", "kind": "gauge", "utility": "environment", "node_id": "t"}
    gas = {
        "id": "volume",
        "unit": "m3",
        "kind": "counter",
        "utility": "natural_gas",
        "node_id": "g",
    }
    return one_site(
        [
            meter("main", "opcua", "opc.tcp://h:4840", [energy, temp], interval_s=60),
            meter("gasm", "opcua", "opc.tcp://h:4840", [gas], interval_s=60),
        ],
        timezone="Asia/Shanghai",
    )


@dataclass
class Pipeline:
    bus: MemoryBus
    store: SqliteStore
    api: httpx.AsyncClient  # an engineer's token
    viewer: dict[str, str]  # a viewer's headers

    def published(self) -> list[int]:
        return [p.end for p in self.bus.partitions(TOPIC)]

    async def live(self, meter_id: str, rows: Sequence[tuple[str, int, float]]) -> None:
        """Publish readings as the gateway does: one batch, keyed by the meter."""
        batch = ReadingBatch.from_rows(
            meter_id=meter_id,
            receive_ts_ns=time.time_ns(),
            rows=[(c, t, v, Quality.GOOD) for c, t, v in rows],
        )
        await self.bus.publish(TOPIC, meter_id.encode(), codec.encode(batch))

    async def drained(self, timeout_s: float = 30.0) -> None:
        """Wait until the aggregator has committed everything published."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.bus.committed(TOPIC, "agg") == self.published():
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the aggregator did not catch up")

    async def total(self, channel_id: str, start: str, end: str) -> float:
        r = await self.api.get("/v1/sites/s/totals", params={"start": start, "end": end})
        assert r.status_code == 200, r.text
        return float(
            next(c["total"] for c in r.json()["channels"] if c["channel_id"] == channel_id)
        )

    async def series(self, channel_id: str, start: str, end: str) -> list[float]:
        r = await self.api.get(
            f"/v1/channels/{channel_id}/series", params={"start": start, "end": end}
        )
        assert r.status_code == 200, r.text
        return [round(p["value"] or 0.0, 9) for p in r.json()]


@contextlib.asynccontextmanager
async def pipeline(tmp_path: Path, p: Plant, *, with_bus: bool = True) -> AsyncIterator[Pipeline]:
    async with MemoryBus() as bus, SqliteStore(tmp_path / "store.sqlite3") as store:
        engineer = bearer(await token_for(store, Role.ENGINEER))
        viewer = bearer(await token_for(store, Role.VIEWER))
        app = create_app(p, store, bucket_s=60, bus=bus if with_bus else None)
        agg = asyncio.create_task(Aggregator(p, bus, store, group="agg", bucket_s=60).run())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", headers=engineer, timeout=30
        ) as api:
            try:
                yield Pipeline(bus=bus, store=store, api=api, viewer=viewer)
            finally:
                agg.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await agg


def minutes(channel_id: str, start: str, values: Sequence[float]) -> list[tuple[str, int, float]]:
    """Readings one minute apart from a site-local start."""
    t0 = local_ns(start)
    return [(channel_id, t0 + 60 * i * NS_PER_S, v) for i, v in enumerate(values)]

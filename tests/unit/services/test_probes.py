"""GET /healthz, /readyz and /metrics of the aggregator and the alerting process (on MemoryBus and
SqliteStore): alive while the event loop answers; ready once the consume loop has finished a
cycle, and 503 with the reason while the store fails or the loop is stuck."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from compute import codec
from compute.model import NS_PER_S, Quality, ReadingBatch
from compute.plant import Plant
from services.aggregator import Aggregator
from services.bus.memory import MemoryBus
from services.metrics import Registry
from services.metrics_http import metrics_app
from services.progress import Progress
from services.runtime import serving_probes
from services.settings import Settings
from services.store import StoreWrite
from services.store.alerts import AlertRequest
from services.store.sqlite import SqliteStore, SqliteStoreError
from tests.unit.services.alert_support import running, settings_for

TOPIC = "plantpulse.readings"
KEY = "main-incomer.energy-import"


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Store(SqliteStore):
    """A store that can be taken down (its calls raise) or frozen (they never return)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.down = False
        self.thawed = asyncio.Event()
        self.thawed.set()
        self.stuck = asyncio.Event()  # a call is waiting for the thaw

    async def _answer(self) -> None:
        if not self.thawed.is_set():
            self.stuck.set()
        await self.thawed.wait()
        if self.down:
            raise SqliteStoreError("store down")

    async def write(self, w: StoreWrite) -> None:
        await self._answer()
        await super().write(w)

    async def pending_alert_requests(self, limit: int = 100) -> list[AlertRequest]:
        await self._answer()
        return await super().pending_alert_requests(limit)


def _batch(t_s: int, value: float) -> bytes:
    rows = [(KEY, t_s * NS_PER_S, value, Quality.GOOD)]
    return codec.encode(ReadingBatch.from_rows(meter_id="main-incomer", receive_ts_ns=0, rows=rows))


@contextlib.asynccontextmanager
async def _client(registry: Registry, progress: Progress) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=metrics_app(registry, progress.not_ready))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


async def _ready_within(
    client: httpx.AsyncClient, expect: int, timeout_s: float = 10.0
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        r = await client.get("/readyz")
        if r.status_code == expect or asyncio.get_running_loop().time() > deadline:
            assert r.status_code == expect, r.text
            body: dict[str, Any] = r.json()
            return body
        await asyncio.sleep(0.05)


async def test_the_aggregator_is_ready_once_consuming_and_not_while_the_store_fails(
    plant: Plant, tmp_path: Path
) -> None:
    bus = MemoryBus()
    clock = _Clock()
    progress = Progress("aggregator", stale_after_s=30, clock=clock)
    registry = Registry()
    progress.register(registry)
    store = _Store(tmp_path / "s.sqlite3")
    async with store, _client(registry, progress) as client:
        agg = Aggregator(plant, bus, store, group="g", progress=progress)
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        body = await _ready_within(client, 503)
        assert body == {"status": "not ready", "reason": "aggregator: not consuming yet"}
        task = asyncio.create_task(agg.run())
        try:
            assert await _ready_within(client, 200) == {"status": "ready"}
            # the store refuses the write of the next batch: not ready, saying why
            store.down = True
            await bus.publish(TOPIC, b"main-incomer", _batch(0, 100.0))
            body = await _ready_within(client, 503)
            assert (
                "aggregator: the last cycle failed: SqliteStoreError: store down" in body["reason"]
            )
            assert (await client.get("/healthz")).status_code == 200  # alive all the same
            store.down = False  # back: the retry goes through
            await _ready_within(client, 200)
            # a write that never returns: the loop is stuck, and after stale_after_s not ready
            store.thawed.clear()
            await bus.publish(TOPIC, b"main-incomer", _batch(30, 101.0))
            await asyncio.wait_for(store.stuck.wait(), 5)  # the poll took it; the write hangs
            clock.now += 31
            body = await _ready_within(client, 503, timeout_s=1.0)
            assert body["reason"].startswith("aggregator: no cycle finished for 3")
            metrics = (await client.get("/metrics")).text
            assert "plantpulse_aggregator_last_cycle_age_seconds 3" in metrics
            store.thawed.set()
            await _ready_within(client, 200)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_the_alerting_process_is_ready_once_consuming_and_serves_its_counters(
    plant: Plant, tmp_path: Path
) -> None:
    bus = MemoryBus()
    clock = _Clock()
    progress = Progress("alerting", stale_after_s=30, clock=clock)
    registry = Registry()
    progress.register(registry)
    store = _Store(tmp_path / "s.sqlite3")
    async with store, _client(registry, progress) as client:
        await _ready_within(client, 503)
        settings = settings_for(None)
        async with running(plant, bus, store, settings, registry=registry, progress=progress):
            assert await _ready_within(client, 200) == {"status": "ready"}
            metrics = (await client.get("/metrics")).text
            assert "# TYPE plantpulse_alert_deliveries_total counter" in metrics
            store.down = True  # the operator requests are read every poll
            body = await _ready_within(client, 503)
            assert body["reason"] == "alerting: the last cycle failed: SqliteStoreError: store down"
            store.down = False
            await _ready_within(client, 200)
            store.thawed.clear()  # stuck in a store call
            await asyncio.wait_for(store.stuck.wait(), 5)
            clock.now += 31
            body = await _ready_within(client, 503, timeout_s=1.0)
            assert body["reason"].startswith("alerting: no cycle finished for 3")
            assert (await client.get("/healthz")).status_code == 200
            store.thawed.set()
            await _ready_within(client, 200)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_the_probes_are_served_over_http_on_the_configured_port() -> None:
    settings = Settings()
    assert (settings.aggregator_metrics_host, settings.aggregator_metrics_port) == (
        "127.0.0.1",
        9109,
    )
    assert (settings.alerting_metrics_host, settings.alerting_metrics_port) == ("127.0.0.1", 9110)
    port = _free_port()
    progress = Progress("aggregator")
    async with (
        serving_probes(Registry(), progress, "127.0.0.1", port),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
    ):
        for _ in range(100):
            with contextlib.suppress(httpx.TransportError):
                health = await client.get("/healthz")
                break
            await asyncio.sleep(0.05)
        assert health.json() == {"status": "ok"}
        assert (await client.get("/readyz")).status_code == 503
        progress.done()
        assert (await client.get("/readyz")).json() == {"status": "ready"}
        metrics = await client.get("/metrics")
        assert "plantpulse_aggregator_last_cycle_age_seconds" in metrics.text
    async with serving_probes(Registry(), Progress("alerting"), "127.0.0.1", 0):
        pass  # port 0: nothing is served

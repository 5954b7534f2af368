"""GET /readyz: 200 when the store answers and the bus is reachable; 503 naming what failed."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from pathlib import Path

import httpx

from compute.plant import Plant
from services.api import create_app
from services.publisher import LazyBus, PublishingBus
from services.readiness import readiness
from services.store import Store
from services.store.sqlite import SqliteStore


class _Bus:
    """A bus whose probe fails (or hangs) as told."""

    def __init__(self, *, fail: str | None = None, hang: bool = False) -> None:
        self.fail, self.hang = fail, hang

    async def publish(
        self, topic: str, key: bytes, value: bytes, headers: Sequence[tuple[str, bytes]] = ()
    ) -> None:
        return None

    async def probe(self) -> None:
        if self.hang:
            await asyncio.sleep(60)
        if self.fail:
            raise ConnectionError(self.fail)


async def _readyz(plant: Plant, store: Store, bus: PublishingBus | None) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(plant, store, bus=bus))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get("/readyz")  # no token: like /healthz


async def test_ready_when_store_and_bus_answer(plant: Plant, tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "s.sqlite3") as store:
        r = await _readyz(plant, store, _Bus())
        no_bus = await _readyz(plant, store, None)
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "checks": {"store": "ok", "bus": "ok"}, "failed": []}
    assert no_bus.status_code == 200
    assert no_bus.json()["checks"] == {"store": "ok"}


async def test_a_closed_store_is_not_ready(plant: Plant, tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "s.sqlite3") as store:
        pass
    r = await _readyz(plant, store, None)
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "not ready" and body["failed"] == ["store"]
    assert body["checks"]["store"] != "ok"


async def test_an_unreachable_bus_is_named_with_its_reason(plant: Plant, tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "s.sqlite3") as store:
        r = await _readyz(plant, store, _Bus(fail="connection refused by broker:9092"))
    assert r.status_code == 503
    assert r.json()["failed"] == ["bus"]
    assert r.json()["checks"] == {
        "store": "ok",
        "bus": "ConnectionError: connection refused by broker:9092",
    }


async def test_a_check_that_hangs_fails_after_the_timeout(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "s.sqlite3") as store:
        checks = await readiness(store, _Bus(hang=True), timeout_s=0.05)
    assert [(c.dependency, c.ok) for c in checks] == [("store", True), ("bus", False)]
    assert checks[1].reason == "no answer within 0.05 s"


async def test_a_lazy_bus_that_cannot_open_is_not_ready(tmp_path: Path) -> None:
    def open_bus() -> contextlib.AbstractAsyncContextManager[PublishingBus]:
        raise OSError("no route to kafka")

    async with SqliteStore(tmp_path / "s.sqlite3") as store, LazyBus(open_bus) as bus:
        checks = await readiness(store, bus)
    assert checks[1].reason == "OSError: no route to kafka"

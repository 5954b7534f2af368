"""Shared by the alerting tests: a local webhook receiver that counts what it gets, reading
batches for the bus, rules into the store, and the alerting process run as a task."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from compute import codec
from compute.alert_config import parse_rules
from compute.model import NS_PER_S, Quality, ReadingBatch
from compute.plant import Plant
from services.alert_rulebook import seed
from services.alert_settings import AlertSettings, WebhookSettings
from services.alerting import Alerting
from services.alerting_setup import open_alerting
from services.bus import Bus
from services.settings import Settings
from services.store import Store

TOPIC = "plantpulse.readings"
SECRET = "whsec-0123456789abcdef"


@dataclass
class Receiver:
    """A webhook endpoint on loopback: answers `fail_first` requests with 503, then 200."""

    fail_first: int = 0
    posts: list[dict[str, Any]] = field(default_factory=list)  # every request that got a 200
    keys: list[str] = field(default_factory=list)  # their Idempotency-Key headers
    arrived_ns: list[int] = field(default_factory=list)
    refused: int = 0
    url: str = ""
    got: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (x.partition(":") for x in lines[1:] if x)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            if self.refused < self.fail_first:
                self.refused += 1
                status = 503
            else:
                status = 200
                self.arrived_ns.append(time.time_ns())
                self.posts.append(json.loads(body))
                self.keys.append(headers.get("idempotency-key", ""))
                self.got.set()
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
        finally:
            writer.close()

    @property
    def unique(self) -> set[str]:
        return set(self.keys)


@contextlib.asynccontextmanager
async def receiver(fail_first: int = 0) -> AsyncIterator[Receiver]:
    r = Receiver(fail_first=fail_first)
    server = await asyncio.start_server(r.handle, "127.0.0.1", 0)
    r.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hooks/ehs"
    async with server:
        yield r
        server.close()


def settings_for(url: str | None, **kw: Any) -> Settings:
    hooks = [] if url is None else [WebhookSettings(url=url, secret=SECRET, max_attempts=2)]  # type: ignore[arg-type]
    return Settings(alerts=AlertSettings(webhooks=hooks), **kw)


def batch(
    meter: str, rows: Sequence[tuple[str, int, float]], *, receive_ns: int | None = None
) -> bytes:
    """One meter's batch of (channel, ts_ns, value) good readings, encoded for the bus."""
    b = ReadingBatch.from_rows(
        meter_id=meter,
        receive_ts_ns=receive_ns if receive_ns is not None else max(t for _, t, _ in rows),
        rows=[(c, t, v, Quality.GOOD) for c, t, v in rows],
    )
    return codec.encode(b)


async def publish_series(
    bus: Bus, channel: str, values: Sequence[float], *, t0_ns: int, per_batch: int = 5
) -> int:
    """Per-second readings of one channel from t0_ns, per_batch to a message; the last ts."""
    meter = channel.split(".")[0]
    ts = [t0_ns + i * NS_PER_S for i in range(len(values))]
    for i in range(0, len(values), per_batch):
        rows = [
            (channel, t, v)
            for t, v in zip(ts[i : i + per_batch], values[i : i + per_batch], strict=True)
        ]
        await bus.publish(TOPIC, meter.encode(), batch(meter, rows))
    return ts[-1]


async def load_rules(store: Store, text: str) -> None:
    await seed(store, parse_rules(yaml.safe_load(text)), "test", time.time_ns())


@contextlib.asynccontextmanager
async def running(
    plant: Plant, bus: Bus, store: Store, settings: Settings, **kw: Any
) -> AsyncIterator[Alerting]:
    """The alerting process as a task, cancelled (killed) at the end of the block."""
    async with open_alerting(plant, bus, store, settings, **kw) as alerting:
        task = asyncio.create_task(alerting.run())
        try:
            yield alerting
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def until(predicate: Any, timeout_s: float = 10.0, what: str = "it") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def committed_all(bus: Any, group: str = "plantpulse-alerting") -> bool:
    ends = [p.end for p in bus.partitions(TOPIC)]
    return bool(bus.committed(TOPIC, group) == ends)

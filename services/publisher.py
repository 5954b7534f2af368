"""Getting batches onto the bus: a lazily opened bus, the publisher with its store-and-forward
disk buffer, and the gateway's metrics. Knows nothing of sources or meters.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from types import TracebackType
from typing import Protocol as TypingProtocol

import numpy as np
import numpy.typing as npt

from compute import codec
from compute.errors import PlantPulseError
from compute.model import Quality, ReadingBatch
from services.buffer import Buffered, DiskBuffer, DiskBufferError
from services.metrics import Registry

log = logging.getLogger(__name__)


class PublishingBus(TypingProtocol):
    """The part of the Bus port the gateway uses."""

    async def publish(
        self, topic: str, key: bytes, value: bytes, headers: Sequence[tuple[str, bytes]] = ()
    ) -> None: ...


class LazyBus:
    """A bus opened on first publish, and again after a failed open.

    So a gateway starts, reads its meters and buffers while the bus is down. An open in progress
    is never cancelled by a publish timeout: a later publish waits for the same attempt.
    """

    def __init__(self, open_bus: Callable[[], AbstractAsyncContextManager[PublishingBus]]) -> None:
        self._open_bus = open_bus
        self._stack = AsyncExitStack()
        self._bus: PublishingBus | None = None
        self._opening: asyncio.Task[PublishingBus] | None = None

    async def __aenter__(self) -> LazyBus:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._opening is not None:
            self._opening.cancel()  # a no-op when it is done
            await asyncio.wait([self._opening])
            if not self._opening.cancelled():
                self._opening.exception()  # retrieved: a failed open was already counted
        self._bus = None
        await self._stack.aclose()

    async def _open(self) -> PublishingBus:
        bus = await self._stack.enter_async_context(self._open_bus())
        self._bus = bus
        log.info("bus opened")
        return bus

    async def _opened(self) -> PublishingBus:
        bus = self._bus
        if bus is None:
            if self._opening is None or self._opening.done():
                if self._opening is not None and not self._opening.cancelled():
                    self._opening.exception()  # a failed attempt: retrieved, then retried
                self._opening = asyncio.create_task(self._open())
            bus = await asyncio.shield(self._opening)
        return bus

    async def publish(
        self, topic: str, key: bytes, value: bytes, headers: Sequence[tuple[str, bytes]] = ()
    ) -> None:
        bus = await self._opened()
        await bus.publish(topic, key, value, headers)

    async def probe(self) -> None:
        """Raise unless the bus is open, or opens now, and (when it can tell) reachable."""
        bus = await self._opened()
        probe = getattr(bus, "probe", None)
        if probe is not None:
            await probe()


class GatewayMetrics:
    """The gateway's counters, latency histogram and buffer gauges in a Registry."""

    def __init__(self, registry: Registry, buffer: DiskBuffer) -> None:
        self.batches_read = registry.counter(
            "plantpulse_gateway_batches_read_total", "Batches read, one per meter per poll"
        )
        self.readings_read = registry.counter(
            "plantpulse_gateway_readings_read_total",
            "Readings in the batches read, by quality (good, uncertain, bad, stale)",
            ("quality",),
        )
        self.batches_published = registry.counter(
            "plantpulse_gateway_batches_published_total",
            "Batches the bus acknowledged, sent at once (direct) or from the buffer (buffered)",
            ("path",),
        )
        self.errors = registry.counter(
            "plantpulse_gateway_errors_total",
            "Failed publishes (timeout, bus, os) and buffer file errors (buffer)",
            ("kind",),
        )
        self.publish_latency = registry.histogram(
            "plantpulse_gateway_publish_latency_seconds", "Time until the bus acknowledged a batch"
        )
        self.dropped = registry.counter(
            "plantpulse_gateway_dropped_batches_total",
            "Batches given up: buffer overflow or a buffer file error",
            ("reason",),
        )
        registry.gauge(
            "plantpulse_gateway_buffered_batches",
            "Batches waiting in the buffer",
            read=lambda: buffer.depth_batches,
        )
        registry.gauge(
            "plantpulse_gateway_buffered_bytes",
            "Bytes of the batches waiting in the buffer",
            read=lambda: buffer.depth_bytes,
        )
        self.buffer = buffer
        for q in Quality:  # series exist from the start, at 0
            self.readings_read.inc(0, quality=q.name.lower())
        for path in ("direct", "buffered"):
            self.batches_published.inc(0, path=path)
        for kind in ("timeout", "bus", "os", "buffer"):
            self.errors.inc(0, kind=kind)
        for reason in ("overflow", "buffer_error"):
            self.dropped.inc(0, reason=reason)

    def count_readings(self, quality: npt.NDArray[np.uint8]) -> None:
        for q, n in enumerate(np.bincount(quality, minlength=len(Quality)).tolist()):
            if n:
                self.readings_read.inc(n, quality=Quality(q).name.lower())

    def summary(self) -> str:
        """One line for the log: totals since the gateway started."""

        def split(by_label: dict[tuple[tuple[str, str], ...], float]) -> str:
            parts = [f"{k[0][1]} {int(v)}" for k, v in sorted(by_label.items()) if v]
            return ", ".join(parts) or "none"

        lat = self.publish_latency
        qualities = split(self.readings_read.by_label())
        latency = (
            f"mean {lat.mean() * 1e3:.1f} ms, p95 <= {lat.quantile(0.95) * 1e3:g} ms"
            if lat.count
            else "none yet"
        )
        return (
            f"read {int(self.batches_read.total())} batches "
            f"({int(self.readings_read.total())} readings: {qualities}); "
            f"published {int(self.batches_published.value(path='direct'))} direct, "
            f"{int(self.batches_published.value(path='buffered'))} from the buffer; "
            f"latency {latency}; errors {split(self.errors.by_label())}; "
            f"buffered {self.buffer.depth_batches} batches ({self.buffer.depth_bytes} B); "
            f"dropped {split(self.dropped.by_label())}"
        )


class Publisher:
    """Publishes batches at once while the bus answers, and through the buffer otherwise.

    Once anything is buffered, every batch goes through the buffer until it has drained, so a
    meter's newer batch never overtakes its older ones. flush_forever() does the draining.
    """

    def __init__(
        self,
        bus: PublishingBus,
        topic: str,
        buffer: DiskBuffer,
        metrics: GatewayMetrics,
        *,
        timeout_s: float = 10.0,
        retry_min_s: float = 0.5,
        retry_max_s: float = 30.0,
        flush_batches: int = 256,
    ) -> None:
        self.bus = bus
        self.topic = topic
        self.buffer = buffer
        self.metrics = metrics
        self.timeout_s = timeout_s
        self.retry_min_s = retry_min_s
        self.retry_max_s = retry_max_s
        self.flush_batches = flush_batches
        self._pending = asyncio.Event()
        self._outage_started_s: float | None = None
        self._flushed_before = 0.0
        self._dropping = False

    async def publish(self, batch: ReadingBatch) -> None:
        """Hand one batch on: to the bus, or to the buffer when the bus fails or anything waits."""
        self.metrics.batches_read.inc()
        self.metrics.count_readings(batch.quality)
        key, value = batch.meter_id.encode(), codec.encode(batch)
        if self.buffer.depth_batches == 0 and await self._send(key, value):
            self.metrics.batches_published.inc(path="direct")
            return
        await self._store(key, value)

    async def _send(self, key: bytes, value: bytes) -> bool:
        """One publish under the timeout, so a hung broker counts as unreachable."""
        started_s = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.bus.publish(self.topic, key, value)
        except TimeoutError:
            kind, why = "timeout", f"no acknowledgement within {self.timeout_s:g} s"
        except PlantPulseError as e:
            kind, why = "bus", str(e)
        except OSError as e:
            kind, why = "os", str(e)
        else:
            self.metrics.publish_latency.observe(time.perf_counter() - started_s)
            return True
        self.metrics.errors.inc(kind=kind)
        if self._outage_started_s is None:
            self._outage_started_s = time.monotonic()
            self._flushed_before = self.metrics.batches_published.value(path="buffered")
            log.warning("bus unreachable (%s): buffering batches in %s", why, self.buffer.path)
        return False

    async def _store(self, key: bytes, value: bytes) -> None:
        try:
            dropped = await asyncio.to_thread(self.buffer.append, key, value)
        except DiskBufferError as e:
            self.metrics.errors.inc(kind="buffer")
            self.metrics.dropped.inc(reason="buffer_error")
            log.error("batch of meter %s lost: %s", key.decode(errors="replace"), e)
            return
        if dropped:
            self.metrics.dropped.inc(dropped, reason="overflow")
            if not self._dropping:
                self._dropping = True
                log.warning(
                    "buffer full (%d batches, %d bytes): dropping batches (%s)",
                    self.buffer.depth_batches,
                    self.buffer.depth_bytes,
                    self.buffer.overflow.value,
                )
        self._pending.set()

    async def flush_forever(self) -> None:
        """Publish what the buffer holds, oldest first, whenever it holds anything."""
        delay_s = self.retry_min_s
        while True:
            self._pending.clear()  # before peek: a batch stored after it sets it again
            try:
                entries = await asyncio.to_thread(self.buffer.peek, self.flush_batches)
                if not entries:
                    self._drained()
                    await self._pending.wait()
                    continue
                sent = await self._send_oldest_first(entries)
                if sent:
                    await asyncio.to_thread(self.buffer.remove, sent)
                    self.metrics.batches_published.inc(len(sent), path="buffered")
                if len(sent) == len(entries):
                    delay_s = self.retry_min_s
                    continue
                log.info(
                    "bus still unreachable, %d batches buffered; next try in %.1f s",
                    self.buffer.depth_batches,
                    delay_s,
                )
            except DiskBufferError as e:
                self.metrics.errors.inc(kind="buffer")
                log.error("cannot flush the buffer, next try in %.1f s: %s", delay_s, e)
            await asyncio.sleep(delay_s)
            delay_s = min(2 * delay_s, self.retry_max_s)

    def _drained(self) -> None:
        if self._outage_started_s is not None:
            log.info(
                "bus back: buffer drained %.0f s after the outage began, %d batches flushed",
                time.monotonic() - self._outage_started_s,
                self.metrics.batches_published.value(path="buffered") - self._flushed_before,
            )
        self._outage_started_s = None
        self._dropping = False

    async def _send_oldest_first(self, entries: Sequence[Buffered]) -> list[int]:
        """Send the oldest alone as a probe, then each meter's batches in order, meters at once.

        A meter stops at its first failure so its later batches never overtake it. Returns the
        seqs the bus acknowledged.
        """
        head = entries[0]
        if not await self._send(head.key, head.value):
            return []
        sent = [head.seq]
        by_key: dict[bytes, list[Buffered]] = {}
        for e in entries[1:]:
            by_key.setdefault(e.key, []).append(e)

        async def in_order(items: list[Buffered]) -> None:
            for item in items:
                if not await self._send(item.key, item.value):
                    return
                sent.append(item.seq)

        async with asyncio.TaskGroup() as tg:
            for items in by_key.values():
                tg.create_task(in_order(items))
        return sent

"""The Publisher: store-and-forward over a bus that goes away, with its metrics."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

from compute import codec
from compute.errors import PlantPulseError
from compute.model import Quality, ReadingBatch
from services.buffer import MEMORY, DiskBuffer
from services.metrics import Registry
from services.publisher import GatewayMetrics, LazyBus, Publisher, PublishingBus

REPO_ROOT = Path(__file__).resolve().parents[3]


class FlakyBus:
    """An in-process bus that refuses (down) or never answers (hung) on demand."""

    def __init__(self) -> None:
        self.down = False
        self.hung = False
        self.log: list[tuple[bytes, bytes]] = []

    async def publish(
        self, topic: str, key: bytes, value: bytes, headers: Sequence[tuple[str, bytes]] = ()
    ) -> None:
        if self.hung:
            await asyncio.Event().wait()
        if self.down:
            raise PlantPulseError("broker not available")
        self.log.append((key, value))

    def sequence(self, meter: str) -> list[int]:
        """The poll numbers of one meter's published batches, in publishing order."""
        return [int(codec.decode(v).value[0]) for k, v in self.log if k.decode() == meter]


def _batch(meter: str, n: int) -> ReadingBatch:
    ts_ns = 1_800_000_000_000_000_000 + n * 1_000_000_000
    return ReadingBatch.from_rows(
        meter_id=meter,
        receive_ts_ns=ts_ns,
        rows=[(f"{meter}.energy", ts_ns, float(n), Quality.GOOD)],
    )


def _publisher(bus: PublishingBus, buf: DiskBuffer) -> tuple[Publisher, GatewayMetrics]:
    metrics = GatewayMetrics(Registry(), buf)
    pub = Publisher(bus, "t", buf, metrics, timeout_s=0.2, retry_min_s=0.01, retry_max_s=0.05)
    return pub, metrics


async def _until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_reachable_bus_gets_every_batch_directly() -> None:
    bus = FlakyBus()
    with DiskBuffer(MEMORY) as buf:
        pub, metrics = _publisher(bus, buf)
        for n in range(5):
            await pub.publish(_batch("m1", n))
    assert bus.sequence("m1") == [0, 1, 2, 3, 4]
    assert metrics.batches_published.value(path="direct") == 5
    assert buf.depth_batches == 0 and metrics.publish_latency.count == 5


async def test_an_outage_is_buffered_and_flushed_in_order_per_meter(tmp_path: Path) -> None:
    bus = FlakyBus()
    with DiskBuffer(tmp_path / "b.sqlite3") as buf:
        pub, metrics = _publisher(bus, buf)
        async with asyncio.TaskGroup() as tg:
            flusher = tg.create_task(pub.flush_forever())
            await pub.publish(_batch("m1", 0))
            bus.down = True
            for n in range(1, 30):
                await pub.publish(_batch("m1", n))
                await pub.publish(_batch("m2", n))
                if n == 20:
                    bus.down = False  # back while batches keep coming: they still queue up
            await _until(lambda: buf.depth_batches == 0)
            await pub.publish(_batch("m1", 30))
            flusher.cancel()
    assert bus.sequence("m1") == list(range(31))
    assert bus.sequence("m2") == list(range(1, 30))
    assert metrics.errors.value(kind="bus") >= 1
    direct = metrics.batches_published.value(path="direct")
    assert direct >= 2  # the first batch and the one after the drain
    assert direct + metrics.batches_published.value(path="buffered") == 60


async def test_a_hung_bus_times_out_and_counts_as_unreachable() -> None:
    bus = FlakyBus()
    bus.hung = True
    with DiskBuffer(MEMORY) as buf:
        pub, metrics = _publisher(bus, buf)
        started_s = time.monotonic()
        await pub.publish(_batch("m1", 0))
        await pub.publish(_batch("m1", 1))
        assert time.monotonic() - started_s < 1.0, "only the first publish waits for the timeout"
        assert buf.depth_batches == 2
        assert metrics.errors.value(kind="timeout") == 1


async def test_a_restarted_gateway_flushes_its_old_batches_first(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite3"
    bus = FlakyBus()
    bus.down = True
    with DiskBuffer(path) as buf:
        pub, _ = _publisher(bus, buf)
        for n in range(5):
            await pub.publish(_batch("m1", n))
    bus.down = False
    with DiskBuffer(path) as buf:
        pub, _ = _publisher(bus, buf)
        async with asyncio.TaskGroup() as tg:
            flusher = tg.create_task(pub.flush_forever())
            for n in range(5, 8):
                await pub.publish(_batch("m1", n))
            await _until(lambda: buf.depth_batches == 0)
            flusher.cancel()
    assert bus.sequence("m1") == list(range(8))


async def test_overflow_drops_are_counted_in_the_metrics() -> None:
    bus = FlakyBus()
    bus.down = True
    registry = Registry()
    with DiskBuffer(MEMORY, max_batches=3) as buf:
        metrics = GatewayMetrics(registry, buf)
        pub = Publisher(bus, "t", buf, metrics, timeout_s=0.2)
        for n in range(10):
            await pub.publish(_batch("m1", n))
        text = registry.render()
    assert metrics.dropped.value(reason="overflow") == 7
    assert metrics.batches_read.value() == 10
    assert "\nplantpulse_gateway_buffered_batches 3\n" in text
    assert '\nplantpulse_gateway_dropped_batches_total{reason="overflow"} 7\n' in text
    assert "buffered 3 batches" in metrics.summary() and "overflow 7" in metrics.summary()


async def test_a_bus_that_cannot_be_opened_yet_is_buffered_for_and_opened_later() -> None:
    bus = FlakyBus()
    attempts: list[int] = []

    @contextlib.asynccontextmanager
    async def open_bus() -> AsyncIterator[FlakyBus]:
        attempts.append(1)
        if len(attempts) < 3:
            raise PlantPulseError("cannot reach the broker")
        yield bus

    with DiskBuffer(MEMORY) as buf:
        async with LazyBus(open_bus) as lazy:
            pub, metrics = _publisher(lazy, buf)
            async with asyncio.TaskGroup() as tg:
                flusher = tg.create_task(pub.flush_forever())
                for n in range(3):
                    await pub.publish(_batch("m1", n))
                await _until(lambda: buf.depth_batches == 0)
                flusher.cancel()
    assert bus.sequence("m1") == [0, 1, 2]
    assert len(attempts) == 3 and metrics.errors.value(kind="bus") == 2

"""Store-and-forward against a real Kafka broker that stops, and comes back on the same ports with
the same data: batches wait in the gateway's disk buffer, across a gateway restart too, and reach
the topic afterwards with none lost and each meter's in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from compute import codec
from compute.model import Quality, ReadingBatch
from services.buffer import DiskBuffer
from services.bus.kafka import KafkaBus
from services.gateway import run_sources
from services.metrics import Registry
from services.publisher import GatewayMetrics, LazyBus, Publisher
from tests.harness.kafka import KafkaBroker

pytestmark = pytest.mark.kafka

METERS = ("line-1-meter", "line-2-meter", "chiller-meter", "cleanroom-a-sensor")
TOPIC = "gateway-buffer"
PERIOD_S = 0.02  # one poll of every meter each 20 ms: 200 batches/s


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[KafkaBroker]:
    """A broker of this test's own: the test stops it, so it cannot be the session's."""
    b = KafkaBroker(tmp_path / "kafka")
    try:
        b.start()
    except (OSError, RuntimeError, TimeoutError) as e:
        b.stop()
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Kafka is required in CI but cannot start: {e}")
        pytest.skip(f"Kafka unavailable: {e}")
    try:
        yield b
    finally:
        b.stop()


class CountingSource:
    """Polls every meter each period_s, the poll number in the value and the timestamp."""

    def __init__(self, meters: tuple[str, ...], period_s: float) -> None:
        self.meters = meters
        self.period_s = period_s
        self.polls = 0
        self.stop = asyncio.Event()
        self.finished = False

    async def batches(self) -> AsyncIterator[ReadingBatch]:
        while not self.stop.is_set():
            ts_ns = 1_800_000_000_000_000_000 + self.polls * 1_000_000_000
            for meter in self.meters:
                yield ReadingBatch.from_rows(
                    meter_id=meter,
                    receive_ts_ns=time.time_ns(),
                    rows=[(f"{meter}.energy", ts_ns, float(self.polls), Quality.GOOD)],
                )
            self.polls += 1
            await asyncio.sleep(self.period_s)
        self.finished = True


async def _until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def _gateway(
    broker: KafkaBroker, buffer_path: Path, source: CountingSource
) -> AsyncIterator[tuple[DiskBuffer, GatewayMetrics]]:
    """One life of a gateway: its buffer, a lazily opened KafkaBus, and its tasks."""
    with DiskBuffer(buffer_path) as buffer:
        metrics = GatewayMetrics(Registry(), buffer)
        async with LazyBus(lambda: KafkaBus(broker.bootstrap, timeout_s=3.0)) as bus:
            publisher = Publisher(
                bus, TOPIC, buffer, metrics, timeout_s=2.0, retry_min_s=0.2, retry_max_s=1.0
            )
            task = asyncio.create_task(run_sources([source], publisher))
            try:
                yield buffer, metrics
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def _polls_on_topic(bootstrap: str, expected: int) -> dict[str, list[int]]:
    """Every meter's poll numbers in the order the topic holds them."""
    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        group_id="check",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        request_timeout_ms=10_000,
    )
    await consumer.start()
    polls: dict[str, list[int]] = {m: [] for m in METERS}
    try:
        deadline = time.monotonic() + 60
        while sum(len(set(p)) for p in polls.values()) < expected:
            assert time.monotonic() < deadline, "the topic holds fewer batches than were read"
            got = await consumer.getmany(timeout_ms=2000)
            for records in got.values():
                for r in records:
                    polls[r.key.decode()].append(int(codec.decode(r.value).value[0]))
    finally:
        await consumer.stop()
    return polls


async def test_batches_wait_in_the_buffer_while_kafka_is_down(
    broker: KafkaBroker, tmp_path: Path
) -> None:
    async with KafkaBus(broker.bootstrap, timeout_s=10.0) as admin:
        await admin.ensure_topics([TOPIC], partitions=3, replication=1)
    source = CountingSource(METERS, PERIOD_S)
    buffer_path = tmp_path / "gateway-buffer.sqlite3"

    async with _gateway(broker, buffer_path, source) as (buffer, metrics):
        await _until(
            lambda: metrics.batches_published.value(path="direct") >= 100, 30, "direct publishes"
        )
        assert buffer.depth_batches == 0
        await asyncio.to_thread(broker.stop)
        await _until(lambda: buffer.depth_batches >= 300, 60, "the buffer to fill")
        assert metrics.errors.total() >= 1
    held = buffer.depth_batches  # the gateway stopped with batches still buffered

    async with _gateway(broker, buffer_path, source) as (buffer, metrics):
        assert buffer.depth_batches >= held, "the restarted gateway found its buffer"
        await _until(lambda: buffer.depth_batches >= held + 300, 60, "the buffer to keep filling")
        broker.spawn()  # from this thread, which outlives the broker
        await asyncio.to_thread(broker.wait_ready)
        await asyncio.sleep(1.0)  # the meters keep being read while the buffer drains
        source.stop.set()
        await _until(lambda: source.finished and buffer.depth_batches == 0, 120, "the drain")
        assert metrics.batches_published.value(path="buffered") >= held + 300
        assert metrics.dropped.total() == 0

    polls = await _polls_on_topic(broker.bootstrap, expected=source.polls * len(METERS))
    for meter, seen in polls.items():
        assert sorted(set(seen)) == list(range(source.polls)), f"{meter} lost batches"
        assert seen == sorted(seen), f"{meter}'s batches are out of order"

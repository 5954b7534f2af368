"""The distributed pipeline end to end: `plantpulse gateway`, `aggregator` and `api` as separate
processes over a real Kafka broker and a real PostgreSQL, with the aggregator SIGKILLed mid-run
and a malformed message injected into the readings topic.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from compute import codec
from ingest.simulator.model import PlantSimulator
from ingest.simulator.servers import serve
from tests.e2e.support import (
    BUCKET_S,
    SPAN_SQL,
    assert_totals_match_ground_truth,
    iso,
    plant_on_free_ports,
    window,
)
from tests.harness import free_port

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


class Procs:
    """plantpulse processes started by the test, all stopped at the end whatever happens."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{args[0]}-{len(self.running)}.log").open("wb")
        p = subprocess.Popen(
            [sys.executable, "-m", "services.cli", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.running.append(p)
        return p

    def run(self, *args: str) -> str:
        """Run a plantpulse command to its end; its stdout."""
        done = subprocess.run(
            [sys.executable, "-m", "services.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout.strip()

    def stop_all(self) -> None:
        for p in self.running:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.running:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)


@pytest.fixture
def procs(tmp_path: Path, kafka_bootstrap: str, pg_dsn: str) -> Iterator[Procs]:
    env = {
        **os.environ,
        "PT_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "PT_PG_DSN": pg_dsn,
        "PT_BUCKET_S": str(BUCKET_S),
        "PT_READINGS_TOPIC": f"e2e-{uuid.uuid4().hex[:8]}",
        "PT_CONSUMER_GROUP": f"e2e-{uuid.uuid4().hex[:8]}",
        "PT_API_PORT": str(free_port()),
        "PT_GATEWAY_METRICS_PORT": str(free_port()),
        "PT_DATA_DIR": str(tmp_path / "data"),  # the gateway's buffer, the client certificates
    }
    p = Procs(env, tmp_path)
    try:
        yield p
    finally:
        p.stop_all()
        for f in sorted(tmp_path.glob("*.log")):
            sys.stderr.write(f"--- {f.name}\n{f.read_text(errors='replace')[-3000:]}\n")


async def _topic_readings(bootstrap: str, topic: str) -> set[tuple[str, int]]:
    """Every (channel, ts_ns) published to the topic, read back with a throwaway group."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"check-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    out: set[tuple[str, int]] = set()
    try:
        while batch := await consumer.getmany(timeout_ms=3000):
            for records in batch.values():
                for r in records:
                    if r.value.startswith(b"PP"):
                        b = codec.decode(r.value)
                        out |= {
                            (b.channel_ids[i], int(t))
                            for i, t in zip(b.channel_index, b.ts_ns, strict=True)
                        }
    finally:
        await consumer.stop()
    return out


async def _dlq(bootstrap: str, topic: str) -> list[tuple[bytes, dict[str, bytes]]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"dlq-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        got = await consumer.getmany(timeout_ms=10000)
        return [(r.value, dict(r.headers)) for rs in got.values() for r in rs]
    finally:
        await consumer.stop()


def _metric_values(text: str) -> dict[str, float]:
    """Prometheus text format: `name{labels} value` per sample line."""
    pairs = (line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    return {name: float(value) for name, value in pairs}


def _stored(dsn: str) -> set[tuple[str, int]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT channel_id, ts_ns FROM readings").fetchall()
    return {(str(c), int(t)) for c, t in rows}


async def _until(predicate: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(1.0)
    raise AssertionError(f"timed out waiting for {what}")


async def test_two_aggregators_one_killed_over_kafka_and_postgres_match_ground_truth(
    tmp_path: Path, procs: Procs, kafka_bootstrap: str, pg_dsn: str
) -> None:
    plant, plant_file = plant_on_free_ports(tmp_path)
    procs.env["PT_CONFIG"] = str(plant_file)
    topic = procs.env["PT_READINGS_TOPIC"]
    base = f"http://127.0.0.1:{procs.env['PT_API_PORT']}"
    sim = PlantSimulator(plant, seed=23, start_ns=time.time_ns())
    token = procs.run("token", "create", "--name", "e2e", "--role", "viewer", "--site", "suzhou")
    headers = {"Authorization": f"Bearer {token}"}
    async with serve(sim), httpx.AsyncClient(base_url=base, timeout=10, headers=headers) as api:
        procs.start("api")
        survivor = procs.start("aggregator")  # two share the partitions as one consumer group
        victim = procs.start("aggregator")
        gateway = procs.start("gateway")

        async def healthy() -> bool:
            try:
                return (await api.get("/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        await _until(healthy, 60, "the API")
        await asyncio.sleep(12)
        victim.send_signal(signal.SIGKILL)  # crash: no clean shutdown, offsets as they were
        victim.wait(timeout=10)
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        await producer.send_and_wait(
            topic, b"\x00garbage from a broken gateway", key=b"line-1-meter"
        )
        await producer.stop()
        await asyncio.sleep(5)  # the survivor takes the victim's partitions over
        procs.start("aggregator")  # and gives some back when the victim returns
        await asyncio.sleep(25)
        gateway_metrics = (
            await api.get(f"http://127.0.0.1:{procs.env['PT_GATEWAY_METRICS_PORT']}/metrics")
        ).text
        gateway.send_signal(signal.SIGTERM)
        assert gateway.wait(timeout=15) == 0

        published = await _topic_readings(kafka_bootstrap, topic)

        async def caught_up() -> bool:
            return _stored(pg_dsn) == published

        await _until(caught_up, 90, "the aggregator to store every published reading")
        with psycopg.connect(pg_dsn) as conn:
            a, b = window(plant, conn.execute(SPAN_SQL).fetchall())
        totals = (
            await api.get("/v1/sites/suzhou/totals", params={"start": iso(a), "end": iso(b)})
        ).json()
        live = (await api.get("/v1/live")).json()
        series = (
            await api.get(
                "/v1/channels/main-incomer.energy-import/series",
                params={"start": iso(a), "end": iso(b)},
            )
        ).json()

    assert survivor.poll() is None  # it ran throughout
    assert_totals_match_ground_truth(plant, sim, totals, a, b)
    scraped = _metric_values(gateway_metrics)
    assert scraped["plantpulse_gateway_batches_read_total"] > 0
    assert scraped['plantpulse_gateway_readings_read_total{quality="good"}'] > 0
    assert scraped['plantpulse_gateway_batches_published_total{path="direct"}'] > 0
    assert scraped["plantpulse_gateway_buffered_batches"] == 0
    assert {c["channel_id"] for c in live} == set(plant.channels)
    assert all(c["value"] is not None for c in live)
    assert len(series) == (b - a) // (BUCKET_S * 10**9)
    dlq = await _dlq(kafka_bootstrap, f"{topic}.dlq")
    assert [v for v, _ in dlq] == [b"\x00garbage from a broken gateway"]
    assert b"bad magic" in dlq[0][1]["reason"] and dlq[0][1]["source"].startswith(topic.encode())

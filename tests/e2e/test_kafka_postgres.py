"""The distributed pipeline end to end: `plantpulse gateway`, `aggregator` and `api` as separate
processes over a real Kafka broker and a real PostgreSQL, with the aggregator SIGKILLed mid-run
and a malformed message injected into the readings topic.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from ingest.simulator.model import PlantSimulator
from ingest.simulator.servers import serve
from tests.e2e.support import (
    BUCKET_S,
    SPAN_SQL,
    Procs,
    assert_totals_match_ground_truth,
    iso,
    plant_on_free_ports,
    stored,
    topic_readings,
    until,
    window,
)

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


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

        await until(healthy, 60, "the API")
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

        published = await topic_readings(kafka_bootstrap, topic)

        async def caught_up() -> bool:
            return stored(pg_dsn) == published

        await until(caught_up, 90, "the aggregator to store every published reading")
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

"""Self-check of the test harness: a real PostgreSQL cluster and a real Kafka broker start."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # type: ignore[import-untyped, unused-ignore]

from tests.harness.kafka import kafka_broker
from tests.harness.postgres import postgres_cluster


@pytest.mark.postgres
def test_postgres_cluster_answers_select_1(tmp_path: Path) -> None:
    with postgres_cluster(tmp_path) as dsn, psycopg.connect(dsn, connect_timeout=10) as conn:
        row = conn.execute("select 1").fetchone()
    assert row == (1,)


async def _round_trip(bootstrap: str, topic: str) -> bytes:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello plant", key=b"line-1")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"harness-{topic}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
    finally:
        await consumer.stop()
    value: bytes = record.value
    return value


@pytest.mark.kafka
def test_kafka_broker_round_trips_one_message(tmp_path: Path) -> None:
    topic = f"harness-{uuid.uuid4().hex[:8]}"
    with kafka_broker(tmp_path) as bootstrap:
        assert asyncio.run(_round_trip(bootstrap, topic)) == b"hello plant"

"""KafkaBus creates its topics with their partitions; creating them again is harmless."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer

from services.bus.kafka import BusError, KafkaBus

pytestmark = pytest.mark.kafka


async def _partitions(bootstrap: str, topic: str) -> set[int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        return consumer.partitions_for_topic(topic) or set()
    finally:
        await consumer.stop()


async def test_topics_are_created_once_with_their_partitions(kafka_bootstrap: str) -> None:
    topic = f"topics-{uuid.uuid4().hex[:8]}"
    async with KafkaBus(kafka_bootstrap) as bus:
        await bus.ensure_topics([topic, f"{topic}.dlq"], partitions=3, replication=1)
        await bus.ensure_topics([topic], partitions=3, replication=1)
    assert await _partitions(kafka_bootstrap, topic) == {0, 1, 2}
    assert await _partitions(kafka_bootstrap, f"{topic}.dlq") == {0, 1, 2}


async def test_an_impossible_replication_factor_is_a_clear_error(kafka_bootstrap: str) -> None:
    async with KafkaBus(kafka_bootstrap) as bus:
        with pytest.raises(BusError, match="cannot create topic"):
            await bus.ensure_topics([f"topics-{uuid.uuid4().hex[:8]}"], partitions=1, replication=3)

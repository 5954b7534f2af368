"""KafkaBus: the Bus port on Apache Kafka through aiokafka.

Idempotent producer with acks=all; consumers never auto-commit, so offsets move only after the
aggregator's store transaction has committed.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from types import TracebackType

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from compute.errors import PlantPulseError
from services.bus import Message

_TOPIC_ALREADY_EXISTS = 36


class BusError(PlantPulseError):
    """The bus failed to publish, consume or commit."""


class _Sub:
    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer

    async def poll(self, max_records: int, timeout_s: float) -> list[Message]:
        try:
            got = await self.consumer.getmany(
                timeout_ms=int(timeout_s * 1000), max_records=max_records
            )
        except KafkaError as e:
            raise BusError(f"consume failed: {e}") from e
        return [
            Message(
                topic=r.topic,
                partition=r.partition,
                offset=r.offset,
                key=r.key,
                value=r.value,
                headers=tuple(r.headers or ()),
            )
            for records in got.values()
            for r in records
        ]

    async def commit(self, messages: Sequence[Message]) -> None:
        offsets: dict[TopicPartition, int] = {}
        for m in messages:
            tp = TopicPartition(m.topic, m.partition)
            offsets[tp] = max(offsets.get(tp, 0), m.offset + 1)
        if not offsets:
            return
        try:
            await self.consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in offsets.items()})
        except KafkaError as e:
            raise BusError(f"commit failed: {e}") from e

    async def rewind(self) -> None:
        assigned = self.consumer.assignment()
        if assigned:
            await self.consumer.seek_to_committed(*assigned)


class KafkaBus:
    def __init__(
        self, bootstrap: str, *, client_id: str = "plantpulse", timeout_s: float = 10.0
    ) -> None:
        self.bootstrap = bootstrap
        self.client_id = client_id
        self.timeout_ms = int(timeout_s * 1000)
        self.producer: AIOKafkaProducer | None = None

    async def __aenter__(self) -> KafkaBus:
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            client_id=self.client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            request_timeout_ms=self.timeout_ms,
        )
        try:
            await self.producer.start()
        except KafkaError as e:
            await self.producer.stop()
            raise BusError(f"cannot reach Kafka at {self.bootstrap}: {e}") from e
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.producer is not None:
            await self.producer.stop()

    async def publish(
        self, topic: str, key: bytes, value: bytes, headers: Sequence[tuple[str, bytes]] = ()
    ) -> None:
        assert self.producer is not None, "use KafkaBus as an async context manager"
        try:
            await self.producer.send_and_wait(topic, value=value, key=key, headers=list(headers))
        except KafkaError as e:
            raise BusError(f"publish to {topic} failed: {e}") from e

    async def probe(self) -> None:
        """Raise BusError unless a broker answers a metadata request."""
        assert self.producer is not None, "use KafkaBus as an async context manager"
        try:
            await self.producer.client.fetch_all_metadata()
        except KafkaError as e:
            raise BusError(f"cannot reach Kafka at {self.bootstrap}: {e}") from e

    async def ensure_topics(self, names: Sequence[str], partitions: int, replication: int) -> None:
        """Create the topics that do not exist yet; brokers often forbid auto-creation."""
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap,
            client_id=self.client_id,
            request_timeout_ms=self.timeout_ms,
        )
        try:
            await admin.start()
            response = await admin.create_topics(
                [
                    NewTopic(n, num_partitions=partitions, replication_factor=replication)
                    for n in names
                ]
            )
        except KafkaError as e:
            raise BusError(f"cannot create topics {list(names)}: {e}") from e
        finally:
            await admin.close()
        for topic, code, *rest in response.topic_errors:
            if code not in (0, _TOPIC_ALREADY_EXISTS):
                raise BusError(
                    f"cannot create topic {topic}: error {code} {rest[0] if rest else ''}"
                )

    @contextlib.asynccontextmanager
    async def subscribe(self, topic: str, group: str) -> AsyncIterator[_Sub]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=self.bootstrap,
            client_id=self.client_id,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=self.timeout_ms,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=1_000,
        )
        try:
            await consumer.start()
        except KafkaError as e:
            raise BusError(f"cannot join group {group} at {self.bootstrap}: {e}") from e
        try:
            yield _Sub(consumer)
        finally:
            await consumer.stop()

"""MemoryBus: the in-process bus of the embedded default, with Kafka's contract.

Keyed partitions keep per-key order; a group's committed offsets survive its consumers, so
what a consumer did not commit is delivered again to the next one. Like a Kafka retention limit,
each partition keeps its newest `retain` messages plus any a group has not committed, so a
long-running demo does not grow without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from services.bus import Message


@dataclass
class _Partition:
    base: int = 0  # offset of log[0]
    log: list[Message] = field(default_factory=list)

    @property
    def end(self) -> int:
        return self.base + len(self.log)

    def read(self, offset: int, limit: int) -> list[Message]:
        start = max(offset, self.base) - self.base
        return self.log[start : start + limit]

    def prune(self, below: int) -> None:
        if below > self.base:
            del self.log[: below - self.base]
            self.base = below


class _Sub:
    def __init__(self, bus: MemoryBus, topic: str, group: str) -> None:
        self.bus = bus
        self.topic = topic
        self.group = group
        self.position = list(bus.committed(topic, group))

    async def poll(self, max_records: int, timeout_s: float) -> list[Message]:
        parts = self.bus.partitions(self.topic)
        try:
            async with asyncio.timeout(timeout_s):
                while not any(self.position[i] < p.end for i, p in enumerate(parts)):
                    async with self.bus.changed:
                        await self.bus.changed.wait()
        except TimeoutError:
            return []
        out: list[Message] = []
        for i, p in enumerate(parts):
            take = p.read(self.position[i], max_records - len(out))
            out.extend(take)
            if take:
                self.position[i] = take[-1].offset + 1
        return out

    async def commit(self, messages: Sequence[Message]) -> None:
        offsets = self.bus.committed(self.topic, self.group)
        for m in messages:
            offsets[m.partition] = max(offsets[m.partition], m.offset + 1)
        self.bus.prune(self.topic)

    async def rewind(self) -> None:
        self.position = list(self.bus.committed(self.topic, self.group))


class MemoryBus:
    def __init__(self, partitions: int = 4, retain: int = 10_000) -> None:
        self.n_partitions = partitions
        self.retain = retain
        self.topics: dict[str, list[_Partition]] = {}
        self.offsets: dict[tuple[str, str], list[int]] = {}
        self.changed = asyncio.Condition()

    def partitions(self, topic: str) -> list[_Partition]:
        return self.topics.setdefault(topic, [_Partition() for _ in range(self.n_partitions)])

    def committed(self, topic: str, group: str) -> list[int]:
        return self.offsets.setdefault((topic, group), [0] * self.n_partitions)

    def prune(self, topic: str) -> None:
        """Drop messages beyond the retention that every group of the topic has committed."""
        groups = [offs for (t, _), offs in self.offsets.items() if t == topic]
        for i, p in enumerate(self.partitions(topic)):
            p.prune(min(p.end - self.retain, *(offs[i] for offs in groups)))

    async def publish(
        self, topic: str, key: bytes, value: bytes, headers: Sequence[tuple[str, bytes]] = ()
    ) -> None:
        i = zlib.crc32(key) % self.n_partitions
        p = self.partitions(topic)[i]
        msg = Message(
            topic=topic, partition=i, offset=p.end, key=key, value=value, headers=tuple(headers)
        )
        p.log.append(msg)
        async with self.changed:
            self.changed.notify_all()

    @contextlib.asynccontextmanager
    async def subscribe(self, topic: str, group: str) -> AsyncIterator[_Sub]:
        self.committed(topic, group)
        yield _Sub(self, topic, group)

    async def __aenter__(self) -> MemoryBus:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

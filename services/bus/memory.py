"""MemoryBus: the in-process bus of the embedded default, with Kafka's contract.

Keyed partitions keep per-key order; a group's committed offsets survive its consumers, so
what a consumer did not commit is delivered again to the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import AsyncIterator, Sequence

from services.bus import Message


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
                while not any(self.position[p] < len(log) for p, log in enumerate(parts)):
                    async with self.bus.changed:
                        await self.bus.changed.wait()
        except TimeoutError:
            return []
        out: list[Message] = []
        for p, log in enumerate(parts):
            take = log[self.position[p] : self.position[p] + max_records - len(out)]
            out.extend(take)
            self.position[p] += len(take)
        return out

    async def commit(self, messages: Sequence[Message]) -> None:
        offsets = self.bus.committed(self.topic, self.group)
        for m in messages:
            offsets[m.partition] = max(offsets[m.partition], m.offset + 1)

    async def rewind(self) -> None:
        self.position = list(self.bus.committed(self.topic, self.group))


class MemoryBus:
    def __init__(self, partitions: int = 4) -> None:
        self.n_partitions = partitions
        self.topics: dict[str, list[list[Message]]] = {}
        self.offsets: dict[tuple[str, str], list[int]] = {}
        self.changed = asyncio.Condition()

    def partitions(self, topic: str) -> list[list[Message]]:
        return self.topics.setdefault(topic, [[] for _ in range(self.n_partitions)])

    def committed(self, topic: str, group: str) -> list[int]:
        return self.offsets.setdefault((topic, group), [0] * self.n_partitions)

    async def publish(
        self, topic: str, key: bytes, value: bytes, headers: Sequence[tuple[str, bytes]] = ()
    ) -> None:
        p = zlib.crc32(key) % self.n_partitions
        log = self.partitions(topic)[p]
        log.append(
            Message(
                topic=topic,
                partition=p,
                offset=len(log),
                key=key,
                value=value,
                headers=tuple(headers),
            )
        )
        async with self.changed:
            self.changed.notify_all()

    @contextlib.asynccontextmanager
    async def subscribe(self, topic: str, group: str) -> AsyncIterator[_Sub]:
        yield _Sub(self, topic, group)

    async def __aenter__(self) -> MemoryBus:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

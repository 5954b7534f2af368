"""The Bus port: publish and consume batches with at-least-once delivery and per-key order.

Offsets move only by an explicit commit, which the aggregator calls after its store
transaction has committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


class Subscription(Protocol):
    async def poll(self, max_records: int, timeout_s: float) -> list[Message]:
        """Messages after the current position; [] when none arrived within timeout_s."""
        ...

    async def commit(self, messages: Sequence[Message]) -> None:
        """Mark these messages (and all before them in their partitions) as handled."""
        ...

    async def rewind(self) -> None:
        """Go back to the committed position, so uncommitted messages come again."""
        ...


class Bus(Protocol):
    async def publish(
        self, topic: str, key: bytes, value: bytes, headers: Sequence[tuple[str, bytes]] = ()
    ) -> None:
        """Publish and wait until the bus holds the message durably."""
        ...

    def subscribe(self, topic: str, group: str) -> AbstractAsyncContextManager[Subscription]: ...

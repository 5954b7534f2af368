"""The Store port and its records: readings, base buckets, channel state, latest values, totals.

A write is one transaction holding a step's readings, bucket deltas and channel state, so a
replay after a crash finds the state it left and counts nothing twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from compute.aggregate import BucketDeltas, ChannelState, Readings


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreWrite:
    readings: Readings
    buckets: BucketDeltas
    state: dict[str, ChannelState]


@dataclass(frozen=True, slots=True, kw_only=True)
class Latest:
    channel_id: str
    ts_ns: int
    value: float
    quality: int
    receive_ts_ns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Bucket:
    channel_id: str
    bucket_start_ns: int
    n: int
    n_good: int
    sum: float
    min: float | None
    max: float | None
    last: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelTotal:
    channel_id: str
    sum: float
    n: int
    n_good: int
    buckets: int


class Store(Protocol):
    async def load_state(self, channel_ids: Sequence[str]) -> dict[str, ChannelState]: ...

    async def write(self, w: StoreWrite) -> None:
        """Apply a step atomically: readings idempotently, bucket deltas additively, state."""
        ...

    async def latest(self) -> list[Latest]: ...

    async def series(self, channel_id: str, start_ns: int, end_ns: int) -> list[Bucket]:
        """Base buckets of one channel with start in [start_ns, end_ns), oldest first."""
        ...

    async def totals(
        self, channel_ids: Sequence[str], start_ns: int, end_ns: int
    ) -> dict[str, ChannelTotal]:
        """Sums over base buckets with start in [start_ns, end_ns), per channel that has any."""
        ...

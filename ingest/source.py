"""The Source port: anything that yields ReadingBatches from field devices."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from compute.model import Quality, ReadingBatch


class Source(Protocol):
    """Yields one ReadingBatch per meter per poll or publish cycle, forever, reconnecting itself."""

    def batches(self) -> AsyncIterator[ReadingBatch]: ...


def opcua_quality(status_code_value: int) -> Quality:
    """Map an OPC UA StatusCode to a quality by severity bits (Good 00, Uncertain 01, Bad 10)."""
    severity = (status_code_value >> 30) & 0b11
    return {0: Quality.GOOD, 1: Quality.UNCERTAIN}.get(severity, Quality.BAD)

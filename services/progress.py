"""Readiness of a consuming process (the aggregator, alerting), for its GET /readyz: has its
consume loop finished a poll recently, and did the store (and bus) answer its last cycle."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from services.metrics import Registry

STALE_AFTER_S = 60.0  # longer than the slowest healthy poll (1 s) and a big batch's write


class Progress:
    """Marked by the consume loop after each cycle; asked by /readyz. No I/O of its own."""

    def __init__(
        self,
        name: str,
        *,
        stale_after_s: float = STALE_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.stale_after_s = stale_after_s
        self.clock = clock
        self.done_at: float | None = None  # the last cycle that polled and stored without error
        self.error: str | None = None  # why the last cycle failed; None after a good one

    def done(self) -> None:
        """A cycle polled the bus and its reads and writes went through."""
        self.done_at = self.clock()
        self.error = None

    def failed(self, reason: str) -> None:
        """A cycle failed (the store or bus did not answer); the loop retries from its commit."""
        self.error = reason

    def age_s(self) -> float:
        """Seconds since the last good cycle; NaN before the first."""
        return math.nan if self.done_at is None else self.clock() - self.done_at

    def not_ready(self) -> str | None:
        """Why the process is not ready, or None when it is."""
        if self.error is not None:
            return f"{self.name}: the last cycle failed: {self.error}"
        if self.done_at is None:
            return f"{self.name}: not consuming yet"
        if (age := self.age_s()) > self.stale_after_s:
            limit = f"{self.stale_after_s:g} s"
            return f"{self.name}: no cycle finished for {age:.0f} s (limit {limit})"
        return None

    def register(self, registry: Registry) -> None:
        registry.gauge(
            f"plantpulse_{self.name}_last_cycle_age_seconds",
            f"Seconds since the {self.name}'s consume loop last finished a cycle (NaN: none yet)",
            self.age_s,
        )

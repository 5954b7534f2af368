"""The watermark: an event-time frontier that follows the wall clock, and late arrivals."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from compute.errors import PlantPulseError
from compute.model import NO_TS

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
B1 = npt.NDArray[np.bool_]


class WatermarkError(PlantPulseError, ValueError):
    """A watermark setting is inconsistent."""


class Arrival(enum.IntEnum):
    """A reading is on time while its bucket is open, and late once the watermark closed it."""

    ON_TIME = 0
    LATE = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Watermark:
    """Event-time frontier: watermark_ns = now_ns - allowed_lateness_ns, never moving back.

    It follows the clock, not the data, so a silent sensor does not hold windows open. A bucket
    [start, start + bucket) is closed once its end ≤ watermark_ns; a reading for a closed bucket
    is late: the caller re-opens the bucket, recomputes and upserts it, and records a
    restatement of every report that included it.
    """

    allowed_lateness_ns: int
    watermark_ns: int = NO_TS

    def __post_init__(self) -> None:
        if self.allowed_lateness_ns < 0:
            raise WatermarkError("allowed_lateness_ns must not be negative")

    def advance(self, now_ns: int) -> Watermark:
        return Watermark(
            allowed_lateness_ns=self.allowed_lateness_ns,
            watermark_ns=advance_watermark_ns(self.watermark_ns, now_ns, self.allowed_lateness_ns),
        )


def advance_watermark_ns(watermark_ns: int, now_ns: int, allowed_lateness_ns: int) -> int:
    """max(watermark_ns, now_ns - allowed_lateness_ns): monotonic even if now_ns goes back."""
    return max(watermark_ns, now_ns - allowed_lateness_ns)


def closed(bucket_start_ns: int, bucket_ns: int, watermark_ns: int) -> bool:
    """The bucket [bucket_start_ns, bucket_start_ns + bucket_ns) is closed: its end ≤ watermark."""
    return bucket_start_ns + bucket_ns <= watermark_ns


def classify_arrival(ts_ns: int, bucket_ns: int, watermark_ns: int) -> Arrival:
    """LATE when the bucket containing ts_ns is already closed, ON_TIME otherwise."""
    late = closed(ts_ns // bucket_ns * bucket_ns, bucket_ns, watermark_ns)
    return Arrival.LATE if late else Arrival.ON_TIME


def late_mask(ts_ns: I64, bucket_ns: int, watermark_ns: int) -> B1:
    """classify_arrival over an array: True where the reading is late."""
    return np.asarray(ts_ns // bucket_ns * bucket_ns + bucket_ns <= watermark_ns)


def late_buckets(ch: I32, ts_ns: I64, bucket_ns: int, watermark_ns: int) -> tuple[I32, I64]:
    """The distinct (channel, bucket_start_ns) that late readings re-open, sorted."""
    late = late_mask(ts_ns, bucket_ns, watermark_ns)
    pairs = np.unique(np.stack([ch[late].astype(np.int64), ts_ns[late] // bucket_ns]), axis=1)
    return pairs[0].astype(np.int32), pairs[1] * bucket_ns

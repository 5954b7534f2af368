"""Base buckets as a series (per bucket, or rolled up into calendar periods of a timezone), and
the idle energy of a meter against its production line."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from compute.calendar import Period, PeriodBuckets, rollup
from compute.indicators import idle_energy
from compute.model import NO_TS
from compute.rollups import plan
from services.store import Bucket, ChannelTotal, Store


@dataclass(frozen=True, slots=True, kw_only=True)
class Point:
    start_ns: int
    end_ns: int
    n: int
    n_good: int
    sum: float
    estimated: float
    min: float | None
    max: float | None
    last: float | None


def _opt(x: float) -> float | None:
    return None if x != x else float(x)


def series_points(
    buckets: Sequence[Bucket], bucket_ns: int, tz: str, period: Period | None
) -> list[Point]:
    """One channel's buckets (oldest first) as points, or summed per calendar period."""
    if period is None or not buckets:
        return [
            Point(
                start_ns=b.bucket_start_ns,
                end_ns=b.bucket_start_ns + bucket_ns,
                n=b.n,
                n_good=b.n_good,
                sum=b.sum,
                estimated=b.estimated,
                min=b.min,
                max=b.max,
                last=b.last,
            )
            for b in buckets
        ]
    nan = float("nan")
    start = np.array([b.bucket_start_ns for b in buckets], dtype=np.int64)
    last = np.array([nan if b.last is None else b.last for b in buckets])
    n = np.array([b.n for b in buckets], dtype=np.int64)
    n_good = np.array([b.n_good for b in buckets], dtype=np.int64)
    low = np.array([nan if b.min is None else b.min for b in buckets])
    high = np.array([nan if b.max is None else b.max for b in buckets])
    last_ts = np.where(np.isnan(last), NO_TS, start)  # the bucket's order stands in

    def roll(values: Sequence[float]) -> PeriodBuckets:
        return rollup(
            channel=np.zeros(len(buckets), np.int32),
            bucket_start_ns=start,
            n=n,
            n_good=n_good,
            sum=np.array(values, dtype=np.float64),
            min=low,
            max=high,
            last=last,
            last_ts_ns=last_ts,
            tz=tz,
            period=period,
        )

    total = roll([b.sum for b in buckets])
    estimated = roll([b.estimated for b in buckets])
    return [
        Point(
            start_ns=int(total.period_start_ns[i]),
            end_ns=int(total.period_end_ns[i]),
            n=int(total.n[i]),
            n_good=int(total.n_good[i]),
            sum=float(total.sum[i]),
            estimated=float(estimated.sum[i]),
            min=_opt(total.min[i]),
            max=_opt(total.max[i]),
            last=_opt(total.last[i]),
        )
        for i in range(len(total.n))
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class Idle:
    energy: float  # consumption in the buckets where the line stood still
    idle_buckets: int
    missing_buckets: int  # idle buckets without a consumption figure
    unknown_buckets: int  # buckets where the line's counter had no good reading: not counted


def idle_over(
    energy: Sequence[Bucket], line: Sequence[Bucket], start_ns: int, end_ns: int, bucket_ns: int
) -> Idle:
    """Idle energy over [start_ns, end_ns): a bucket is idle when the line's production counter
    had good readings and did not advance; one without a good reading is unknown, not idle."""
    slots = (end_ns - start_ns) // bucket_ns
    kwh = np.full(slots, np.nan)
    for b in energy:
        kwh[(b.bucket_start_ns - start_ns) // bucket_ns] = b.sum
    state = np.full(slots, -1, np.int8)  # unknown
    for b in line:
        if b.n_good:
            state[(b.bucket_start_ns - start_ns) // bucket_ns] = 1 if b.sum == 0.0 else 0
    known = state >= 0
    result = idle_energy(kwh[known], state[known] == 1)
    return Idle(
        energy=result.energy_kwh,
        idle_buckets=result.buckets,
        missing_buckets=result.missing_buckets,
        unknown_buckets=int((~known).sum()),
    )


async def period_totals(
    store: Store, channel_ids: Sequence[str], start_ns: int, end_ns: int, tz: str
) -> dict[str, ChannelTotal]:
    """Per channel, the totals over [start_ns, end_ns): whole local months, days and hours
    from the roll-ups, the rest from the base buckets (compute.rollups.plan), in one query."""
    return await store.plan_totals(
        channel_ids, plan(start_ns, end_ns, tz, await store.rollups_from_ns())
    )

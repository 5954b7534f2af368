"""Roll-ups of bucket deltas into the local hours, days and months of each channel's site, kept
additively beside the base buckets, so a year's totals read 12 rows a channel, not 525,600.

Pure. A roll-up delta merges like a bucket delta: counts, sums and the estimated part add, min
and max are kept, the last value goes by its timestamp. Hours are local hours, so a fall-back
night has two 01:00 hours, each its own row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from compute.buckets import BucketDeltas
from compute.calendar import Period, PeriodBuckets, period_end_ns, periods_between, rollup

PERIODS = (Period.HOUR, Period.DAY, Period.MONTH)  # finest first


def rollup_deltas(b: BucketDeltas, tz_of: Mapping[str, str]) -> dict[Period, BucketDeltas]:
    """Per period: the deltas of b merged into the periods of each channel's timezone, as
    BucketDeltas whose bucket_start_ns is the period's start (channel indexes b.keys)."""
    zones = np.array([tz_of[k] for k in b.keys], dtype=object)[b.channel]
    groups = [(tz, zones == tz) for tz in sorted(set(zones.tolist()))]
    return {
        period: _assemble(
            b.keys,
            [
                (_roll(b, rows, tz, period, b.sum), _roll(b, rows, tz, period, b.estimated))
                for tz, rows in groups
            ],
        )
        for period in PERIODS
    }


def _roll(
    b: BucketDeltas,
    rows: npt.NDArray[np.bool_],
    tz: str,
    period: Period,
    values: npt.NDArray[np.float64],
) -> PeriodBuckets:
    return rollup(
        channel=b.channel[rows],
        bucket_start_ns=b.bucket_start_ns[rows],
        n=b.n[rows],
        n_good=b.n_good[rows],
        sum=values[rows],
        min=b.min[rows],
        max=b.max[rows],
        last=b.last[rows],
        last_ts_ns=b.last_ts_ns[rows],
        tz=tz,
        period=period,
    )


def _assemble(
    keys: tuple[str, ...], parts: list[tuple[PeriodBuckets, PeriodBuckets]]
) -> BucketDeltas:
    """One BucketDeltas of the timezones' roll-ups; the second of each pair holds the
    estimated part in its sum column."""

    def col(name: str, dtype: type[np.generic], which: int = 0) -> npt.NDArray[Any]:
        arrays = [getattr(p[which], name) for p in parts]
        return np.concatenate(arrays).astype(dtype) if arrays else np.zeros(0, dtype)

    return BucketDeltas(
        keys=keys,
        channel=col("channel", np.int32),
        bucket_start_ns=col("period_start_ns", np.int64),
        n=col("n", np.int64),
        n_good=col("n_good", np.int64),
        sum=col("sum", np.float64),
        estimated=col("sum", np.float64, 1),
        min=col("min", np.float64),
        max=col("max", np.float64),
        last=col("last", np.float64),
        last_ts_ns=col("last_ts_ns", np.int64),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Part:
    """A piece of a period to total: from roll-ups of a kind ("month", "day", "hour") or from
    buckets."""

    source: str
    start_ns: int
    end_ns: int


def plan(start_ns: int, end_ns: int, tz: str, rollups_from_ns: Mapping[Period, int]) -> list[Part]:
    """Cover [start_ns, end_ns) exactly, with no overlap: whole local months from month
    roll-ups, whole local days of what is left from day roll-ups, whole hours of the rest from
    hour roll-ups, and the ragged edges from base buckets. Each kind of roll-up serves only
    periods from its rollups_from_ns on, where it is complete."""
    parts: list[Part] = []
    rest = [(start_ns, end_ns)]
    for period in reversed(PERIODS):  # coarsest first
        rest = [
            piece
            for a, b in rest
            for piece in _pieces(a, b, tz, period, rollups_from_ns[period], parts)
        ]
    parts += [Part(source="buckets", start_ns=a, end_ns=b) for a, b in rest]
    return sorted(parts, key=lambda p: p.start_ns)


def _pieces(
    start_ns: int, end_ns: int, tz: str, period: Period, from_ns: int, parts: list[Part]
) -> list[tuple[int, int]]:
    """Append the whole periods inside [max(start, from), end) as one part; return the rest."""
    whole = [
        int(s) for s in periods_between(start_ns, end_ns, tz, period) if s >= max(start_ns, from_ns)
    ]
    ends = [int(e) for e in period_end_ns(np.array(whole, np.int64), tz, period)] if whole else []
    inside = [(s, e) for s, e in zip(whole, ends, strict=True) if e <= end_ns]
    if not inside:
        return [(start_ns, end_ns)]
    first, last = inside[0][0], inside[-1][1]
    parts.append(Part(source=period.value, start_ns=first, end_ns=last))
    return [(a, b) for a, b in ((start_ns, first), (last, end_ns)) if b > a]

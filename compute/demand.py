"""15-minute electrical demand and its running maximum per calendar month, from the coarse ring
of compute.windows. Pure: the watermark and the month starts are parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from compute.model import NO_TS
from compute.windows import (
    B1,
    F32,
    F64,
    I32,
    I64,
    NO_SLOT,
    U16,
    RollingSpec,
    RollingState,
    WindowError,
)


def close_demand_py(
    watermark_ns: int,
    month_start_ns: I64,
    track: B1,
    bucket_ns: int,
    coarse_ns: int,
    head_idx: I64,
    coarse_sum: F32,
    coarse_ng: U16,
    closed_until_ns: I64,
    month_ns: I64,
    max_kw: F64,
    max_start_ns: I64,
) -> tuple[I32, I64, F64, I64, I64, F64, I64, F64, I64]:
    """Finalise the demand intervals the watermark has passed; see close_demand.

    Returns (channel, interval_start_ns, demand_kw) rows sorted by channel then interval, the
    new (closed_until_ns, month_ns, max_kw, max_start_ns) and, per channel, the final max of a
    month that closed in this call (NaN / NO_TS otherwise).
    """
    r = coarse_ns // bucket_ns
    kc = coarse_sum.shape[1]
    kw_per_kwh = 3600.0 * 1e9 / coarse_ns
    n_ch = len(head_idx)
    lo = np.zeros(n_ch, dtype=np.int64)
    hi = np.full(n_ch, -1, dtype=np.int64)
    rows = 0
    for c in range(n_ch):
        if track[c] and head_idx[c] != NO_SLOT:
            hc = head_idx[c] // r  # intervals past the ring's head have no data yet
            first = closed_until_ns[c] // coarse_ns if closed_until_ns[c] != NO_TS else NO_SLOT
            lo[c] = max(first, hc - kc + 1)  # intervals the ring lost are not emitted
            hi[c] = min(watermark_ns // coarse_ns - 1, hc)
            rows += max(0, hi[c] - lo[c] + 1)
    o_ch = np.empty(rows, dtype=np.int32)
    o_start = np.empty(rows, dtype=np.int64)
    o_kw = np.empty(rows, dtype=np.float64)
    until, month, mx, mx_at = (
        closed_until_ns.copy(),
        month_ns.copy(),
        max_kw.copy(),
        max_start_ns.copy(),
    )
    prev_kw = np.full(n_ch, np.nan)
    prev_at = np.full(n_ch, NO_TS, dtype=np.int64)
    k = 0
    for c in range(n_ch):
        if not track[c] or head_idx[c] == NO_SLOT:
            continue
        if month[c] == NO_TS:  # a new state starts its max in the month of its first call
            month[c] = month_start_ns[c]
        for j in range(lo[c], hi[c] + 1):
            s = j * coarse_ns
            if month_start_ns[c] > month[c] and s >= month_start_ns[c]:
                prev_kw[c], prev_at[c] = mx[c], mx_at[c]
                month[c], mx[c], mx_at[c] = month_start_ns[c], np.nan, NO_TS
            p = j % kc
            e = coarse_sum[c, p]
            kw = np.nan if coarse_ng[c, p] == 0 and e == 0.0 else float(e) * kw_per_kwh
            o_ch[k], o_start[k], o_kw[k] = c, s, kw
            k += 1
            if s >= month[c] and not math.isnan(kw) and (math.isnan(mx[c]) or kw > mx[c]):
                mx[c], mx_at[c] = kw, s
        if hi[c] >= lo[c]:
            until[c] = (hi[c] + 1) * coarse_ns
        if month_start_ns[c] > month[c] and until[c] >= month_start_ns[c]:
            prev_kw[c], prev_at[c] = mx[c], mx_at[c]  # the old month is final, the new one empty
            month[c], mx[c], mx_at[c] = month_start_ns[c], np.nan, NO_TS
    return o_ch, o_start, o_kw, until, month, mx, mx_at, prev_kw, prev_at


_jit: Any = numba.njit(cache=True, nogil=True)
close_demand_kernel = _jit(close_demand_py)


@dataclass(frozen=True, slots=True, kw_only=True)
class DemandState:
    """Per channel: every demand interval ending at or before closed_until_ns is final;
    month_start_ns is the month the running max belongs to; max_kw (NaN before the first
    final interval with data) occurred in the interval starting at max_start_ns. 32 B.
    """

    closed_until_ns: I64
    month_start_ns: I64
    max_kw: F64
    max_start_ns: I64


def new_demand_state(spec: RollingSpec, n_channels: int, from_ns: int) -> DemandState:
    """Demand from the interval containing from_ns on; earlier intervals are never emitted."""
    start = from_ns // spec.coarse_ns * spec.coarse_ns
    return DemandState(
        closed_until_ns=np.full(n_channels, start, np.int64),
        month_start_ns=np.full(n_channels, NO_TS, np.int64),
        max_kw=np.full(n_channels, np.nan),
        max_start_ns=np.full(n_channels, NO_TS, np.int64),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class DemandClose:
    """Intervals finalised by one close_demand call, and the new state.

    closed_month_max_kw / closed_month_max_start_ns hold, per channel, the final max of a month
    that ended in this call (NaN / NO_TS when none did).
    """

    channel: I32
    interval_start_ns: I64
    demand_kw: F64
    closed_month_max_kw: F64
    closed_month_max_start_ns: I64
    state: DemandState


def close_demand(
    demand: DemandState,
    rolling: RollingState,
    spec: RollingSpec,
    watermark_ns: int,
    month_start_ns: I64,
    track: B1 | None = None,
) -> DemandClose:
    """15-minute electrical demand of kWh counters, from the coarse ring (coarse_s = interval).

    Demand intervals are the fixed, clock-aligned coarse slots [k × 900 s, (k + 1) × 900 s) of
    epoch time; every real UTC offset is a multiple of 15 min, so they align with local clocks.
    Demand of an interval = kWh in it × 3600 / coarse_s, i.e. kWh × 4: its average kW. It is
    final once watermark_ns ≥ its end, and only final intervals enter the max; each is emitted
    once, with demand NaN when the interval had neither a good reading nor consumption. Later
    data for a final interval is a restatement for the caller, who recomputes the interval
    (and, if it held the max, the month's max) from the stored buckets.

    The running max is per calendar month, the first interval with the highest kW winning. The
    caller gives month_start_ns per channel: the start, in the site's timezone, of the month
    that contains watermark_ns. Once every interval before it is final, the old month's max is
    reported as closed and the new month starts empty. Intervals that left the coarse ring
    before the watermark passed them (the run fell further behind than the ring spans) are
    skipped: the coarse ring must span the allowed lateness plus one interval.
    """
    if np.any(month_start_ns % spec.coarse_ns):
        raise WindowError("month_start_ns must fall on a demand-interval boundary")
    mask = np.ones(len(rolling.head_idx), np.bool_) if track is None else track
    out = close_demand_kernel(
        watermark_ns, month_start_ns, mask, spec.bucket_ns, spec.coarse_ns, rolling.head_idx,
        rolling.coarse_sum, rolling.coarse_n_good,
        demand.closed_until_ns, demand.month_start_ns, demand.max_kw, demand.max_start_ns,
    )  # fmt: skip
    return DemandClose(
        channel=out[0],
        interval_start_ns=out[1],
        demand_kw=out[2],
        closed_month_max_kw=out[7],
        closed_month_max_start_ns=out[8],
        state=DemandState(
            closed_until_ns=out[3], month_start_ns=out[4], max_kw=out[5], max_start_ns=out[6]
        ),
    )

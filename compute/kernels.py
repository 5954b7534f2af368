"""numba kernels for the stream aggregator, each with a pure-Python twin of the same name + `_py`.

Inputs are sorted by (channel, ts_ns). Kernels take arrays plus explicit state and return arrays;
they never mutate their inputs. The twins define the semantics; hypothesis checks both agree.
"""

from __future__ import annotations

import enum
import math
from typing import Any

import numba
import numpy as np
import numpy.typing as npt
from numba.extending import register_jitable

from compute.model import NO_TS  # in counter state: the channel has no previous reading

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
B1 = npt.NDArray[np.bool_]
I8 = npt.NDArray[np.int8]


class CounterEvent(enum.IntEnum):
    """What a counter sample did, per sample; the numbers are stored with counter events."""

    NONE = 0  # not good, or the channel's first reading: no delta
    COUNTED = 1  # a plain delta from the base
    WRAP = 2  # the register rolled over: (modulus - base) + value
    SPIKE = 3  # above the channel's maximum rate since the base: held back, not counted
    DROP = 4  # went back without a plausible wrap: held back, not counted
    RESET = 5  # a held-back reading confirmed by this one: counting restarts from it
    REPLACEMENT = 6  # a meter replacement: old final - base counted, new initial is the base


@register_jitable  # plain Python here, inlined into the kernels
def _advance(prev: float, value: float, modulus: float) -> tuple[float, int]:
    """The advance from prev to value and its kind: COUNTED, WRAP, or DROP with NaN."""
    d = value - prev
    if d >= 0.0:
        return d, 1
    if modulus > 0.0:
        wrapped = modulus - prev + value
        if 0.0 <= wrapped < 0.5 * modulus:
            return wrapped, 2
    return math.nan, 4


@register_jitable  # plain Python here, inlined into the kernels
def _bucket_index(ts_ns: I64, bucket_ns: int) -> I64:
    """ts_ns // bucket_ns, dividing only when a timestamp leaves the previous one's bucket:
    a 64-bit division costs more than the rest of a row, and sorted runs rarely change bucket.
    NO_TS maps to its own bucket and leaves the cache alone (its bucket's bounds overflow)."""
    out = np.empty(len(ts_ns), dtype=np.int64)
    lo, hi, b = 1, 0, 0  # [lo, hi) is bucket b; empty at first
    for i in range(len(ts_ns)):
        t = ts_ns[i]
        if t == NO_TS:
            out[i] = NO_TS // bucket_ns
            continue
        if t < lo or t >= hi:
            b = t // bucket_ns
            lo = b * bucket_ns
            hi = lo + bucket_ns
        out[i] = b
    return out


def counter_deltas_py(
    ch: I32,
    ts_ns: I64,
    value: F64,
    good: B1,
    rebase: F64,
    modulus: F64,
    max_rate_per_s: F64,
    rate_slack: F64,
    state: I64,
    state_value: F64,
) -> tuple[I64, F64, I8, I64, F64]:
    """Consumption between good counter readings of each channel, with wrap, reset, spike and
    meter-replacement rules.

    `state` is (channels, 2): the base's ts_ns and a held-back reading's ts_ns (NO_TS when none);
    `state_value` holds the two values. Returns (interval_start_ts_ns, delta, event, state,
    state_value): delta[i] is the consumption over (interval_start_ts_ns[i], ts_ns[i]], NaN
    when sample i counts nothing. Rules, per good sample against the channel's base:
    - an advance (a wrap only when the channel has a modulus and the wrapped advance is under
      half of it) no faster than max_rate_per_s (0 = no limit), give or take rate_slack (one
      step of the counter's resolution, so two close readings are not a spike), is counted
      and becomes the base;
    - otherwise (a spike above the rate, or a drop) the sample is held back, not counted, and the
      base stays. The next sample decides: plausible from the base, the held-back one was a
      glitch; plausible from the held-back one, that was a reset (or a step) and counting
      restarts from it, the consumption between the base and it being unknown;
    - a sample with a `rebase` value (not NaN) is a meter replacement: its value is the old
      meter's final reading, counted from the base, and `rebase` is the new meter's initial one.
    """
    n = len(ts_ns)
    start = np.full(n, NO_TS, dtype=np.int64)
    delta = np.full(n, np.nan)
    event = np.zeros(n, dtype=np.int8)
    st = state.copy()
    sv = state_value.copy()
    for i in range(n):
        c = ch[i]
        if not good[i]:
            continue
        t, v = ts_ns[i], value[i]
        if not math.isnan(rebase[i]):
            if st[c, 0] != NO_TS:
                d = v - sv[c, 0]
                start[i] = st[c, 0]
                delta[i] = d if d >= 0.0 else math.nan
            event[i] = 6
            st[c, 0], sv[c, 0], st[c, 1] = t, rebase[i], NO_TS
            continue
        if st[c, 0] == NO_TS:
            st[c, 0], sv[c, 0] = t, v
            continue
        d, kind = _advance(sv[c, 0], v, modulus[c])
        limit, slack = max_rate_per_s[c], rate_slack[c]
        if kind != 4 and (limit <= 0.0 or d <= limit * (t - st[c, 0]) / 1e9 + slack):
            start[i], delta[i], event[i] = st[c, 0], d, kind
            st[c, 0], sv[c, 0], st[c, 1] = t, v, NO_TS
            continue
        if st[c, 1] != NO_TS:
            d2, kind2 = _advance(sv[c, 1], v, modulus[c])
            if kind2 != 4 and (limit <= 0.0 or d2 <= limit * (t - st[c, 1]) / 1e9 + slack):
                start[i], delta[i], event[i] = st[c, 1], d2, 5
                st[c, 0], sv[c, 0], st[c, 1] = t, v, NO_TS
                continue
        event[i] = 4 if kind == 4 else 3
        st[c, 1], sv[c, 1] = t, v
    return start, delta, event, st, sv


def spread_deltas_py(
    ch: I32, start_ns: I64, end_ns: I64, delta: F64, gap_ns: I64, bucket_ns: int
) -> tuple[I32, I64, F64, F64]:
    """Split each delta over the buckets that (start, end] overlaps, in proportion to time.

    Rows with a NaN delta are skipped. Input sorted by (channel, end) gives one output row per
    (channel, bucket_start_ns) touched, with the amounts summed, in that order, and the part
    of each amount that is estimated: spread from an interval longer than the channel's
    gap_ns (a gap in the readings, known exactly in total but not in its time profile).
    """
    first_b = _bucket_index(start_ns, bucket_ns)
    last_b = _bucket_index(end_ns - 1, bucket_ns)
    cap = 0
    for i in range(len(delta)):
        if not math.isnan(delta[i]):
            cap += last_b[i] - first_b[i] + 1
    o_ch = np.empty(cap, dtype=np.int32)
    o_b = np.empty(cap, dtype=np.int64)
    o_amt = np.zeros(cap, dtype=np.float64)
    o_est = np.zeros(cap, dtype=np.float64)
    k = -1
    for i in range(len(delta)):
        if math.isnan(delta[i]):
            continue
        a, b = start_ns[i], end_ns[i]
        span = b - a
        gap = span > gap_ns[ch[i]]
        first = first_b[i]
        last = last_b[i]
        for j in range(first, last + 1):
            lo = max(a, j * bucket_ns)
            hi = min(b, (j + 1) * bucket_ns)
            if k < 0 or o_ch[k] != ch[i] or o_b[k] != j * bucket_ns:
                k += 1
                o_ch[k] = ch[i]
                o_b[k] = j * bucket_ns
            part = delta[i] if first == last else delta[i] * ((hi - lo) / span)
            o_amt[k] += part
            if gap:
                o_est[k] += part
    return o_ch[: k + 1], o_b[: k + 1], o_amt[: k + 1], o_est[: k + 1]


def bucket_stats_py(
    ch: I32, ts_ns: I64, value: F64, good: B1, bucket_ns: int
) -> tuple[I32, I64, I64, I64, F64, F64, F64, F64, I64]:
    """Per (channel, bucket) sample statistics over sorted readings.

    Returns (channel, bucket_start_ns, n, n_good, sum, min, max, last, last_ts_ns); sum, min,
    max and last cover good samples only (NaN when none is good); n counts every sample.
    """
    n = len(ts_ns)
    bucket = _bucket_index(ts_ns, bucket_ns)
    rows = 0
    for i in range(n):
        if i == 0 or ch[i] != ch[i - 1] or bucket[i] != bucket[i - 1]:
            rows += 1
    o_ch = np.empty(rows, dtype=np.int32)
    o_b = np.empty(rows, dtype=np.int64)
    o_n = np.zeros(rows, dtype=np.int64)
    o_ng = np.zeros(rows, dtype=np.int64)
    o_sum = np.zeros(rows, dtype=np.float64)
    o_min = np.full(rows, np.nan)
    o_max = np.full(rows, np.nan)
    o_last = np.full(rows, np.nan)
    o_last_ts = np.full(rows, NO_TS, dtype=np.int64)
    k = -1
    for i in range(n):
        if i == 0 or ch[i] != ch[i - 1] or bucket[i] != bucket[i - 1]:
            k += 1
            o_ch[k] = ch[i]
            o_b[k] = bucket[i] * bucket_ns
        o_n[k] += 1
        if good[i]:
            v = value[i]
            o_ng[k] += 1
            o_sum[k] += v
            o_min[k] = v if math.isnan(o_min[k]) else min(o_min[k], v)
            o_max[k] = v if math.isnan(o_max[k]) else max(o_max[k], v)
            o_last[k] = v
            o_last_ts[k] = ts_ns[i]
    return o_ch, o_b, o_n, o_ng, o_sum, o_min, o_max, o_last, o_last_ts


_jit: Any = numba.njit(cache=True, nogil=True, error_model="numpy")
counter_deltas = _jit(counter_deltas_py)
spread_deltas = _jit(spread_deltas_py)
bucket_stats = _jit(bucket_stats_py)

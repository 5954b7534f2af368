"""numba kernels for the stream aggregator, each with a pure-Python twin of the same name + `_py`.

Inputs are sorted by (channel, ts_ns). Kernels take arrays plus explicit state and return arrays;
they never mutate their inputs. The twins define the semantics; hypothesis checks both agree.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from compute.model import NO_TS  # in counter state: the channel has no previous reading

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
I32 = npt.NDArray[np.int32]
B1 = npt.NDArray[np.bool_]


def counter_deltas_py(
    ch: I32, ts_ns: I64, value: F64, good: B1, modulus: F64, state_ts: I64, state_value: F64
) -> tuple[I64, F64, I64, F64]:
    """Consumption between consecutive good counter readings of each channel.

    Returns (interval_start_ts_ns, delta, new_state_ts, new_state_value). delta[i] is the
    consumption over (interval_start_ts_ns[i], ts_ns[i]], or NaN when sample i adds nothing:
    it is not good, it is the channel's first reading, or the counter went back without a
    plausible wrap (a reset: counting restarts from the new base). A drop counts as a wrap
    only when the channel has a modulus and the wrapped delta is under half of it.
    """
    n = len(ts_ns)
    start = np.full(n, NO_TS, dtype=np.int64)
    delta = np.full(n, np.nan)
    s_ts = state_ts.copy()
    s_val = state_value.copy()
    for i in range(n):
        c = ch[i]
        if not good[i]:
            continue
        if s_ts[c] != NO_TS:
            d = value[i] - s_val[c]
            if d < 0.0 and modulus[c] > 0.0:
                wrapped = modulus[c] - s_val[c] + value[i]
                d = wrapped if 0.0 <= wrapped < 0.5 * modulus[c] else math.nan
            elif d < 0.0:
                d = math.nan
            start[i] = s_ts[c]
            delta[i] = d
        s_ts[c] = ts_ns[i]
        s_val[c] = value[i]
    return start, delta, s_ts, s_val


def spread_deltas_py(
    ch: I32, start_ns: I64, end_ns: I64, delta: F64, bucket_ns: int
) -> tuple[I32, I64, F64]:
    """Split each delta over the buckets that (start, end] overlaps, in proportion to time.

    Rows with a NaN delta are skipped. Input sorted by (channel, end) gives one output row per
    (channel, bucket_start_ns) touched, with the amounts summed, in that order.
    """
    cap = 0
    for i in range(len(delta)):
        if not math.isnan(delta[i]):
            cap += (end_ns[i] - 1) // bucket_ns - start_ns[i] // bucket_ns + 1
    o_ch = np.empty(cap, dtype=np.int32)
    o_b = np.empty(cap, dtype=np.int64)
    o_amt = np.zeros(cap, dtype=np.float64)
    k = -1
    for i in range(len(delta)):
        if math.isnan(delta[i]):
            continue
        a, b = start_ns[i], end_ns[i]
        span = b - a
        first = a // bucket_ns
        last = (b - 1) // bucket_ns
        for j in range(first, last + 1):
            lo = max(a, j * bucket_ns)
            hi = min(b, (j + 1) * bucket_ns)
            if k < 0 or o_ch[k] != ch[i] or o_b[k] != j * bucket_ns:
                k += 1
                o_ch[k] = ch[i]
                o_b[k] = j * bucket_ns
            o_amt[k] += delta[i] if first == last else delta[i] * ((hi - lo) / span)
    return o_ch[: k + 1], o_b[: k + 1], o_amt[: k + 1]


def bucket_stats_py(
    ch: I32, ts_ns: I64, value: F64, good: B1, bucket_ns: int
) -> tuple[I32, I64, I64, I64, F64, F64, F64, F64, I64]:
    """Per (channel, bucket) sample statistics over sorted readings.

    Returns (channel, bucket_start_ns, n, n_good, sum, min, max, last, last_ts_ns); sum, min,
    max and last cover good samples only (NaN when none is good); n counts every sample.
    """
    n = len(ts_ns)
    rows = 0
    for i in range(n):
        if i == 0 or ch[i] != ch[i - 1] or ts_ns[i] // bucket_ns != ts_ns[i - 1] // bucket_ns:
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
        b = ts_ns[i] // bucket_ns
        if i == 0 or ch[i] != ch[i - 1] or b != ts_ns[i - 1] // bucket_ns:
            k += 1
            o_ch[k] = ch[i]
            o_b[k] = b * bucket_ns
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


_jit: Any = numba.njit(cache=True, nogil=True)
counter_deltas = _jit(counter_deltas_py)
spread_deltas = _jit(spread_deltas_py)
bucket_stats = _jit(bucket_stats_py)

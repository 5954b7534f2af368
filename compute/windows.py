"""Rolling windows, 15-minute demand and the watermark, computed over base buckets.

Pure: no I/O and no wall clock; "now" is always a parameter. No timezone logic either.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any, Protocol

import numba
import numpy as np
import numpy.typing as npt

from compute.errors import PlantPulseError
from compute.model import NO_TS, NS_PER_S

I8 = npt.NDArray[np.int8]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
U16 = npt.NDArray[np.uint16]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
B1 = npt.NDArray[np.bool_]

NO_SLOT = NO_TS  # head of a ring that was never advanced
U16_MAX = 65_535  # n and n_good saturate here, per slot
_APPLIED, _EXPIRED, _AHEAD = 0, 1, 2


class WindowError(PlantPulseError, ValueError):
    """A window, ring or watermark setting is inconsistent."""


class RowStatus(enum.IntEnum):
    """What advance_rolling did with one bucket-delta row."""

    APPLIED = _APPLIED  # added to every ring that still holds its slot
    EXPIRED = _EXPIRED  # older than every ring: too late for the rolling windows
    AHEAD = _AHEAD  # its bucket starts after now_ns: not applied, so a fast clock expires nothing


class BucketColumns(Protocol):
    """Bucket-delta rows as advance reads them; compute.aggregate.BucketDeltas is one."""

    @property
    def channel(self) -> I32: ...
    @property
    def bucket_start_ns(self) -> I64: ...
    @property
    def sum(self) -> F64: ...
    @property
    def n(self) -> I64: ...
    @property
    def n_good(self) -> I64: ...


class Arrival(enum.IntEnum):
    """A reading is on time while its bucket is open, and late once the watermark closed it."""

    ON_TIME = 0
    LATE = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class RollingSpec:
    """Shape of the rolling state: a two-level ring per channel.

    The fine ring holds fine_span_s / bucket_s + 1 base buckets (16 one-minute slots by default)
    and answers every window up to fine_span_s. The coarse ring holds clock-aligned coarse slots
    (15 min by default), max(longer windows) / coarse_s + 1 of them (97 for 24 h), and answers the
    longer windows. The extra slot of each ring is the open one, which contains now. A window must
    be a multiple of its ring's slot. The coarse slot is also the demand interval.

    A slot stores sum as float32 and n, n_good as uint16, saturating at 65 535 (a 15-min slot
    saturates above 72 samples/s): 8 B. With the int64 head that is 8 + (16 + 97) × 8 = 912 B per
    channel by default (bytes_per_channel). One ring of 1 440 minute slots would take 22.5 KiB, of
    which 11.5 KiB are float64 sums. A float32 slot rounds each addition to 2^-24 of its value;
    windows add slots in float64, so there is no running-total drift. Rolling windows are live
    views: audit totals come from the stored float64 buckets.
    """

    bucket_s: int = 60
    coarse_s: int = 900
    fine_span_s: int = 900
    windows_s: tuple[int, ...] = (900, 3600, 86400)

    def __post_init__(self) -> None:
        if self.bucket_s <= 0 or self.coarse_s % self.bucket_s or self.coarse_s <= 0:
            raise WindowError("coarse_s must be a positive multiple of bucket_s")
        if self.fine_span_s <= 0 or self.fine_span_s % self.bucket_s:
            raise WindowError("fine_span_s must be a positive multiple of bucket_s")
        for w in self.windows_s:
            slot = self.bucket_s if w <= self.fine_span_s else self.coarse_s
            if w <= 0 or w % slot:
                raise WindowError(f"window {w} s is not a positive multiple of its {slot} s slot")

    @property
    def bucket_ns(self) -> int:
        return self.bucket_s * NS_PER_S

    @property
    def coarse_ns(self) -> int:
        return self.coarse_s * NS_PER_S

    @property
    def fine_slots(self) -> int:
        return self.fine_span_s // self.bucket_s + 1

    @property
    def coarse_slots(self) -> int:
        longest = max((w for w in self.windows_s if w > self.fine_span_s), default=self.coarse_s)
        return longest // self.coarse_s + 1

    @property
    def uses_fine(self) -> tuple[bool, ...]:
        """Per window: answered by the fine ring (True) or the coarse ring."""
        return tuple(w <= self.fine_span_s for w in self.windows_s)

    @property
    def bytes_per_channel(self) -> int:
        return 8 + (self.fine_slots + self.coarse_slots) * (4 + 2 + 2)


@dataclass(frozen=True, slots=True, kw_only=True)
class RollingState:
    """Per channel: head_idx, the newest base-bucket index (bucket_start_ns // bucket_ns) the
    rings were advanced to, and the rings, shape (channels, slots). Bucket index i lives at fine
    slot i % fine_slots while i > head - fine_slots, and in coarse slot (i // r) % coarse_slots
    while i // r > head // r - coarse_slots (r = coarse_s / bucket_s). Per-channel heads let a
    channel's state move alone, e.g. when a partition moves to another aggregator.
    """

    head_idx: I64
    fine_sum: F32
    fine_n: U16
    fine_n_good: U16
    coarse_sum: F32
    coarse_n: U16
    coarse_n_good: U16


def new_rolling_state(spec: RollingSpec, n_channels: int) -> RollingState:
    f, c = (n_channels, spec.fine_slots), (n_channels, spec.coarse_slots)
    return RollingState(
        head_idx=np.full(n_channels, NO_SLOT, np.int64),
        fine_sum=np.zeros(f, np.float32),
        fine_n=np.zeros(f, np.uint16),
        fine_n_good=np.zeros(f, np.uint16),
        coarse_sum=np.zeros(c, np.float32),
        coarse_n=np.zeros(c, np.uint16),
        coarse_n_good=np.zeros(c, np.uint16),
    )


def advance_rolling_py(
    ch: I32,
    bucket_start_ns: I64,
    sum_: F64,
    n: I64,
    n_good: I64,
    now_ns: int,
    bucket_ns: int,
    coarse_ns: int,
    head_idx: I64,
    fine_sum: F32,
    fine_n: U16,
    fine_ng: U16,
    coarse_sum: F32,
    coarse_n: U16,
    coarse_ng: U16,
) -> tuple[I64, F32, U16, U16, F32, U16, U16, I8]:
    """Advance every channel's rings to now_ns, then add the rows (any order).

    Advancing zeroes the slots whose bucket leaves the ring; a head never moves back, even if
    now_ns does. A row is added to each ring that still holds its slot (late rows too: the
    windows correct themselves). Returns the new state arrays and a RowStatus per row.
    """
    head = head_idx.copy()
    fs, fn, fg = fine_sum.copy(), fine_n.copy(), fine_ng.copy()
    cs, cn, cg = coarse_sum.copy(), coarse_n.copy(), coarse_ng.copy()
    kf, kc = fs.shape[1], cs.shape[1]
    r = coarse_ns // bucket_ns
    now_idx = now_ns // bucket_ns
    for c in range(len(head)):
        h = head[c]
        if h == NO_SLOT:
            fs[c, :], fn[c, :], fg[c, :] = 0.0, 0, 0
            cs[c, :], cn[c, :], cg[c, :] = 0.0, 0, 0
        elif now_idx > h:
            for i in range(max(h + 1, now_idx - kf + 1), now_idx + 1):
                fs[c, i % kf], fn[c, i % kf], fg[c, i % kf] = 0.0, 0, 0
            for j in range(max(h // r + 1, now_idx // r - kc + 1), now_idx // r + 1):
                cs[c, j % kc], cn[c, j % kc], cg[c, j % kc] = 0.0, 0, 0
        else:
            continue
        head[c] = now_idx
    status = np.zeros(len(ch), dtype=np.int8)
    for i in range(len(ch)):
        c = ch[i]
        idx = bucket_start_ns[i] // bucket_ns
        h = head[c]
        if idx > h:
            status[i] = _AHEAD
            continue
        status[i] = _EXPIRED
        if idx > h - kf:
            p = idx % kf
            fs[c, p] += sum_[i]
            fn[c, p] = min(int(fn[c, p]) + n[i], U16_MAX)
            fg[c, p] = min(int(fg[c, p]) + n_good[i], U16_MAX)
            status[i] = _APPLIED
        if idx // r > h // r - kc:
            p = (idx // r) % kc
            cs[c, p] += sum_[i]
            cn[c, p] = min(int(cn[c, p]) + n[i], U16_MAX)
            cg[c, p] = min(int(cg[c, p]) + n_good[i], U16_MAX)
            status[i] = _APPLIED
    return head, fs, fn, fg, cs, cn, cg, status


def window_sums_py(
    t_ns: int,
    bucket_ns: int,
    coarse_ns: int,
    window_ns: I64,
    use_fine: B1,
    head_idx: I64,
    fine_sum: F32,
    fine_n: U16,
    fine_ng: U16,
    coarse_sum: F32,
    coarse_n: U16,
    coarse_ng: U16,
) -> tuple[F64, I64, I64]:
    """Sum, n and n_good of each window, shape (channels, windows): see query_windows."""
    n_ch, n_w = len(head_idx), len(window_ns)
    o_sum = np.zeros((n_ch, n_w), dtype=np.float64)
    o_n = np.zeros((n_ch, n_w), dtype=np.int64)
    o_ng = np.zeros((n_ch, n_w), dtype=np.int64)
    r = coarse_ns // bucket_ns
    for w in range(n_w):
        slot_ns = bucket_ns if use_fine[w] else coarse_ns
        k = fine_sum.shape[1] if use_fine[w] else coarse_sum.shape[1]
        end = t_ns // slot_ns  # the open slot: excluded
        for c in range(n_ch):
            if head_idx[c] == NO_SLOT:
                continue
            h = head_idx[c] if use_fine[w] else head_idx[c] // r
            for i in range(max(end - window_ns[w] // slot_ns, h - k + 1), min(end, h + 1)):
                if use_fine[w]:
                    s, m, g = fine_sum[c, i % k], fine_n[c, i % k], fine_ng[c, i % k]
                else:
                    s, m, g = coarse_sum[c, i % k], coarse_n[c, i % k], coarse_ng[c, i % k]
                o_sum[c, w] += float(s)
                o_n[c, w] += int(m)
                o_ng[c, w] += int(g)
    return o_sum, o_n, o_ng


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
advance_rolling = _jit(advance_rolling_py)
window_sums = _jit(window_sums_py)
close_demand_kernel = _jit(close_demand_py)


def advance(
    state: RollingState,
    spec: RollingSpec,
    now_ns: int,
    deltas: BucketColumns | None = None,
    row_of_channel: I32 | None = None,
) -> tuple[RollingState, I8]:
    """Advance the rings to now_ns and add `deltas` (base buckets of spec.bucket_s).

    row_of_channel[k] is the state row of the deltas' channel k, e.g. of BucketDeltas.keys[k]
    (identity when None). now_ns is the clock that drives the run: the wall clock live, the
    replayed event time in a backfill. Callers that trust source clocks more than their own
    pass max(clock, newest ts) so that no row is AHEAD.
    """
    if deltas is None:
        ch, b, s = np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0)
        n = ng = np.zeros(0, np.int64)
    else:
        ch = deltas.channel if row_of_channel is None else row_of_channel[deltas.channel]
        b, s, n, ng = deltas.bucket_start_ns, deltas.sum, deltas.n, deltas.n_good
    out = advance_rolling(
        ch, b, s, n, ng, now_ns, spec.bucket_ns, spec.coarse_ns, state.head_idx,
        state.fine_sum, state.fine_n, state.fine_n_good,
        state.coarse_sum, state.coarse_n, state.coarse_n_good,
    )  # fmt: skip
    new = RollingState(
        head_idx=out[0],
        fine_sum=out[1],
        fine_n=out[2],
        fine_n_good=out[3],
        coarse_sum=out[4],
        coarse_n=out[5],
        coarse_n_good=out[6],
    )
    return new, out[7]


@dataclass(frozen=True, slots=True, kw_only=True)
class WindowValues:
    """Rolling windows at t_ns, arrays of shape (channels, windows) in spec.windows_s order.

    A window of W seconds answered by a ring of slot S covers the W/S newest closed slots:
    [end_ns - W, end_ns) with end_ns = floor(t_ns / S) × S. The slot containing t_ns is open
    and left out, so the span is always exactly W long and ends less than S before t_ns (1 min
    for the 15-min window; 15 min for the 1-h and 24-h windows by default). Each window is thus
    exact at the slot granularity of its ring (up to float32 slot rounding). Slots the ring does
    not hold count as empty, so a silent channel's windows drain to 0 as t_ns advances.

    sum: consumption for counters (kWh, m3), sum of good values for gauges.
    rate_per_h = sum / (W / 3600 s): kW for a kWh counter, m3/h for an m3 counter.
    n, n_good: samples received and good samples in the span.
    expected = W / sampling_interval_s; coverage = n_good / expected, above 1 when a channel
    samples faster than configured, NaN when it has no sampling interval.
    """

    windows_s: tuple[int, ...]
    end_ns: tuple[int, ...]
    sum: F64
    rate_per_h: F64
    n: I64
    n_good: I64
    expected: F64
    coverage: F64


def query_windows(
    state: RollingState, spec: RollingSpec, t_ns: int, sampling_interval_s: F64
) -> WindowValues:
    """Evaluate spec.windows_s at t_ns, usually the now_ns of the last advance.

    t_ns must lie in or after the newest head's bucket: the rings no longer hold the older slots
    a window ending earlier would need, so such a query raises WindowError.
    """
    heads = state.head_idx[state.head_idx != NO_SLOT]
    if heads.size and t_ns // spec.bucket_ns < int(heads.max()):
        raise WindowError("t_ns is before the rings' head: the slots it needs are gone")
    use_fine = np.array(spec.uses_fine, dtype=np.bool_)
    window_ns = np.array(spec.windows_s, dtype=np.int64) * NS_PER_S
    s, n, ng = window_sums(
        t_ns, spec.bucket_ns, spec.coarse_ns, window_ns, use_fine, state.head_idx,
        state.fine_sum, state.fine_n, state.fine_n_good,
        state.coarse_sum, state.coarse_n, state.coarse_n_good,
    )  # fmt: skip
    w_s = np.array(spec.windows_s, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        interval = np.where(sampling_interval_s > 0, sampling_interval_s, np.nan)
        expected = w_s[None, :] / interval[:, None]
        coverage = ng / expected
    end = [(t_ns // (spec.bucket_ns if f else spec.coarse_ns)) for f in spec.uses_fine]
    slot = [spec.bucket_ns if f else spec.coarse_ns for f in spec.uses_fine]
    return WindowValues(
        windows_s=spec.windows_s,
        end_ns=tuple(e * d for e, d in zip(end, slot, strict=True)),
        sum=s,
        rate_per_h=s / (w_s[None, :] / 3600.0),
        n=n,
        n_good=ng,
        expected=expected,
        coverage=coverage,
    )


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
            raise WindowError("allowed_lateness_ns must not be negative")

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

"""Rolling windows over base buckets: a two-level ring per channel (see RollingSpec).

Pure: no I/O and no wall clock; "now" is always a parameter. No timezone logic either.
"""

from __future__ import annotations

import enum
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


_jit: Any = numba.njit(cache=True, nogil=True)
advance_rolling = _jit(advance_rolling_py)
window_sums = _jit(window_sums_py)


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

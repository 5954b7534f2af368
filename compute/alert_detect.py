"""Condition detectors: one channel's readings -> the raw (undelayed) condition level over time.

Vectorised numpy, called once per batch: no delays and no lifecycle (compute.alert_eval and
compute.alert_state apply those), no wall clock (now_ns is a parameter).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from compute.alert_rules import (
    HOUR_NS,
    BaselineDeviation,
    Binding,
    Condition,
    DeviationMode,
    DeviationSide,
    IdleConsumption,
    Limit,
    LimitDirection,
    RateDirection,
    RateOfChange,
    Stale,
    Stuck,
)
from compute.alert_series import (
    HourOfWeekProfile,
    Series,
    hour_of_week,
    in_schedule,
    local_wall_ns,
)
from compute.model import NO_TS, NS_PER_S

I8 = npt.NDArray[np.int8]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B1 = npt.NDArray[np.bool_]
# Below this many readings a Python loop beats numpy's per-call overhead (a meter's poll).
_SMALL = 32


@dataclass(frozen=True, slots=True, kw_only=True)
class DetectorState:
    """What a detector carries from one batch to the next, per (rule, channel).

    seen_ts_ns: the newest reading of any quality (an older or equal one is a replay and is
    skipped); valid_*: the newest usable reading (stale starts counting from valid_ts_ns);
    raw_level / measure: the raw condition after the last verdict; anchor_ts_ns: where the
    current unchanged run began (stuck); window: recent (ts, value) for rates; ref_*: the
    reference channel's newest reading and whether it said "off" (None: unknown).
    """

    seen_ts_ns: int = NO_TS
    valid_ts_ns: int = NO_TS
    valid_value: float | None = None
    raw_level: int = 0
    measure: float | None = None
    anchor_ts_ns: int = NO_TS
    window: tuple[tuple[int, float], ...] = ()
    ref_ts_ns: int = NO_TS
    ref_value: float | None = None
    ref_off: bool | None = None
    holds: bool = False  # the newest reading was usable, so its verdict holds until the next


@dataclass(frozen=True, slots=True, kw_only=True)
class Raw:
    """The raw condition as verdicts at instants (level 0/1/2 and the measure compared), sorted;
    it holds between them. watermark_ns: how far in time the verdicts are known.
    """

    ts_ns: I64
    level: I8
    measure: F64
    watermark_ns: int


def hysteresis(x: F64, prev_level: int, alert: float, action: float | None, clear: float) -> I8:
    """Levels of an upward condition: 2 at or above action, 1 at or above alert, 0 at or below
    clear; in between, 1 if the last decided level was raised, else 0. x must not hold NaN.
    """
    n = x.size
    if prev_level == 0 and (n == 0 or x.max() <= clear):
        return np.zeros(n, np.int8)  # the common case: everything normal, and it was
    if n <= _SMALL:
        return np.array(_hysteresis_loop(x.tolist(), prev_level, alert, action, clear), np.int8)
    code = np.full(n, -1, np.int8)
    code[x <= clear] = 0
    code[x >= alert] = 1
    if action is not None:
        code[x >= action] = 2
    decided = code >= 0
    last = np.where(decided, np.arange(n), -1)
    np.maximum.accumulate(last, out=last)
    held = np.where(last >= 0, code[np.maximum(last, 0)], np.int8(prev_level))
    return np.where(decided, code, np.minimum(held, 1)).astype(np.int8)


def _hysteresis_loop(
    x: list[float], level: int, alert: float, action: float | None, clear: float
) -> list[int]:
    out = []
    for v in x:
        if action is not None and v >= action:
            level = 2
        elif v >= alert:
            level = 1
        elif v <= clear:
            level = 0
        else:
            level = min(level, 1)
        out.append(level)
    return out


def _steps(prev_ts: int, prev_v: float | None, ts: I64, v: F64) -> tuple[I64, F64]:
    """Elapsed ns and value change from the previous usable reading (NaN: none before)."""
    pts = np.concatenate([[prev_ts], ts[:-1]]).astype(np.int64)
    pv = np.concatenate([[np.nan if prev_v is None else prev_v], v[:-1]])
    return ts - pts, v - pv


def _rate(c: RateOfChange, st: DetectorState, ts: I64, v: F64) -> tuple[F64, DetectorState]:
    """Signed rate per c.per against the newest reading at least window_s older (NaN: none)."""
    window_ns = round(c.window_s * NS_PER_S)
    hts = np.concatenate([np.array([t for t, _ in st.window], np.int64), ts])
    hv = np.concatenate([np.array([x for _, x in st.window], np.float64), v])
    ref = np.searchsorted(hts, ts - window_ns, side="right") - 1
    ok = ref >= 0
    rate = np.full(ts.size, np.nan)
    r = ref[ok]
    rate[ok] = (v[ok] - hv[r]) / (ts[ok] - hts[r]) * c.per.ns
    if ts.size:  # keep one window back, plus the reading just before it
        first = max(int(np.searchsorted(hts, int(ts[-1]) - window_ns, side="right")) - 1, 0)
        kept = tuple(zip(hts[first:].tolist(), hv[first:].tolist(), strict=True))
        st = replace(st, window=kept)
    return rate, st


def _stuck(c: Stuck, st: DetectorState, ts: I64, v: F64) -> tuple[Raw, DetectorState]:
    duration_ns = round(c.duration_s * NS_PER_S)
    _, dv = _steps(st.valid_ts_ns, st.valid_value, ts, v)
    same = np.abs(dv) <= c.tolerance  # NaN (no reading before) is a break
    idx = np.where(same, -1, np.arange(ts.size))
    np.maximum.accumulate(idx, out=idx)
    anchor = np.where(idx >= 0, ts[np.maximum(idx, 0)], st.anchor_ts_ns).astype(np.int64)
    anchor = np.where(anchor == NO_TS, ts, anchor)  # no run known yet: one starts here
    held = ts - anchor
    level = (same & (held >= duration_ns)).astype(np.int8)
    prev = np.concatenate([[st.raw_level], level[:-1]])
    rising = (level == 1) & (prev == 0)
    # The run reached duration_s at anchor + duration, between this reading and the last.
    at = np.where(rising, anchor + duration_ns, ts)
    if not ts.size:
        return Raw(ts_ns=at, level=level, measure=held / NS_PER_S, watermark_ns=NO_TS), st
    st = replace(st, anchor_ts_ns=int(anchor[-1]))
    return Raw(ts_ns=at, level=level, measure=held / NS_PER_S, watermark_ns=int(ts[-1])), st


def _stale(c: Stale, st: DetectorState, ts: I64, now_ns: int) -> Raw:
    age_ns = round(c.max_age_s * NS_PER_S)
    last = int(ts[-1]) if ts.size else st.valid_ts_ns
    watermark = max(now_ns, last)
    prev = np.concatenate([[st.valid_ts_ns], ts]).astype(np.int64)
    ends = np.concatenate([ts, [watermark]]).astype(np.int64)
    known = prev != NO_TS
    gap = np.where(known, ends - prev, 0)
    late = known & (gap >= age_ns)
    rise_ts = prev[late] + age_ns
    # Every usable reading ends staleness, even one at the very instant its gap's rise is due.
    all_ts = np.concatenate([rise_ts, ts])
    levels = np.concatenate([np.ones(rise_ts.size, np.int8), np.zeros(ts.size, np.int8)])
    measure = np.concatenate([np.full(rise_ts.size, c.max_age_s), gap[:-1] / NS_PER_S])
    order = np.argsort(all_ts, kind="stable")
    return Raw(
        ts_ns=all_ts[order], level=levels[order], measure=measure[order], watermark_ns=watermark
    )


def _reference_off(
    b: Binding, c: IdleConsumption, st: DetectorState, ts: I64, ref: Series | None
) -> tuple[B1, DetectorState]:
    """Whether the reference said "off" at each instant: its newest reading at or before it
    holds. Unknown (no reading yet, a counter's first reading or a reset) is not off.
    """
    rts = np.zeros(0, np.int64)
    rv = np.zeros(0)
    if ref is not None and ref.ts_ns.size:
        ok = ref.usable() & (ref.ts_ns > st.ref_ts_ns)
        rts, rv = ref.ts_ns[ok], ref.value[ok]
        keep = np.concatenate([[True], rts[1:] > rts[:-1]]) if rts.size else np.zeros(0, bool)
        rts, rv = rts[keep], rv[keep]
    if b.reference_is_counter:
        dt, dv = _steps(st.ref_ts_ns, st.ref_value, rts, rv)
        per_h = np.divide(dv * HOUR_NS, dt, out=np.full(rts.size, np.nan), where=dt > 0)
        status = np.where(
            np.isnan(per_h) | (dv < 0), -1, per_h <= c.reference_off_at_or_below
        ).astype(np.int8)
    else:
        status = (rv <= c.reference_off_at_or_below).astype(np.int8)
    held = -1 if st.ref_off is None else int(st.ref_off)
    all_ts = np.concatenate([[st.ref_ts_ns], rts]).astype(np.int64)
    all_status = np.concatenate([[held], status]).astype(np.int8)
    j = np.searchsorted(all_ts, ts, side="right") - 1
    off = (j >= 0) & (all_status[np.maximum(j, 0)] == 1)
    if rts.size:
        last = int(status[-1])
        st = replace(
            st,
            ref_ts_ns=int(rts[-1]),
            ref_value=float(rv[-1]),
            ref_off=None if last < 0 else bool(last),
        )
    return off, st


def detect(
    b: Binding,
    st: DetectorState,
    series: Series,
    *,
    now_ns: int,
    reference: Series | None = None,
    baseline: HourOfWeekProfile | None = None,
    complete_ns: int | None = None,
) -> tuple[DetectorState, Raw]:
    """The raw condition of rule b over a batch of its channel's readings, and the new state.

    Readings at or before seen_ts_ns are replays and are skipped. Bad and stale readings (and
    non-finite values) are invisible to every rule: they neither raise nor clear, and they do
    not advance the watermark, so an on-delay cannot complete on them; the stale rule counts
    them as no data. Only the stale rule looks at now_ns.

    complete_ns: the channel's readings are known complete up to it (e.g. the receive time of
    an in-order batch), so a source reporting by exception holds its last usable verdict until
    then, and value conditions confirm delays up to it rather than only up to the newest
    reading. Not for stuck (a value reported by exception never repeats) nor stale.
    """
    ts_all = series.ts_ns
    fresh = ts_all > st.seen_ts_ns
    if ts_all.size > 1:
        rising = ts_all[1:] > ts_all[:-1]
        if not rising.all():
            if bool((ts_all[1:] < ts_all[:-1]).any()):
                raise ValueError("a Series must be sorted by ts_ns")
            fresh[1:] &= rising  # of equal timestamps the first counts
    ok = fresh & series.usable()
    ts, v = ts_all[ok], series.value[ok]
    upto = st
    cond = b.rule.condition
    if isinstance(cond, Stale):
        raw = _stale(cond, st, ts, now_ns)
    elif isinstance(cond, Stuck):
        raw, upto = _stuck(cond, upto, ts, v)
    else:
        shown, compared, upto = _measure(b, upto, ts, v, reference=reference, baseline=baseline)
        raw = _levels(cond, st.raw_level, ts, shown, compared)
    changes: dict[str, object] = {}
    holds = st.holds
    if fresh.any():
        holds = bool(ok[np.flatnonzero(fresh)[-1]])
        changes["holds"] = holds
    if complete_ns is not None and holds and not isinstance(cond, Stale | Stuck):
        raw = replace(raw, watermark_ns=max(raw.watermark_ns, complete_ns))
    if ts_all.size:
        changes["seen_ts_ns"] = max(st.seen_ts_ns, int(ts_all[-1]))
    if ts.size:
        changes.update(valid_ts_ns=int(ts[-1]), valid_value=float(v[-1]))
    if raw.level.size:
        changes.update(raw_level=int(raw.level[-1]), measure=float(raw.measure[-1]))
    if changes:  # one replace: it is the costliest step of a small batch
        upto = replace(upto, **changes)  # type: ignore[arg-type]
    return upto, raw


def _levels(cond: Condition, prev_level: int, ts: I64, shown: F64, compared: F64) -> Raw:
    """Hysteresis over the compared measure; readings without a verdict (NaN) are dropped."""
    defined = ~np.isnan(compared)
    if not defined.all():
        ts, shown, compared = ts[defined], shown[defined], compared[defined]
    if isinstance(cond, IdleConsumption):
        a, act, clr = cond.alert_per_h, cond.action_per_h, cond.clear_per_h
    else:
        assert not isinstance(cond, Stale | Stuck)
        a, act, clr = cond.alert, cond.action, cond.clear
    if isinstance(cond, Limit) and cond.direction is LimitDirection.LOW:
        a, clr, act = -a, -clr, None if act is None else -act  # compared is -value
    level = hysteresis(compared, prev_level, a, act, clr)
    # Sample-driven: the condition is known up to the newest verdict.
    watermark = int(ts[-1]) if ts.size else NO_TS
    return Raw(ts_ns=ts, level=level, measure=shown, watermark_ns=watermark)


def _toward(x: F64, down: bool, either: bool) -> F64:
    """x turned so that the condition lies upward: -x for falls and lows, |x| for either."""
    return np.abs(x) if either else (-x if down else x)


def _measure(
    b: Binding,
    st: DetectorState,
    ts: I64,
    v: F64,
    *,
    reference: Series | None,
    baseline: HourOfWeekProfile | None,
) -> tuple[F64, F64, DetectorState]:
    """Per usable reading, the measure in its own units (signed: what events report) and the
    quantity an upward hysteresis compares (NaN: no verdict).
    """
    c = b.rule.condition
    if isinstance(c, Limit):
        return v, _toward(v, c.direction is LimitDirection.LOW, False), st
    if isinstance(c, RateOfChange):
        rate, st = _rate(c, st, ts, v)
        down, either = c.direction is RateDirection.FALL, c.direction is RateDirection.EITHER
        return rate, _toward(rate, down, either), st
    if isinstance(c, IdleConsumption):
        if b.is_counter:
            dt, dv = _steps(st.valid_ts_ns, st.valid_value, ts, v)
            ok = (dt > 0) & (dv >= 0)  # a drop is a wrap or reset: no verdict on it
            rate = np.divide(dv * HOUR_NS, dt, out=np.full(ts.size, np.nan), where=ok)
        else:
            rate = v
        idle = np.zeros(ts.size, np.bool_)
        if c.schedule is not None:
            idle |= in_schedule(local_wall_ns(ts, b.tz), c.schedule)
        if b.reference_id is not None:
            off, st = _reference_off(b, c, st, ts, reference)
            idle |= off
        # Not idle: no idle consumption, whatever the rate (even unknown) - the condition clears.
        return rate, np.where(idle, rate, -np.inf), st
    if isinstance(c, BaselineDeviation):
        if baseline is None:
            return v, np.full(ts.size, np.nan), st
        slot = hour_of_week(local_wall_ns(ts, baseline.tz))
        mean, std, n = baseline.mean[slot], baseline.std[slot], baseline.n[slot]
        scale = np.abs(mean) / 100.0 if c.mode is DeviationMode.PERCENT else std
        good = (n >= c.min_samples) & (scale > 0) & np.isfinite(scale)
        dev = np.divide(v - mean, scale, out=np.full(ts.size, np.nan), where=good)
        down, either = c.side is DeviationSide.BELOW, c.side is DeviationSide.EITHER
        return dev, _toward(dev, down, either), st
    raise AssertionError(f"no measure for {c!r}")  # pragma: no cover - Stale/Stuck elsewhere

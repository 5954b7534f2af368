"""Alert evaluation: readings + state -> new state + transition events, and the dry-run replay.

Pure: the alerting service feeds batches and ticks (now_ns), persists the states and delivers
the events; the same calls replay history, so live and dry run share one semantics.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from compute.alert_detect import Raw, detect
from compute.alert_rules import AlertLevel, Binding, Severity
from compute.alert_series import HourOfWeekProfile, Series
from compute.alert_state import (
    AlertEvent,
    AlertPhase,
    Debounce,
    EventKind,
    PointState,
    apply_level,
    new_state,
    run_timers,
)
from compute.model import NO_TS

PointKey = tuple[str, str]  # (rule id, channel id)


def _debounce_one(
    d: Debounce, raw: Raw, k: int, on_ns: int, off_ns: int
) -> tuple[Debounce, list[tuple[int, int, bool]]]:
    """On/off-delay of "raw level >= k": the output follows a verdict that has held for the
    delay, at since + delay, once the watermark has passed that instant.
    """
    b = raw.level >= k
    prev = np.concatenate([[d.raw], b[:-1]])
    out: list[tuple[int, int, bool]] = []
    cur, since, o = d.raw, d.since_ns, d.out
    for i in np.flatnonzero(b != prev).tolist():
        t = max(int(raw.ts_ns[i]), since)  # a late verdict cannot go back before the last
        if cur != o and since + (on_ns if cur else off_ns) <= t:
            o = cur
            out.append((since + (on_ns if cur else off_ns), k, o))
        cur, since = bool(b[i]), t
    if (
        cur != o
        and raw.watermark_ns != NO_TS
        and since + (on_ns if cur else off_ns) <= raw.watermark_ns
    ):
        o = cur
        out.append((since + (on_ns if cur else off_ns), k, o))
    return Debounce(raw=cur, since_ns=since, out=o), out


def debounce(
    deb: tuple[Debounce, Debounce],
    raw: Raw,
    *,
    on_ns: int,
    off_ns: int,
    measure_before: float | None = None,
) -> tuple[tuple[Debounce, Debounce], list[tuple[int, int, float]]]:
    """Delayed level changes (ts_ns, new level, measure then) of a raw condition; a change
    before the first verdict of raw reports measure_before (NaN if None).

    Each level (ALERT, ACTION) is delayed on its own, so an ACTION excursion must also last
    on_delay_s; changes of both at one instant merge into one (0 -> 2 raises at ACTION).
    """
    settled = all(d.raw == d.out for d in deb)
    if settled and (raw.level.size == 0 or not raw.level.any()) and not deb[0].raw:
        return deb, []  # nothing raised, nothing pending: the common case, kept cheap
    d1, ch1 = _debounce_one(deb[0], raw, 1, on_ns, off_ns)
    d2, ch2 = _debounce_one(deb[1], raw, 2, on_ns, off_ns)
    bits = [deb[0].out, deb[1].out]
    level = sum(bits)
    changes: list[tuple[int, int, float]] = []
    # By time only, and stably: a level that turns on and off at one instant must end off.
    merged = sorted(ch1 + ch2, key=lambda c: c[0])
    for i, (t, k, on) in enumerate(merged):
        bits[k - 1] = on
        if i + 1 < len(merged) and merged[i + 1][0] == t:
            continue  # settle every change at this instant first
        new = int(bits[0]) + int(bits[1])
        if new != level:
            j = int(np.searchsorted(raw.ts_ns, t, side="right")) - 1
            m = float(raw.measure[j]) if j >= 0 else measure_before
            changes.append((t, new, float("nan") if m is None else m))
            level = new
    return (d1, d2), changes


def evaluate(
    b: Binding,
    st: PointState,
    series: Series,
    *,
    now_ns: int,
    reference: Series | None = None,
    baseline: HourOfWeekProfile | None = None,
    complete_ns: int | None = None,
) -> tuple[PointState, list[AlertEvent]]:
    """One (rule, channel) over a batch of its readings (maybe none: a tick), up to now_ns.

    Level changes and timers are handled in time order, each at its own instant, so splitting
    the same readings into other batches gives the same events. Value conditions advance only
    with readings (or up to complete_ns, see alert_detect.detect); stale, escalation and shelf
    expiry also with now_ns.
    """
    det, raw = detect(
        b,
        st.detector,
        series,
        now_ns=now_ns,
        reference=reference,
        baseline=baseline,
        complete_ns=complete_ns,
    )
    deb, changes = debounce(
        st.debounce,
        raw,
        on_ns=b.rule.on_delay_ns,
        off_ns=b.rule.off_delay_ns,
        measure_before=st.detector.measure,
    )
    st = replace(st, detector=det, debounce=deb)
    events: list[AlertEvent] = []
    for ts, level, value in changes:
        st, ev = run_timers(st, b, ts - 1)  # a deadline at the change's instant loses to it
        events += ev
        st, ev = apply_level(st, b, ts, level, value)
        events += ev
    st, ev = run_timers(st, b, max(now_ns, raw.watermark_ns))
    return st, events + ev


def step(
    bindings: Iterable[Binding],
    states: Mapping[PointKey, PointState],
    readings: Mapping[str, Series],
    *,
    now_ns: int,
    baselines: Mapping[str, HourOfWeekProfile] | None = None,
    complete_ns: Mapping[str, int] | None = None,
) -> tuple[dict[PointKey, PointState], list[AlertEvent]]:
    """Evaluate many bindings over one step's readings (by channel id); new points start
    watching at now_ns. Returns the states of the given bindings and their events by ts_ns.
    complete_ns: per channel, how far its readings are known complete (see evaluate).

    An idle rule's reference is read from the same step's readings (then held), so pass a
    line's signal with, or before, the consumption it qualifies.
    """
    out: dict[PointKey, PointState] = {}
    events: list[AlertEvent] = []
    empty = Series.empty()
    for b in bindings:
        st = states.get(b.key) or new_state(b, since_ns=now_ns)
        ref = readings.get(b.reference_id) if b.reference_id is not None else None
        st, ev = evaluate(
            b,
            st,
            readings.get(b.channel_id, empty),
            now_ns=now_ns,
            reference=ref,
            baseline=(baselines or {}).get(b.channel_id),
            complete_ns=(complete_ns or {}).get(b.channel_id),
        )
        out[b.key] = st
        events += ev
    events.sort(key=lambda e: e.ts_ns)  # stable: per point, transition order is kept
    return out, events


def split_by_channel(
    keys: Sequence[str],
    channel: npt.NDArray[np.int32],
    ts_ns: npt.NDArray[np.int64],
    value: npt.NDArray[np.float64],
    quality: npt.NDArray[np.uint8],
) -> dict[str, Series]:
    """Columnar readings (compute.aggregate.Readings' columns) as one sorted Series per key."""
    order = np.lexsort((ts_ns, channel))
    ch = channel[order]
    bounds = np.flatnonzero(np.diff(ch)) + 1
    out: dict[str, Series] = {}
    for part in np.split(order, bounds):
        if part.size:
            out[keys[int(channel[part[0]])]] = Series(
                ts_ns=ts_ns[part], value=value[part], quality=quality[part]
            )
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertSummary:
    """One alert a dry run would have raised; cleared_ts_ns is NO_TS if still active at the end."""

    alert_id: str
    rule_id: str
    channel_id: str
    raised_ts_ns: int
    cleared_ts_ns: int
    level: AlertLevel  # the highest reached
    severity: Severity
    value: float  # the measure when raised
    escalated: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class DryRun:
    events: tuple[AlertEvent, ...]
    alerts: tuple[AlertSummary, ...]
    states: Mapping[PointKey, PointState]


def summarize(events: Iterable[AlertEvent]) -> tuple[AlertSummary, ...]:
    """The alerts that events raised, in order of raising."""
    found: dict[str, AlertSummary] = {}
    for e in events:
        s = found.get(e.alert_id)
        if e.kind is EventKind.RAISED:
            found[e.alert_id] = AlertSummary(
                alert_id=e.alert_id,
                rule_id=e.rule_id,
                channel_id=e.channel_id,
                raised_ts_ns=e.ts_ns,
                cleared_ts_ns=NO_TS,
                level=e.level,
                severity=e.severity,
                value=e.value,
                escalated=False,
            )
        elif s is None:
            continue
        elif e.kind is EventKind.UPGRADED:
            found[e.alert_id] = replace(s, level=e.level, severity=e.severity)
        elif e.kind is EventKind.ESCALATED:
            found[e.alert_id] = replace(s, escalated=True)
        elif e.kind is EventKind.CLEARED:
            found[e.alert_id] = replace(s, cleared_ts_ns=e.ts_ns)
        elif e.kind is EventKind.REACTIVATED:
            found[e.alert_id] = replace(s, cleared_ts_ns=NO_TS)
    return tuple(found.values())


def replay(
    bindings: Sequence[Binding],
    history: Mapping[str, Series],
    *,
    start_ns: int,
    end_ns: int,
    baselines: Mapping[str, HourOfWeekProfile] | None = None,
    states: Mapping[PointKey, PointState] | None = None,
    latching: bool = False,
) -> DryRun:
    """Dry run: the alerts the bindings would have raised over history, watched from start_ns
    (or from `states`) up to end_ns.

    Nobody acknowledges in a dry run, so by default rules run non-latching: each return to
    normal closes its alert and every excursion counts as one alert. latching=True keeps the
    rules as configured (then a returned, unacknowledged alert absorbs later excursions).
    """
    if not latching:
        bindings = [replace(b, rule=replace(b.rule, latching=False)) for b in bindings]
    begun = {k: s for k, s in (states or {}).items()}
    for b in bindings:
        begun.setdefault(b.key, new_state(b, since_ns=start_ns))
    out, events = step(bindings, begun, history, now_ns=end_ns, baselines=baselines)
    return DryRun(events=tuple(events), alerts=summarize(events), states=out)


def open_alerts(states: Iterable[PointState]) -> list[tuple[PointKey, AlertPhase, str]]:
    """(point, phase, alert id) of every open alert, e.g. to route an acknowledgement by id."""
    return [
        ((s.rule_id, s.channel_id), s.alert.phase, s.alert.alert_id)
        for s in states
        if s.alert is not None
    ]

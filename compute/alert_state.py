"""Alert lifecycle per (rule, channel) as a pure state machine, after ISA-18.2.

Takes debounced level changes, timer deadlines and operator actions; returns the new state and
the transition events. No I/O and no clock: every instant is an int64 ns argument.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import asdict, dataclass, replace
from typing import Any

from compute.alert_detect import DetectorState
from compute.alert_rules import AlertError, AlertLevel, Binding, Severity, describe
from compute.model import NO_TS, NS_PER_S

SYSTEM_ACTOR = "system"


class AlertStateError(AlertError, ValueError):
    """An operator action is refused: no comment, no such open alert, already acknowledged."""


class EventKind(enum.StrEnum):
    RAISED = "raised"  # a new alert opens
    UPGRADED = "upgraded"  # an open alert reached its ACTION level
    REACTIVATED = "reactivated"  # the condition came back before the alert was acknowledged
    ESCALATED = "escalated"  # still active and unacknowledged after escalate_after_s
    ACKNOWLEDGED = "acknowledged"
    CLEARED = "cleared"  # the condition returned to normal
    SHELVED = "shelved"
    UNSHELVED = "unshelved"


class AlertPhase(enum.StrEnum):
    """Where an alert stands after a transition (ISA-18.2 alarm states)."""

    ACTIVE = "active"  # condition present, unacknowledged
    ACKNOWLEDGED = "acknowledged"  # condition present, acknowledged
    RETURNED = "returned"  # condition gone, unacknowledged: stays visible until acknowledged
    CLOSED = "closed"  # condition gone and acknowledged (or non-latching): no longer open


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertEvent:
    """One transition, a GMP record: attributable (actor, comment) and tied to its alert.

    value is the quantity the rule compared (the value, a rate, a deviation, an age in s);
    notify says whether to page people (never while shelved, never for operator actions or
    clears: those go to the log and the live views only). alert_id is "" for a shelf change
    while no alert is open. until_ns is a shelf's expiry (SHELVED only).
    """

    alert_id: str
    rule_id: str
    channel_id: str
    kind: EventKind
    level: AlertLevel
    severity: Severity
    ts_ns: int
    value: float
    message: str
    phase: AlertPhase
    notify: bool
    actor: str = SYSTEM_ACTOR
    comment: str = ""
    until_ns: int = NO_TS


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenAlert:
    """The one open alert of a (rule, channel); escalate_at_ns is NO_TS when none is due."""

    alert_id: str
    raised_ts_ns: int
    level: AlertLevel  # the highest reached: an ACTION excursion stays one when it eases
    phase: AlertPhase
    value: float
    escalate_at_ns: int = NO_TS
    acked_by: str = ""
    acked_ts_ns: int = NO_TS


@dataclass(frozen=True, slots=True, kw_only=True)
class Shelf:
    """The point is shelved until until_ns: it still records, but pages nobody."""

    until_ns: int
    by: str
    comment: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Debounce:
    """On/off-delay of one level: the raw verdict since since_ns, and the delayed output."""

    raw: bool = False
    since_ns: int = NO_TS
    out: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class PointState:
    """Everything evaluation keeps per (rule, channel): detector, delays, alert and shelf."""

    rule_id: str
    channel_id: str
    detector: DetectorState
    debounce: tuple[Debounce, Debounce] = (Debounce(), Debounce())  # levels ALERT, ACTION
    alert: OpenAlert | None = None
    shelf: Shelf | None = None

    @property
    def level(self) -> int:
        return int(self.debounce[0].out) + int(self.debounce[1].out)


def new_state(b: Binding, *, since_ns: int) -> PointState:
    """A fresh point, watched from since_ns: a channel silent from then on goes stale."""
    return PointState(
        rule_id=b.rule.id, channel_id=b.channel_id, detector=DetectorState(valid_ts_ns=since_ns)
    )


def alert_id(rule_id: str, channel_id: str, raised_ts_ns: int) -> str:
    """Deterministic: a replay after a restart raises the same ids, so nothing is sent twice.
    Unique, as one (rule, channel) never holds two open alerts and raises at increasing times.
    """
    key = f"{rule_id}\n{channel_id}\n{raised_ts_ns}".encode()
    return hashlib.blake2b(key, digest_size=12).hexdigest()


def _message(b: Binding, kind: EventKind, level: AlertLevel, value: float) -> str:
    return (
        f"{b.channel_id} {kind}, {level.name} level of {b.rule.id}: "
        f"{describe(b.rule, level, b.unit)}; value {value:.6g}"
    )


def _event(
    b: Binding,
    a: OpenAlert | None,
    kind: EventKind,
    ts_ns: int,
    *,
    phase: AlertPhase,
    notify: bool,
    value: float | None = None,
    actor: str = SYSTEM_ACTOR,
    comment: str = "",
    until_ns: int = NO_TS,
    message: str | None = None,
) -> AlertEvent:
    level = a.level if a is not None else AlertLevel.ALERT
    v = value if value is not None else (a.value if a is not None else float("nan"))
    return AlertEvent(
        alert_id=a.alert_id if a is not None else "",
        rule_id=b.rule.id,
        channel_id=b.channel_id,
        kind=kind,
        level=level,
        severity=b.rule.severity_of(level),
        ts_ns=ts_ns,
        value=v,
        message=message if message is not None else _message(b, kind, level, v),
        phase=phase,
        notify=notify,
        actor=actor,
        comment=comment,
        until_ns=until_ns,
    )


def _shelved(st: PointState, ts_ns: int) -> bool:
    return st.shelf is not None and ts_ns < st.shelf.until_ns


def _escalate_at(b: Binding, ts_ns: int) -> int:
    after = b.rule.escalate_after_ns
    return NO_TS if after is None else ts_ns + after


def apply_level(
    st: PointState, b: Binding, ts_ns: int, level: int, value: float
) -> tuple[PointState, list[AlertEvent]]:
    """The debounced condition moved to `level` (0, 1 or 2) at ts_ns."""
    a = st.alert
    quiet = _shelved(st, ts_ns)
    if level > 0:
        lv = AlertLevel(level)
        if a is None:  # the only place an alert opens, so never two per (rule, channel)
            a = OpenAlert(
                alert_id=alert_id(b.rule.id, b.channel_id, ts_ns),
                raised_ts_ns=ts_ns,
                level=lv,
                phase=AlertPhase.ACTIVE,
                value=value,
                escalate_at_ns=_escalate_at(b, ts_ns),
            )
            ev = _event(b, a, EventKind.RAISED, ts_ns, phase=a.phase, notify=not quiet)
            return replace(st, alert=a), [ev]
        events = []
        if a.phase is AlertPhase.RETURNED:
            # Back before anyone acknowledged it: the same alert, and no second page for it.
            # An escalation that fell due meanwhile fires now, in time order.
            esc = a.escalate_at_ns
            a = replace(
                a, phase=AlertPhase.ACTIVE, escalate_at_ns=esc if esc == NO_TS else max(esc, ts_ns)
            )
            events.append(
                _event(b, a, EventKind.REACTIVATED, ts_ns, phase=a.phase, notify=False, value=value)
            )
        if lv > a.level:
            # An ACTION excursion is news even if the ALERT one was acknowledged: ack it again.
            reopen = a.phase is AlertPhase.ACKNOWLEDGED
            a = replace(
                a,
                level=lv,
                value=value,
                phase=AlertPhase.ACTIVE,
                escalate_at_ns=_escalate_at(b, ts_ns) if reopen else a.escalate_at_ns,
            )
            events.append(_event(b, a, EventKind.UPGRADED, ts_ns, phase=a.phase, notify=not quiet))
        return replace(st, alert=a), events
    if a is None or a.phase is AlertPhase.RETURNED:
        return st, []
    if a.phase is AlertPhase.ACKNOWLEDGED or not b.rule.latching:
        ev = _event(
            b, a, EventKind.CLEARED, ts_ns, phase=AlertPhase.CLOSED, notify=False, value=value
        )
        return replace(st, alert=None), [ev]
    a = replace(a, phase=AlertPhase.RETURNED)  # escalation waits: it fires only while active
    ev = _event(b, a, EventKind.CLEARED, ts_ns, phase=a.phase, notify=False, value=value)
    return replace(st, alert=a), [ev]


def run_timers(st: PointState, b: Binding, until_ns: int) -> tuple[PointState, list[AlertEvent]]:
    """Fire, in time order, the shelf expiry and escalation due at or before until_ns.

    Each fires at its own deadline (not at until_ns), so the events do not depend on how often
    the caller ticks. A shelf's expiry re-evaluates: an alert still active and unacknowledged
    is announced again and its escalation re-armed. An escalation due while shelved is dropped
    (the expiry re-arms it).
    """
    events: list[AlertEvent] = []
    while True:
        a = st.alert
        shelf_at = st.shelf.until_ns if st.shelf is not None else None
        esc_at = None
        if a is not None and a.phase is AlertPhase.ACTIVE and a.escalate_at_ns != NO_TS:
            esc_at = a.escalate_at_ns
        due = [t for t in (shelf_at, esc_at) if t is not None and t <= until_ns]
        if not due:
            return st, events
        t = min(due)
        if t == shelf_at:
            st = replace(st, shelf=None)
            announce = a is not None and a.phase is AlertPhase.ACTIVE
            if a is not None and announce:
                a = replace(a, escalate_at_ns=_escalate_at(b, t))
                st = replace(st, alert=a)
            phase = a.phase if a is not None else AlertPhase.CLOSED
            events.append(_event(b, a, EventKind.UNSHELVED, t, phase=phase, notify=announce))
            continue
        assert a is not None
        st = replace(st, alert=replace(a, escalate_at_ns=NO_TS))
        if not _shelved(st, t):
            events.append(_event(b, a, EventKind.ESCALATED, t, phase=a.phase, notify=True))


def _require(text: str, what: str) -> str:
    if not text or not text.strip():
        raise AlertStateError(f"{what} is required (GMP: who, when and why)")
    return text.strip()


def acknowledge(
    st: PointState, b: Binding, *, alert_id: str, who: str, when_ns: int, comment: str
) -> tuple[PointState, AlertEvent]:
    """An operator acknowledges the open alert; a missing or blank comment is refused.

    An active alert becomes ACKNOWLEDGED (and will close when the condition clears); one that
    has already returned to normal closes.
    """
    who = _require(who, "the acknowledging user")
    comment = _require(comment, "a comment on the acknowledgement")
    a = st.alert
    if a is None or a.alert_id != alert_id:
        raise AlertStateError(f"alert {alert_id} is not open on {b.rule.id}/{b.channel_id}")
    if a.phase is AlertPhase.ACKNOWLEDGED:
        raise AlertStateError(f"alert {alert_id} is already acknowledged by {a.acked_by}")
    closes = a.phase is AlertPhase.RETURNED
    a = replace(
        a,
        phase=AlertPhase.CLOSED if closes else AlertPhase.ACKNOWLEDGED,
        acked_by=who,
        acked_ts_ns=when_ns,
        escalate_at_ns=NO_TS,
    )
    ev = _event(
        b,
        a,
        EventKind.ACKNOWLEDGED,
        when_ns,
        phase=a.phase,
        notify=False,
        actor=who,
        comment=comment,
    )
    return replace(st, alert=None if closes else a), ev


def shelve(
    st: PointState, b: Binding, *, who: str, when_ns: int, until_ns: int, comment: str
) -> tuple[PointState, AlertEvent]:
    """Shelve the (rule, channel) until until_ns: alerts still open, close and are recorded,
    but nobody is paged. Needs a reason, like an acknowledgement. Re-shelving moves the expiry.
    """
    who = _require(who, "the shelving user")
    comment = _require(comment, "a reason for shelving")
    if until_ns <= when_ns:
        raise AlertStateError("a shelf must expire after it is set")
    a = st.alert
    st = replace(st, shelf=Shelf(until_ns=until_ns, by=who, comment=comment))
    phase = a.phase if a is not None else AlertPhase.CLOSED
    seconds = (until_ns - when_ns) / NS_PER_S
    ev = _event(
        b,
        a,
        EventKind.SHELVED,
        when_ns,
        phase=phase,
        notify=False,
        actor=who,
        comment=comment,
        until_ns=until_ns,
        message=f"{b.rule.id} on {b.channel_id}: shelved for {seconds:g} s by {who}",
    )
    return st, ev


def unshelve(
    st: PointState, b: Binding, *, who: str, when_ns: int, comment: str
) -> tuple[PointState, AlertEvent]:
    """End a shelf early; like its expiry, an active unacknowledged alert is announced again."""
    who = _require(who, "the unshelving user")
    comment = _require(comment, "a reason for unshelving")
    if st.shelf is None:
        raise AlertStateError(f"{b.rule.id}/{b.channel_id} is not shelved")
    st = replace(st, shelf=replace(st.shelf, until_ns=when_ns))
    st, events = run_timers(st, b, when_ns)
    # Other timers due by now fired while shelved, so silently; only the expiry is an event.
    (ev,) = (e for e in events if e.kind is EventKind.UNSHELVED)
    return st, replace(ev, actor=who, comment=comment)


def dump_state(st: PointState) -> dict[str, Any]:
    """A JSON-ready dict of the state, for the store; load_state reverses it exactly."""
    return asdict(st)


def load_state(data: dict[str, Any]) -> PointState:
    det = dict(data["detector"])
    det["window"] = tuple((int(t), float(v)) for t, v in det["window"])
    alert = data.get("alert")
    shelf = data.get("shelf")
    d0, d1 = (Debounce(**d) for d in data["debounce"])
    return PointState(
        rule_id=data["rule_id"],
        channel_id=data["channel_id"],
        detector=DetectorState(**det),
        debounce=(d0, d1),
        alert=None
        if alert is None
        else OpenAlert(
            **{
                **alert,
                "level": AlertLevel(alert["level"]),
                "phase": AlertPhase(alert["phase"]),
            }
        ),
        shelf=None if shelf is None else Shelf(**shelf),
    )

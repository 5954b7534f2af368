"""The alert lifecycle: acknowledgement, ISA-18.2 return-to-normal, escalation, shelving, replay."""

from __future__ import annotations

import json

import pytest

from compute.alert_eval import evaluate
from compute.alert_rules import AlertLevel, Limit, LimitDirection, Severity
from compute.alert_state import (
    AlertEvent,
    AlertPhase,
    AlertStateError,
    EventKind,
    PointState,
    acknowledge,
    alert_id,
    dump_state,
    load_state,
    new_state,
    shelve,
    unshelve,
)
from compute.errors import PlantPulseError
from tests.unit.compute.alert_helpers import T0, S, bind, kinds, rule, run, series

HIGH = Limit(direction=LimitDirection.HIGH, alert=25.0, action=28.0, clear=24.0)
B = bind(rule(HIGH, escalate_after_s=60, severity=Severity.MEDIUM), unit="degC")
K = EventKind


def raised() -> tuple[PointState, AlertEvent]:
    """B with an alert raised at T0 + 1 s (value 26)."""
    st, events = run(B, series([20.0, 26.0]))
    assert kinds(events) == [(K.RAISED, 1)]
    return st, events[0]


def test_an_acknowledgement_without_a_comment_is_refused() -> None:
    st, ev = raised()
    for comment in ("", "   ", "\n"):
        with pytest.raises(AlertStateError, match="comment"):
            acknowledge(
                st, B, alert_id=ev.alert_id, who="li.wei", when_ns=T0 + 5 * S, comment=comment
            )
    with pytest.raises(AlertStateError, match="user"):
        acknowledge(st, B, alert_id=ev.alert_id, who=" ", when_ns=T0 + 5 * S, comment="checked")
    assert issubclass(AlertStateError, PlantPulseError)
    assert st.alert is not None and st.alert.phase is AlertPhase.ACTIVE  # nothing changed


def test_acknowledge_then_clear_closes_the_alert() -> None:
    st, ev = raised()
    st, ack = acknowledge(
        st, B, alert_id=ev.alert_id, who="li.wei", when_ns=T0 + 5 * S, comment="door left open"
    )
    assert (ack.kind, ack.phase, ack.actor, ack.comment, ack.notify) == (
        K.ACKNOWLEDGED,
        AlertPhase.ACKNOWLEDGED,
        "li.wei",
        "door left open",
        False,
    )
    assert ack.alert_id == ev.alert_id
    st, events = run(B, series([20.0], start_s=10), state=st)
    assert [(e.kind, e.phase) for e in events] == [(K.CLEARED, AlertPhase.CLOSED)]
    assert st.alert is None
    with pytest.raises(AlertStateError, match="not open"):
        acknowledge(st, B, alert_id=ev.alert_id, who="li.wei", when_ns=T0 + 11 * S, comment="again")


def test_a_latching_alert_that_returns_unacknowledged_stays_until_acknowledged() -> None:
    st, ev = raised()
    st, events = run(B, series([20.0], start_s=10), state=st)
    assert [(e.kind, e.phase) for e in events] == [(K.CLEARED, AlertPhase.RETURNED)]
    assert st.alert is not None  # still visible: nobody has seen it yet
    # It comes back before anyone acknowledged: the same alert, and nobody is paged again.
    st, events = run(B, series([26.0], start_s=20), state=st)
    assert [(e.kind, e.alert_id, e.notify) for e in events] == [(K.REACTIVATED, ev.alert_id, False)]
    st, events = run(B, series([20.0], start_s=30), state=st)
    st, ack = acknowledge(
        st, B, alert_id=ev.alert_id, who="li.wei", when_ns=T0 + 40 * S, comment="ok"
    )
    assert ack.phase is AlertPhase.CLOSED and st.alert is None
    # The next excursion is a new alert.
    st, events = run(B, series([26.0], start_s=50), state=st)
    assert events[0].kind is K.RAISED and events[0].alert_id != ev.alert_id


def test_a_non_latching_alert_closes_when_it_returns() -> None:
    b = bind(rule(HIGH, latching=False))
    st, events = run(b, series([20.0, 26.0, 20.0]))
    assert [(e.kind, e.phase) for e in events] == [
        (K.RAISED, AlertPhase.ACTIVE),
        (K.CLEARED, AlertPhase.CLOSED),
    ]
    assert st.alert is None


def test_reaching_the_action_level_after_an_acknowledgement_needs_a_new_one() -> None:
    st, ev = raised()
    st, _ = acknowledge(
        st, B, alert_id=ev.alert_id, who="li.wei", when_ns=T0 + 2 * S, comment="watching"
    )
    st, events = run(B, series([29.0], start_s=3), state=st)
    (up,) = events
    assert (up.kind, up.level, up.severity, up.phase, up.notify) == (
        K.UPGRADED,
        AlertLevel.ACTION,
        Severity.HIGH,  # one step above the rule's MEDIUM when no action_severity is given
        AlertPhase.ACTIVE,
        True,
    )
    st, _ = acknowledge(st, B, alert_id=ev.alert_id, who="a", when_ns=T0 + 4 * S, comment="x")
    with pytest.raises(AlertStateError, match="already acknowledged by a"):
        acknowledge(st, B, alert_id=ev.alert_id, who="b", when_ns=T0 + 5 * S, comment="y")


def test_escalation_fires_once_after_t() -> None:
    st, ev = raised()
    all_events = []
    for t in range(2, 600, 7):  # ticks, and readings still breaching
        st, events = run(B, series([26.0], start_s=t), state=st, now_ns=T0 + t * S)
        all_events += events
    assert kinds(all_events) == [(K.ESCALATED, 61)]  # raised at 1 s, escalate_after_s = 60
    assert all_events[0].notify and all_events[0].alert_id == ev.alert_id


def test_no_escalation_once_acknowledged() -> None:
    st, ev = raised()
    st, _ = acknowledge(
        st, B, alert_id=ev.alert_id, who="li.wei", when_ns=T0 + 30 * S, comment="on it"
    )
    st, events = run(B, series([]), state=st, now_ns=T0 + 3600 * S)
    assert events == []


def test_shelved_alerts_do_not_notify_and_the_shelf_expiry_re_evaluates() -> None:
    st = new_state(B, since_ns=T0)
    with pytest.raises(AlertStateError, match="reason"):
        shelve(st, B, who="li.wei", when_ns=T0, until_ns=T0 + 100 * S, comment="")
    with pytest.raises(AlertStateError, match="expire"):
        shelve(st, B, who="li.wei", when_ns=T0, until_ns=T0, comment="maintenance")
    st, sh = shelve(st, B, who="li.wei", when_ns=T0, until_ns=T0 + 100 * S, comment="filter change")
    assert (sh.kind, sh.alert_id, sh.until_ns, sh.notify) == (K.SHELVED, "", T0 + 100 * S, False)
    st, events = run(B, series([20.0, 26.0]), state=st, now_ns=T0 + 90 * S)
    assert [(e.kind, e.notify) for e in events] == [(K.RAISED, False)]  # recorded, not paged
    # Its escalation (due at 61 s) falls while shelved and is dropped; the expiry at 100 s
    # announces the still-active alert and re-arms the escalation from there.
    st, events = run(B, series([]), state=st, now_ns=T0 + 200 * S)
    assert [(k, t, e.notify) for (k, t), e in zip(kinds(events), events, strict=True)] == [
        (K.UNSHELVED, 100, True),
        (K.ESCALATED, 160, True),
    ]
    assert events[0].actor == "system"


def test_a_shelf_expiring_over_a_cleared_alert_pages_nobody() -> None:
    st = new_state(B, since_ns=T0)
    st, _ = shelve(st, B, who="li.wei", when_ns=T0, until_ns=T0 + 100 * S, comment="calibration")
    st, events = run(B, series([26.0, 20.0]), state=st, now_ns=T0 + 150 * S)
    assert [(e.kind, e.notify) for e in events] == [
        (K.RAISED, False),
        (K.CLEARED, False),
        (K.UNSHELVED, False),
    ]


def test_unshelving_early_needs_a_reason_and_announces_an_active_alert() -> None:
    st, ev = raised()
    with pytest.raises(AlertStateError, match="not shelved"):
        unshelve(st, B, who="li.wei", when_ns=T0 + 2 * S, comment="done")
    st, _ = shelve(st, B, who="li.wei", when_ns=T0 + 2 * S, until_ns=T0 + 3600 * S, comment="x")
    assert st.shelf is not None
    with pytest.raises(AlertStateError, match="reason"):
        unshelve(st, B, who="li.wei", when_ns=T0 + 10 * S, comment=" ")
    st, un = unshelve(st, B, who="zhang.min", when_ns=T0 + 10 * S, comment="work finished")
    assert (un.kind, un.actor, un.comment, un.notify, un.alert_id) == (
        K.UNSHELVED,
        "zhang.min",
        "work finished",
        True,
        ev.alert_id,
    )
    assert st.shelf is None
    st, events = run(B, series([]), state=st, now_ns=T0 + 100 * S)
    assert kinds(events) == [(K.ESCALATED, 70)]


def test_alert_ids_are_deterministic() -> None:
    assert alert_id("r", "m.c", T0) == alert_id("r", "m.c", T0)
    assert (
        len({alert_id("r", "m.c", T0), alert_id("r", "m.c", T0 + 1), alert_id("r", "m.d", T0)}) == 3
    )
    _, ev = raised()
    assert ev.alert_id == alert_id("r", "m.c", T0 + S)


def test_replaying_the_same_input_from_a_saved_state_gives_the_same_events() -> None:
    v = [20.0, 26.0, 26.0, 20.0, 29.0, 29.0, 26.0, 24.5, 23.0, 30.0]
    first, second = series(v), series(v, start_s=len(v))
    st, _ = run(B, first)
    saved = json.dumps(dump_state(st))  # what the alerting service stores
    assert load_state(json.loads(saved)) == st
    end = T0 + 200 * S
    _, live = evaluate(B, st, second, now_ns=end)
    _, replayed = evaluate(B, load_state(json.loads(saved)), second, now_ns=end)
    _, again = evaluate(B, load_state(json.loads(saved)), second, now_ns=end)
    assert live == replayed == again != []
    # The whole input in one go from the start gives the same events for the second part.
    _, whole = run(B, series(v + v), now_ns=end)
    assert [e for e in whole if e.ts_ns >= second.ts_ns[0]] == live


def test_a_shelf_and_an_acknowledgement_survive_a_saved_state() -> None:
    st, ev = raised()
    st, _ = acknowledge(st, B, alert_id=ev.alert_id, who="li.wei", when_ns=T0 + 2 * S, comment="ok")
    st, _ = shelve(st, B, who="li.wei", when_ns=T0 + 3 * S, until_ns=T0 + 9 * S, comment="x")
    back = load_state(json.loads(json.dumps(dump_state(st))))
    assert back == st and back.alert is not None and back.alert.acked_by == "li.wei"

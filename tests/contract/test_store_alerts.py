"""The Store's alerting records over every Store: versioned rules with their audit entries, one
transaction per evaluation step (states, chained events, alert rows, outbox, request outcomes),
the outbox as a delivery log, and the operator request queue."""

from __future__ import annotations

import json

import pytest

from compute.alert_rules import AlertLevel, Severity
from compute.alert_state import AlertEvent, AlertPhase, EventKind
from services.store import Store
from services.store.alerts import (
    AlertRequest,
    AlertRow,
    AlertWrite,
    OutboxItem,
    RequestAction,
    RequestOutcome,
    RequestStatus,
    RuleChange,
    UnknownAlertRule,
)


def _change(body: dict[str, object] | None, **kw: object) -> RuleChange:
    return RuleChange(
        rule_id="r1",
        body=None if body is None else json.dumps(body, sort_keys=True),
        at_ns=int(kw.pop("at_ns", 10)),  # type: ignore[call-overload]
        actor=str(kw.pop("actor", "token:abc (eng)")),
        reason=str(kw.pop("reason", "why")),
        **kw,  # type: ignore[arg-type]
    )


async def test_rule_changes_are_versioned_and_audited(store: Store) -> None:
    assert await store.alert_rules_version() == 0
    first = await store.change_alert_rule(_change({"alert": 1}, file_sha256="f1"))
    assert first is not None and first.version == 1 and first.file_sha256 == "f1"
    assert await store.change_alert_rule(_change({"alert": 1})) is None  # nothing changes
    second = await store.change_alert_rule(_change({"alert": 2}, at_ns=20, reason="tighter"))
    assert second is not None and second.version == 2 and second.file_sha256 == "f1"
    gone = await store.change_alert_rule(_change(None, at_ns=30, reason="retired"))
    assert gone is not None and gone.body is None and gone.version == 3
    assert await store.alert_rules() == []
    assert [r.version for r in await store.alert_rules(deleted=True)] == [3]
    assert await store.alert_rules_version() == 3
    with pytest.raises(UnknownAlertRule):
        await store.change_alert_rule(_change(None))
    log = await store.audit_log("alert_rule:r1")
    assert [(e.action, e.old_value, e.new_value, e.reason) for e in log] == [
        ("alert_rule.create", None, '{"alert": 1}', "why"),
        ("alert_rule.update", '{"alert": 1}', '{"alert": 2}', "tighter"),
        ("alert_rule.delete", '{"alert": 2}', None, "retired"),
    ]
    assert {e.actor for e in log} == {"token:abc (eng)"}


def _event(kind: EventKind, ts_ns: int, phase: AlertPhase, **kw: object) -> AlertEvent:
    return AlertEvent(
        alert_id="a1",
        rule_id="r1",
        channel_id="m.c",
        kind=kind,
        level=AlertLevel.ALERT,
        severity=Severity.HIGH,
        ts_ns=ts_ns,
        value=float("nan") if kind is EventKind.ACKNOWLEDGED else 26.0,
        message="m.c raised",
        phase=phase,
        notify=kind is EventKind.RAISED,
        **kw,  # type: ignore[arg-type]
    )


def _row(**kw: object) -> AlertRow:
    base: dict[str, object] = dict(
        alert_id="a1", rule_id="r1", channel_id="m.c", site_id="s", area_id="a", raised_ts_ns=5,
        phase="active", level=1, severity=3, value=26.0, threshold=25.0, message="m.c raised",
        updated_ts_ns=5,
    )  # fmt: skip
    return AlertRow(**{**base, **kw})  # type: ignore[arg-type]


async def test_an_evaluation_step_is_one_write_and_the_outbox_is_its_delivery_log(
    store: Store,
) -> None:
    raised = _event(EventKind.RAISED, 5, AlertPhase.ACTIVE)
    item = OutboxItem(event_id="a1.raised.5", target="webhook:x", payload="{}", created_at_ns=6)
    w = AlertWrite(
        points={("r1", "m.c"): '{"s": 1}', ("r1", "m.d"): '{"s": 2}'},
        events=[raised],
        alerts=[_row()],
        outbox=[
            item,
            OutboxItem(event_id="a1.raised.5", target="bus:t", payload="{}", created_at_ns=6),
        ],
        at_ns=6,
    )
    await store.write_alerting(w)
    await store.write_alerting(AlertWrite(points={}, outbox=[item], at_ns=7))  # replayed: kept once
    assert await store.alert_points() == {("r1", "m.c"): '{"s": 1}', ("r1", "m.d"): '{"s": 2}'}
    assert [a.alert_id for a in await store.alerts()] == ["a1"]
    owed = await store.pending_outbox("webhook:x")
    assert [(o.event_id, o.attempts) for o in owed] == [("a1.raised.5", 0)]
    await store.outbox_failed("a1.raised.5", "webhook:x", "HTTP 503")
    assert [(o.attempts, o.last_error) for o in await store.pending_outbox("webhook:x")] == [
        (1, "HTTP 503")
    ]
    await store.outbox_delivered("a1.raised.5", "webhook:x", 9)
    assert await store.pending_outbox("webhook:x") == []
    assert len(await store.pending_outbox("bus:t")) == 1

    rid = await store.add_alert_request(
        AlertRequest(
            action=RequestAction.ACKNOWLEDGE,
            alert_id="a1",
            rule_id="r1",
            channel_id="m.c",
            actor="li.wei",
            comment="checked",
            requested_at_ns=8,
        )
    )
    assert [r.request_id for r in await store.pending_alert_requests()] == [rid]
    acked = _event(
        EventKind.ACKNOWLEDGED, 8, AlertPhase.ACKNOWLEDGED, actor="li.wei", comment="checked"
    )
    await store.write_alerting(
        AlertWrite(
            points={("r1", "m.c"): '{"s": 3}'},
            dropped=[("r1", "m.d")],
            events=[acked],
            alerts=[
                _row(phase="acknowledged", acked_by="li.wei", acked_ts_ns=8, ack_comment="checked")
            ],
            outcomes=[
                RequestOutcome(
                    request_id=rid, status=RequestStatus.APPLIED, outcome="e", done_at_ns=9
                )
            ],
            at_ns=9,
        )
    )
    assert await store.alert_points() == {("r1", "m.c"): '{"s": 3}'}
    assert await store.pending_alert_requests() == []
    done = await store.alert_request(rid)
    assert done is not None and (done.status, done.outcome, done.done_at_ns) == (
        RequestStatus.APPLIED,
        "e",
        9,
    )
    a = await store.alert("a1")
    assert a is not None and (a.phase, a.acked_by, a.ack_comment) == (
        "acknowledged",
        "li.wei",
        "checked",
    )
    history = await store.alert_history("a1")
    assert [(h.event, h.actor, h.comment, h.value) for h in history] == [
        ("raised", "system", "", 26.0),
        ("acknowledged", "li.wei", "checked", None),
    ]
    await store.write_alerting(
        AlertWrite(points={}, alerts=[_row(phase="closed", closed_ts_ns=12)], at_ns=12)
    )
    assert await store.alerts() == [] and len(await store.alerts(closed=True)) == 1
    assert len(await store.alerts(closed=None)) == 1


async def test_a_failed_step_writes_nothing(store: Store) -> None:
    bad = AlertWrite(
        points={("r1", "m.c"): "{}"},
        events=[_event(EventKind.RAISED, 5, AlertPhase.ACTIVE)],
        alerts=[_row(), _row(alert_id="a2", message=None)],  # NOT NULL: the whole step fails
        at_ns=6,
    )
    with pytest.raises(Exception):  # noqa: B017 - each store raises its driver's error
        await store.write_alerting(bad)
    assert await store.alert_points() == {} and await store.alerts(closed=None) == []
    assert await store.alert_history("a1") == []

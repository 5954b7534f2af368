"""Alert events as the other parts see them: the current-alert row they update, the JSON payload
of the alerts topic and of notifiers, and the live hub's alert state. Pure: no I/O."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from compute import alert_delivery
from compute.alert_rules import (
    AlertLevel,
    AlertRule,
    BaselineDeviation,
    IdleConsumption,
    Limit,
    RateOfChange,
    Severity,
)
from compute.alert_state import AlertEvent, AlertPhase, EventKind
from compute.model import NO_TS
from compute.plant import ChannelRef
from services import live_hub
from services.store.alerts import AlertRow

_HUB_STATE = {
    AlertPhase.ACTIVE: live_hub.AlertState.ACTIVE,
    AlertPhase.RETURNED: live_hub.AlertState.ACTIVE,  # back to normal but not yet acknowledged
    AlertPhase.ACKNOWLEDGED: live_hub.AlertState.ACKNOWLEDGED,
    AlertPhase.CLOSED: live_hub.AlertState.CLEARED,
}


def event_id(e: AlertEvent) -> str:
    """Deterministic, like the alert id: a replayed event has the id it had, so receivers and
    the outbox tell a re-sent notification from a new one (compute.alert_delivery's)."""
    return alert_delivery.event_id(e)


def threshold(rule: AlertRule | None, level: AlertLevel) -> float | None:
    """The level's threshold in the measure's unit, where the rule has one."""
    c = rule.condition if rule is not None else None
    if isinstance(c, Limit | RateOfChange | BaselineDeviation):
        return c.action if level is AlertLevel.ACTION and c.action is not None else c.alert
    if isinstance(c, IdleConsumption):
        act = c.action_per_h
        return act if level is AlertLevel.ACTION and act is not None else c.alert_per_h
    return None


def _finite(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else v


def project(
    row: AlertRow | None, e: AlertEvent, ref: ChannelRef, rule: AlertRule | None
) -> AlertRow | None:
    """The alert's row after the event; None for an event of no alert (a shelf with none open)
    or of an alert whose row is unknown (raised before this store existed)."""
    if not e.alert_id:
        return None
    if e.kind is EventKind.RAISED or row is None:
        if e.kind is not EventKind.RAISED:
            return None
        row = AlertRow(
            alert_id=e.alert_id,
            rule_id=e.rule_id,
            channel_id=e.channel_id,
            site_id=ref.site.id,
            area_id=ref.area.id,
            raised_ts_ns=e.ts_ns,
            phase=e.phase.value,
            level=int(e.level),
            severity=int(e.severity),
            value=_finite(e.value),
            threshold=threshold(rule, e.level),
            message=e.message,
            updated_ts_ns=e.ts_ns,
        )
    changes: dict[str, Any] = {"phase": e.phase.value, "updated_ts_ns": e.ts_ns}
    if e.kind is EventKind.UPGRADED:
        changes.update(
            level=int(e.level),
            severity=int(e.severity),
            value=_finite(e.value),
            threshold=threshold(rule, e.level),
            message=e.message,
        )
    elif e.kind is EventKind.ESCALATED:
        changes["escalated"] = True
    elif e.kind is EventKind.ACKNOWLEDGED:
        changes.update(acked_by=e.actor, acked_ts_ns=e.ts_ns, ack_comment=e.comment)
    elif e.kind is EventKind.SHELVED:
        changes["shelved_until_ns"] = e.until_ns
    elif e.kind is EventKind.UNSHELVED:
        changes["shelved_until_ns"] = None
    if e.phase is AlertPhase.CLOSED:
        changes["closed_ts_ns"] = e.ts_ns
    elif e.kind is EventKind.REACTIVATED or e.kind is EventKind.UPGRADED:
        changes["closed_ts_ns"] = None
    return replace(row, **changes)


def payload(e: AlertEvent, row: AlertRow | None, ref: ChannelRef | None) -> dict[str, Any]:
    """The event as JSON for the alerts topic and notifiers: compute.alert_delivery's payload
    plus the live hub's alert fields (id, state, area, limit, ...), so one message serves both."""
    data = alert_delivery.payload(e, site=ref.site.id if ref is not None else None)
    data.update(
        id=e.alert_id,
        site=ref.site.id if ref is not None else "",
        area=ref.area.id if ref is not None else None,
        state=_HUB_STATE[e.phase].value,
        limit=row.threshold if row is not None else None,
        rule=e.rule_id,
        acknowledged_by=row.acked_by if row is not None else None,
        comment=e.comment or (row.ack_comment if row is not None else None) or None,
        event_comment=e.comment,
        raised_ts_ns=row.raised_ts_ns if row is not None else None,
        escalated=row.escalated if row is not None else False,
    )
    return data


def encode(data: Mapping[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), allow_nan=False)


def event_of(data: Mapping[str, Any]) -> AlertEvent:
    """The compute event back from its payload, for notifiers that take one."""
    value = data.get("value")
    until = data.get("shelved_until_ns")
    return AlertEvent(
        alert_id=str(data["alert_id"]),
        rule_id=str(data["rule_id"]),
        channel_id=str(data["channel_id"]),
        kind=EventKind(data["kind"]),
        level=AlertLevel[str(data["level"]).upper()],
        severity=Severity[str(data["severity"]).upper()],
        ts_ns=int(data["ts_ns"]),
        value=float("nan") if value is None else float(value),
        message=str(data["message"]),
        phase=AlertPhase(data["phase"]),
        notify=bool(data["notify"]),
        actor=str(data["actor"]),
        comment=str(data.get("event_comment") or ""),
        until_ns=NO_TS if until is None else int(until),
    )


def hub_event(data: Mapping[str, Any]) -> live_hub.AlertEvent | None:
    """The live hub's alert state from a payload; None for an event of no alert."""
    return live_hub.AlertEvent.from_json(data) if data.get("id") else None


def hub_event_of_row(row: AlertRow) -> live_hub.AlertEvent:
    """An open alert's live state from its row: to fill a fresh hub at start."""
    return live_hub.AlertEvent(
        id=row.alert_id,
        site=row.site_id,
        state=_HUB_STATE[AlertPhase(row.phase)],
        severity=Severity(row.severity).name.lower(),
        message=row.message,
        ts_ns=row.updated_ts_ns,
        area=row.area_id,
        channel_id=row.channel_id,
        value=row.value,
        limit=row.threshold,
        rule=row.rule_id,
        acknowledged_by=row.acked_by,
        comment=row.ack_comment,
    )

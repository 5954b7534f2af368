"""SQL and row mapping of the alerting records (services.store.alerts), in PostgreSQL's parameter
style: alerts_sqlite swaps %s for ?. No I/O."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from services.store.alerts import (
    AlertRequest,
    AlertRow,
    OutboxItem,
    PointKey,
    RequestAction,
    RequestOutcome,
    RequestStatus,
    RuleChange,
    RuleRecord,
    StoredEvent,
    UnknownAlertRule,
)
from services.store.records import AuditEntry

RULES_VERSION_SQL = "SELECT coalesce(max(version), 0) FROM alert_rules"
_RULE = "rule_id, version, body, file_sha256, updated_at_ns, updated_by"
RULES_SQL = f"SELECT {_RULE} FROM alert_rules WHERE body IS NOT NULL OR %s ORDER BY rule_id"
RULE_SQL = f"SELECT {_RULE} FROM alert_rules WHERE rule_id = %s"
UPSERT_RULE_SQL = (
    f"INSERT INTO alert_rules ({_RULE}) VALUES (%s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (rule_id) DO UPDATE SET version = excluded.version, body = excluded.body,"
    " file_sha256 = excluded.file_sha256, updated_at_ns = excluded.updated_at_ns,"
    " updated_by = excluded.updated_by"
)
POINTS_SQL = "SELECT rule_id, channel_id, state FROM alert_points"
UPSERT_POINT_SQL = (
    "INSERT INTO alert_points (rule_id, channel_id, state, updated_at_ns) VALUES (%s, %s, %s, %s)"
    " ON CONFLICT (rule_id, channel_id) DO UPDATE SET state = excluded.state,"
    " updated_at_ns = excluded.updated_at_ns"
)
DELETE_POINT_SQL = "DELETE FROM alert_points WHERE rule_id = %s AND channel_id = %s"
_ALERT = (
    "alert_id, rule_id, channel_id, site_id, area_id, raised_ts_ns, phase, level, severity,"
    " value, threshold, message, acked_by, acked_ts_ns, ack_comment, closed_ts_ns,"
    " shelved_until_ns, escalated, updated_ts_ns"
)
_ALERT_UPDATES = ", ".join(
    f"{c} = excluded.{c}" for c in (x.strip() for x in _ALERT.split(",")) if c != "alert_id"
)
UPSERT_ALERT_SQL = (
    f"INSERT INTO alerts ({_ALERT}) VALUES ({', '.join(['%s'] * 19)})"
    f" ON CONFLICT (alert_id) DO UPDATE SET {_ALERT_UPDATES}"
)
ALERTS_SQL = (
    f"SELECT {_ALERT} FROM alerts WHERE (%s = 'all')"
    " OR (%s = 'open' AND closed_ts_ns IS NULL) OR (%s = 'closed' AND closed_ts_ns IS NOT NULL)"
    " ORDER BY raised_ts_ns DESC, alert_id LIMIT %s"
)
ALERT_SQL = f"SELECT {_ALERT} FROM alerts WHERE alert_id = %s"
_EVENT = "alert_id, channel_id, rule_id, event, ts_ns, value, actor, comment, recorded_at_ns"
HISTORY_SQL = f"SELECT {_EVENT} FROM alert_events WHERE alert_id = %s ORDER BY seq"
_REQUEST = (
    "action, alert_id, rule_id, channel_id, actor, comment, until_ns, requested_at_ns, status,"
    " outcome, done_at_ns"
)
INSERT_REQUEST_SQL = (
    f"INSERT INTO alert_requests ({_REQUEST}) VALUES ({', '.join(['%s'] * 11)})"
    " RETURNING request_id"
)
REQUEST_SQL = f"SELECT request_id, {_REQUEST} FROM alert_requests WHERE request_id = %s"
PENDING_REQUESTS_SQL = (
    f"SELECT request_id, {_REQUEST} FROM alert_requests WHERE status = 'pending'"
    " ORDER BY request_id LIMIT %s"
)
FINISH_REQUEST_SQL = (
    "UPDATE alert_requests SET status = %s, outcome = %s, done_at_ns = %s"
    " WHERE request_id = %s AND status = 'pending'"
)
_OUTBOX = "event_id, target, payload, created_at_ns"
INSERT_OUTBOX_SQL = (
    f"INSERT INTO alert_outbox ({_OUTBOX}) VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING"
)
PENDING_OUTBOX_SQL = (
    f"SELECT {_OUTBOX}, seq, attempts, delivered_at_ns, last_error FROM alert_outbox"
    " WHERE target = %s AND delivered_at_ns IS NULL ORDER BY seq LIMIT %s"
)
OUTBOX_DELIVERED_SQL = (
    "UPDATE alert_outbox SET delivered_at_ns = %s, attempts = attempts + 1"
    " WHERE event_id = %s AND target = %s AND delivered_at_ns IS NULL"
)
OUTBOX_FAILED_SQL = (
    "UPDATE alert_outbox SET attempts = attempts + 1, last_error = %s"
    " WHERE event_id = %s AND target = %s"
)


def rule_record(row: Any) -> RuleRecord:
    rid, version, body, sha, at, by = row
    return RuleRecord(
        rule_id=rid,
        version=int(version),
        body=body,
        file_sha256=sha,
        updated_at_ns=int(at),
        updated_by=by,
    )


def next_rule(c: RuleChange, old: RuleRecord | None, version: int) -> RuleRecord | None:
    """The record a change makes of the old one at the next version; None if it changes
    nothing. Raises UnknownAlertRule for deleting what is not there."""
    if c.body is None and (old is None or old.body is None):
        raise UnknownAlertRule(f"no alert rule {c.rule_id!r}")
    same_file = c.file_sha256 is None or (old is not None and c.file_sha256 == old.file_sha256)
    if old is not None and old.body == c.body and same_file:
        return None
    sha = c.file_sha256 if c.file_sha256 is not None else (old.file_sha256 if old else None)
    return RuleRecord(
        rule_id=c.rule_id,
        version=version + 1,
        body=c.body,
        file_sha256=sha,
        updated_at_ns=c.at_ns,
        updated_by=c.actor,
    )


def rule_row(r: RuleRecord) -> tuple[Any, ...]:
    return r.rule_id, r.version, r.body, r.file_sha256, r.updated_at_ns, r.updated_by


def rule_entry(c: RuleChange, old: RuleRecord | None) -> AuditEntry:
    """The audit entry of a rule change: the old and new YAML forms as JSON, who and why."""
    before = None if old is None else old.body
    action = "delete" if c.body is None else ("create" if before is None else "update")
    return AuditEntry(
        at_ns=c.at_ns,
        actor=c.actor,
        action=f"alert_rule.{action}",
        subject=f"alert_rule:{c.rule_id}",
        old_value=before,
        new_value=c.body,
        reason=c.reason,
    )


def _float(v: Any) -> float | None:
    return None if v is None else float(v)


def _int(v: Any) -> int | None:
    return None if v is None else int(v)


def _finite(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else v


def alert_row_params(a: AlertRow) -> tuple[Any, ...]:
    return (
        a.alert_id, a.rule_id, a.channel_id, a.site_id, a.area_id, a.raised_ts_ns, a.phase,
        a.level, a.severity, _finite(a.value), _finite(a.threshold), a.message, a.acked_by,
        a.acked_ts_ns, a.ack_comment, a.closed_ts_ns, a.shelved_until_ns, int(a.escalated),
        a.updated_ts_ns,
    )  # fmt: skip


def alert_row(row: Any) -> AlertRow:
    (aid, rid, cid, site, area, raised, phase, level, sev, value, thr, msg, by, at, comment,
     closed, shelved, escalated, updated) = row  # fmt: skip
    return AlertRow(
        alert_id=aid,
        rule_id=rid,
        channel_id=cid,
        site_id=site,
        area_id=area,
        raised_ts_ns=int(raised),
        phase=phase,
        level=int(level),
        severity=int(sev),
        value=_float(value),
        threshold=_float(thr),
        message=msg,
        acked_by=by,
        acked_ts_ns=_int(at),
        ack_comment=comment,
        closed_ts_ns=_int(closed),
        shelved_until_ns=_int(shelved),
        escalated=bool(escalated),
        updated_ts_ns=int(updated),
    )


def alerts_params(closed: bool | None, limit: int) -> tuple[Any, ...]:
    which = "all" if closed is None else ("closed" if closed else "open")
    return which, which, which, limit


def stored_event(row: Any) -> StoredEvent:
    aid, cid, rid, event, ts, value, actor, comment, recorded = row
    return StoredEvent(
        alert_id=aid,
        channel_id=cid,
        rule_id=rid,
        event=event,
        ts_ns=int(ts),
        value=_float(value),
        actor=actor,
        comment=comment,
        recorded_at_ns=int(recorded),
    )


def request_params(r: AlertRequest) -> tuple[Any, ...]:
    return (
        r.action.value, r.alert_id, r.rule_id, r.channel_id, r.actor, r.comment, r.until_ns,
        r.requested_at_ns, r.status.value, r.outcome, r.done_at_ns,
    )  # fmt: skip


def alert_request(row: Any) -> AlertRequest:
    rid, action, aid, rule, cid, actor, comment, until, at, status, outcome, done = row
    return AlertRequest(
        request_id=int(rid),
        action=RequestAction(action),
        alert_id=aid,
        rule_id=rule,
        channel_id=cid,
        actor=actor,
        comment=comment,
        until_ns=_int(until),
        requested_at_ns=int(at),
        status=RequestStatus(status),
        outcome=outcome,
        done_at_ns=_int(done),
    )


def outcome_params(o: RequestOutcome) -> tuple[Any, ...]:
    return o.status.value, o.outcome, o.done_at_ns, o.request_id


def outbox_params(o: OutboxItem) -> tuple[Any, ...]:
    return o.event_id, o.target, o.payload, o.created_at_ns


def outbox_item(row: Any) -> OutboxItem:
    eid, target, payload, created, seq, attempts, delivered, error = row
    return OutboxItem(
        event_id=eid,
        target=target,
        payload=payload,
        created_at_ns=int(created),
        seq=int(seq),
        attempts=int(attempts),
        delivered_at_ns=_int(delivered),
        last_error=error,
    )


def point_params(points: Mapping[PointKey, str], at_ns: int) -> list[tuple[Any, ...]]:
    return [(rule, channel, state, at_ns) for (rule, channel), state in points.items()]

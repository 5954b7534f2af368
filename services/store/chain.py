"""SQL and row mapping of the hash-chained records (audit_log, alert_events) and of the alert
delivery log. No I/O: chain_sqlite and chain_pg run it. SQL in PostgreSQL's parameter style."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from compute.alert_delivery import DeliveryAttempt, DeliveryOutcome
from compute.alert_state import AlertEvent
from compute.audit_chain import Chain, ChainedRow, ChainRow, Scalar, field_names
from compute.errors import PlantPulseError
from services.store.records import AuditEntry

# pg_advisory_xact_lock(CHAIN_LOCK, LOCK_IDS[chain]) serialises a chain's appends. The
# two-key form has its own key space: it never meets the single-key locks of migrations.
CHAIN_LOCK = 0x706C6E74  # "plnt"
LOCK_IDS = {Chain.AUDIT_LOG: 1, Chain.ALERT_EVENTS: 2}
_CHAIN_COLUMNS = ("prev_sha256", "sha256", "field_digests")


class ChainAppendError(PlantPulseError):
    """A chained append was attempted outside a transaction: two writers could fork the chain."""


def head_sql(chain: Chain) -> str:
    """The newest chained row's hash (rows written around the store have none)."""
    return f"SELECT sha256 FROM {chain} WHERE sha256 IS NOT NULL ORDER BY seq DESC LIMIT 1"


def insert_sql(chain: Chain) -> str:
    columns = (*field_names(chain), *_CHAIN_COLUMNS)
    marks = ", ".join(["%s"] * len(columns))
    return f"INSERT INTO {chain} ({', '.join(columns)}) VALUES ({marks})"


def insert_rows(chain: Chain, rows: Sequence[ChainedRow]) -> list[tuple[Any, ...]]:
    names = field_names(chain)
    return [
        (*(r.fields.get(n) for n in names), r.prev_sha256, r.sha256, r.field_digests) for r in rows
    ]


def page_sql(chain: Chain) -> str:
    columns = ", ".join(("seq", *field_names(chain), *_CHAIN_COLUMNS))
    return f"SELECT {columns} FROM {chain} WHERE seq > %s ORDER BY seq LIMIT %s"


def chain_row(chain: Chain, row: Sequence[Any]) -> ChainRow:
    names = field_names(chain)
    values = row[1 : 1 + len(names)]
    prev, sha, digests = row[1 + len(names) :]
    return ChainRow(
        seq=int(row[0]),
        fields=dict(zip(names, values, strict=True)),
        prev_sha256=prev,
        sha256=sha,
        field_digests=digests,
    )


ORIGIN_SQL = "SELECT legacy_through_seq FROM audit_chain_origin WHERE chain = %s"


def audit_fields(e: AuditEntry) -> dict[str, Scalar]:
    return {
        "at_ns": int(e.at_ns),
        "actor": e.actor,
        "action": e.action,
        "subject": e.subject,
        "old_value": e.old_value,
        "new_value": e.new_value,
        "reason": e.reason,
    }


def alert_event_fields(e: AlertEvent, recorded_at_ns: int) -> dict[str, Scalar]:
    """The stored columns of an event (alert_events, 0007). Its level, severity and phase live
    in the alerts projection; NaN is kept as NULL."""
    return {
        "alert_id": e.alert_id,
        "channel_id": e.channel_id,
        "rule_id": e.rule_id,
        "event": e.kind.value,
        "ts_ns": int(e.ts_ns),
        "value": None if math.isnan(e.value) else float(e.value),
        "actor": e.actor,
        "comment": e.comment,
        "recorded_at_ns": int(recorded_at_ns),
    }


INSERT_DELIVERY_SQL = (
    "INSERT INTO alert_deliveries (event_id, alert_id, target, attempt, outcome, status_code,"
    " error, latency_ms, at_ns) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
DELIVERIES_SQL = (
    "SELECT event_id, alert_id, target, attempt, outcome, status_code, error, latency_ms, at_ns"
    " FROM alert_deliveries WHERE CAST(%s AS TEXT) IS NULL OR event_id = %s ORDER BY seq"
)


def delivery_row(a: DeliveryAttempt) -> tuple[Any, ...]:
    return (
        a.event_id, a.alert_id, a.target, a.attempt, a.outcome.value, a.status_code, a.error,
        float(a.latency_ms), int(a.at_ns),
    )  # fmt: skip


def delivery(row: Sequence[Any]) -> DeliveryAttempt:
    eid, aid, target, attempt, outcome, code, error, latency, at = row
    return DeliveryAttempt(
        event_id=eid,
        alert_id=aid,
        target=target,
        attempt=int(attempt),
        outcome=DeliveryOutcome(outcome),
        status_code=None if code is None else int(code),
        error=error,
        latency_ms=float(latency),
        at_ns=int(at),
    )

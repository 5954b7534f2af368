"""Alerting records in the store and the AlertStore port: rules with their version, point states,
current alerts, operator requests and the notification outbox (migration 0014; the SQL is in
alerts_sql). alert_events stays the append-only, hash-chained record of every transition."""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from compute.alert_state import AlertEvent
from compute.errors import PlantPulseError

PointKey = tuple[str, str]  # (rule id, channel id)


class UnknownAlertRule(PlantPulseError):
    """A rule to delete does not exist (or was deleted already)."""


class RequestAction(enum.StrEnum):
    ACKNOWLEDGE = "acknowledge"
    SHELVE = "shelve"
    UNSHELVE = "unshelve"


class RequestStatus(enum.StrEnum):
    PENDING = "pending"
    APPLIED = "applied"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleRecord:
    """A rule as stored: body is its canonical YAML form as JSON, None once deleted."""

    rule_id: str
    version: int
    body: str | None
    file_sha256: str | None
    updated_at_ns: int
    updated_by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleChange:
    """Create, replace (body) or delete (body None) a rule, with who and why for the audit log."""

    rule_id: str
    body: str | None
    at_ns: int
    actor: str
    reason: str
    file_sha256: str | None = None  # set when the change comes from the rules file


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertRow:
    """One alert's current lifecycle, projected from its events; closed_ts_ns None while open."""

    alert_id: str
    rule_id: str
    channel_id: str
    site_id: str
    area_id: str
    raised_ts_ns: int
    phase: str
    level: int
    severity: int
    value: float | None
    threshold: float | None
    message: str
    acked_by: str | None = None
    acked_ts_ns: int | None = None
    ack_comment: str | None = None
    closed_ts_ns: int | None = None
    shelved_until_ns: int | None = None
    escalated: bool = False
    updated_ts_ns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredEvent:
    """A row of alert_events: one transition of an alert, who made it and why."""

    alert_id: str
    channel_id: str
    rule_id: str
    event: str
    ts_ns: int
    value: float | None
    actor: str
    comment: str
    recorded_at_ns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertRequest:
    """An operator's acknowledgement or shelf change, queued by the API for the alerting process."""

    request_id: int = 0  # assigned by the store
    action: RequestAction
    alert_id: str
    rule_id: str
    channel_id: str
    actor: str
    comment: str
    until_ns: int | None = None
    requested_at_ns: int
    status: RequestStatus = RequestStatus.PENDING
    outcome: str = ""
    done_at_ns: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestOutcome:
    request_id: int
    status: RequestStatus
    outcome: str
    done_at_ns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxItem:
    """One event for one delivery target; delivered_at_ns None while it is owed."""

    event_id: str
    target: str
    payload: str  # JSON
    created_at_ns: int
    seq: int = 0
    attempts: int = 0
    delivered_at_ns: int | None = None
    last_error: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertWrite:
    """One evaluation step's effects, written in one transaction before the bus commit."""

    points: Mapping[PointKey, str]  # changed states, as dump_state JSON
    dropped: Sequence[PointKey] = ()  # points whose rule no longer watches the channel
    events: Sequence[AlertEvent] = ()  # to alert_events, hash-chained, recorded at at_ns
    alerts: Sequence[AlertRow] = ()  # upserted
    outbox: Sequence[OutboxItem] = ()  # kept unless (event_id, target) exists already
    outcomes: Sequence[RequestOutcome] = ()
    at_ns: int


class AlertStore(Protocol):
    """The Store's alerting part (services.store.Store includes it)."""

    async def alert_rules_version(self) -> int: ...

    async def alert_rules(self, *, deleted: bool = False) -> list[RuleRecord]: ...

    async def change_alert_rule(self, c: RuleChange) -> RuleRecord | None:
        """Apply the change with its audit entry in one transaction; None when it changes
        nothing. Deleting a rule that is not there raises UnknownAlertRule."""
        ...

    async def alert_points(self) -> dict[PointKey, str]: ...

    async def write_alerting(self, w: AlertWrite) -> None: ...

    async def alerts(self, *, closed: bool | None = False, limit: int = 1000) -> list[AlertRow]:
        """Newest raised first; closed False: open ones, True: closed ones, None: both."""
        ...

    async def alert(self, alert_id: str) -> AlertRow | None: ...

    async def alert_history(self, alert_id: str) -> list[StoredEvent]: ...

    async def add_alert_request(self, r: AlertRequest) -> int: ...

    async def alert_request(self, request_id: int) -> AlertRequest | None: ...

    async def pending_alert_requests(self, limit: int = 100) -> list[AlertRequest]: ...

    async def pending_outbox(self, target: str, limit: int = 500) -> list[OutboxItem]: ...

    async def outbox_delivered(self, event_id: str, target: str, at_ns: int) -> None: ...

    async def outbox_failed(self, event_id: str, target: str, error: str) -> None: ...


def canonical(body: Mapping[str, Any]) -> str:
    """A rule body's stored JSON: sorted keys, no spaces, so equal rules store equally."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"))

"""Alerts over the API: the current alerts with their lifecycle, one alert with its history, and
acknowledge / shelve / unshelve. An operator action is queued for the alerting process, the one
writer of alert state; the answer waits briefly for it to be applied (or refused)."""

from __future__ import annotations

import asyncio
import enum
import time
import zoneinfo
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import AwareDatetime, BaseModel, Field

from compute.alert_rules import AlertLevel, Severity
from compute.model import NS_PER_S, datetime_ns
from compute.plant import Plant
from services.access import Permission
from services.api_auth import Caller, require
from services.api_time import iso
from services.store import Store
from services.store.alerts import AlertRequest, AlertRow, RequestAction, RequestStatus

MAX_SHELF_S = 7 * 86_400  # a shelf that outlives a week is a change to the rule, not a shelf
Operator = Annotated[Caller, Depends(require(Permission.ALERTS))]
Viewer = Annotated[Caller, Depends(require(Permission.LIVE))]


class StateFilter(enum.StrEnum):
    ACTIVE = "active"  # open and unacknowledged (its condition present, or returned to normal)
    ACKNOWLEDGED = "acknowledged"
    OPEN = "open"  # active or acknowledged
    CLOSED = "closed"
    ALL = "all"


class AlertOut(BaseModel):
    id: str
    rule_id: str
    channel_id: str
    site: str
    area: str
    phase: str = Field(
        description="active, returned (normal, unacknowledged), acknowledged, closed"
    )
    level: str = Field(description="alert or action: the highest level reached")
    severity: str
    value: float | None = Field(description="the measure that raised or upgraded it")
    limit: float | None = Field(description="the threshold of its level, where the rule has one")
    message: str
    raised: datetime
    updated: datetime
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    ack_comment: str | None
    closed: datetime | None
    shelved_until: datetime | None
    escalated: bool


class EventOut(BaseModel):
    event: str
    ts: datetime
    value: float | None
    actor: str
    comment: str
    recorded_at: datetime


class AlertDetail(AlertOut):
    history: list[EventOut]


class AckIn(BaseModel):
    comment: str | None = Field(default=None, description="required: what was found or done")


class ShelveIn(BaseModel):
    until: AwareDatetime | None = Field(default=None, description="when the shelf expires")
    duration_s: float | None = Field(
        default=None, gt=0, le=MAX_SHELF_S, description="or: for how long (at most 7 days)"
    )
    comment: str | None = Field(default=None, description="required: why it is shelved")


class ActionOut(BaseModel):
    request_id: int
    status: str = Field(description="applied, refused, or pending (not applied yet)")
    outcome: str = Field(description="the event id when applied, the reason when refused")
    alert: AlertOut | None


def alert_out(a: AlertRow, tz: zoneinfo.ZoneInfo) -> AlertOut:
    def t(ts_ns: int | None) -> datetime | None:
        return None if ts_ns is None else iso(ts_ns, tz)

    return AlertOut(
        id=a.alert_id,
        rule_id=a.rule_id,
        channel_id=a.channel_id,
        site=a.site_id,
        area=a.area_id,
        phase=a.phase,
        level=AlertLevel(a.level).name.lower(),
        severity=Severity(a.severity).name.lower(),
        value=a.value,
        limit=a.threshold,
        message=a.message,
        raised=iso(a.raised_ts_ns, tz),
        updated=iso(a.updated_ts_ns, tz),
        acknowledged_by=a.acked_by,
        acknowledged_at=t(a.acked_ts_ns),
        ack_comment=a.ack_comment,
        closed=t(a.closed_ts_ns),
        shelved_until=t(a.shelved_until_ns),
        escalated=a.escalated,
    )


def _matches(a: AlertRow, state: StateFilter) -> bool:
    if state is StateFilter.ACTIVE:
        return a.closed_ts_ns is None and a.phase in ("active", "returned")
    if state is StateFilter.ACKNOWLEDGED:
        return a.closed_ts_ns is None and a.phase == "acknowledged"
    return True


def _required(text: str | None, what: str) -> str:
    if text is None or not text.strip():
        raise HTTPException(422, f"comment: {what} needs a comment (GMP: who, when and why)")
    return text.strip()


def alert_routes(
    plant: Plant,
    store: Store,
    zones: dict[str, zoneinfo.ZoneInfo],
    *,
    wait_s: float = 5.0,
    clock_ns: Callable[[], int] = time.time_ns,
) -> APIRouter:
    router = APIRouter(tags=["alerts"])

    def tz_of(a: AlertRow) -> zoneinfo.ZoneInfo:
        return zones.get(a.site_id) or zoneinfo.ZoneInfo("UTC")

    async def visible(alert_id: str, caller: Caller) -> AlertRow:
        a = await store.alert(alert_id)
        if a is None:
            raise HTTPException(404, f"no alert {alert_id!r}")
        caller.check_site(a.site_id)
        return a

    @router.get("/v1/alerts", response_model=list[AlertOut])
    async def list_alerts(
        caller: Viewer,
        state: StateFilter = StateFilter.OPEN,
        site: str | None = None,
        severity: Annotated[
            str | None, Query(description="low, medium, high or critical; comma-separated")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    ) -> list[AlertOut]:
        """Alerts of the token's sites, newest raised first, with their lifecycle: `active`
        (unacknowledged), `acknowledged`, `open` (both, the default), `closed` or `all`."""
        if site is not None and site not in zones:
            raise HTTPException(422, f"unknown site {site!r}; known: {sorted(zones)}")
        wanted = None
        if severity:
            names = {s.name.lower(): s for s in Severity}
            wanted = set()
            for x in (v.strip().lower() for v in severity.split(",") if v.strip()):
                if x not in names:
                    raise HTTPException(422, f"unknown severity {x!r}; known: {list(names)}")
                wanted.add(int(names[x]))
        closed = {StateFilter.CLOSED: True, StateFilter.ALL: None}.get(state, False)
        rows = await store.alerts(closed=closed, limit=limit if closed is not False else 100_000)
        out = [
            alert_out(a, tz_of(a))
            for a in rows
            if caller.covers(a.site_id)
            and (site is None or a.site_id == site)
            and (wanted is None or a.severity in wanted)
            and _matches(a, state)
        ]
        return out[:limit]

    @router.get("/v1/alerts/{alert_id}", response_model=AlertDetail)
    async def get_alert(alert_id: str, caller: Viewer) -> AlertDetail:
        """One alert with every transition it went through (the GMP record), oldest first."""
        a = await visible(alert_id, caller)
        tz = tz_of(a)
        history = [
            EventOut(
                event=e.event,
                ts=iso(e.ts_ns, tz),
                value=e.value,
                actor=e.actor,
                comment=e.comment,
                recorded_at=iso(e.recorded_at_ns, tz),
            )
            for e in await store.alert_history(alert_id)
        ]
        return AlertDetail(**alert_out(a, tz).model_dump(), history=history)

    async def queued(r: AlertRequest, response: Response) -> ActionOut:
        """Queue the request; wait up to wait_s for the alerting process to apply it."""
        rid = await store.add_alert_request(r)
        deadline = time.monotonic() + wait_s
        got = None
        while time.monotonic() < deadline:
            got = await store.alert_request(rid)
            if got is not None and got.status is not RequestStatus.PENDING:
                break
            await asyncio.sleep(0.05)
        if got is None or got.status is RequestStatus.PENDING:
            response.status_code = 202
            return ActionOut(
                request_id=rid,
                status=RequestStatus.PENDING.value,
                outcome="queued: the alerting process applies it when it next runs",
                alert=None,
            )
        if got.status is RequestStatus.REFUSED:
            raise HTTPException(409, got.outcome)
        a = await store.alert(r.alert_id)
        return ActionOut(
            request_id=rid,
            status=got.status.value,
            outcome=got.outcome,
            alert=None if a is None else alert_out(a, tz_of(a)),
        )

    def request(a: AlertRow, action: RequestAction, caller: Caller, comment: str) -> AlertRequest:
        return AlertRequest(
            action=action,
            alert_id=a.alert_id,
            rule_id=a.rule_id,
            channel_id=a.channel_id,
            actor=caller.actor,
            comment=comment,
            requested_at_ns=clock_ns(),
        )

    @router.post("/v1/alerts/{alert_id}/ack", response_model=ActionOut)
    async def acknowledge(
        alert_id: str, body: AckIn, caller: Operator, response: Response
    ) -> ActionOut:
        """Acknowledge an open alert; a comment is required (422 without one). Who is the
        token's holder. 409 when it is closed or acknowledged already."""
        comment = _required(body.comment, "an acknowledgement")
        a = await visible(alert_id, caller)
        if a.closed_ts_ns is not None:
            raise HTTPException(409, f"alert {alert_id} is closed")
        if a.phase == "acknowledged":
            raise HTTPException(409, f"alert {alert_id} is already acknowledged by {a.acked_by}")
        return await queued(request(a, RequestAction.ACKNOWLEDGE, caller, comment), response)

    @router.post("/v1/alerts/{alert_id}/shelve", response_model=ActionOut)
    async def shelve(
        alert_id: str, body: ShelveIn, caller: Operator, response: Response
    ) -> ActionOut:
        """Shelve the alert's rule on its channel until `until` (or for `duration_s`), at most
        a week: it still records, but pages nobody. A reason (comment) is required."""
        comment = _required(body.comment, "a shelf")
        now = clock_ns()
        if (body.until is None) == (body.duration_s is None):
            raise HTTPException(422, "give either until or duration_s")
        until = (
            datetime_ns(body.until)
            if body.until is not None
            else now + round((body.duration_s or 0.0) * NS_PER_S)
        )
        if not now < until <= now + MAX_SHELF_S * NS_PER_S:
            raise HTTPException(422, "until: must lie in the future, at most 7 days ahead")
        a = await visible(alert_id, caller)
        r = replace(request(a, RequestAction.SHELVE, caller, comment), until_ns=until)
        return await queued(r, response)

    @router.post("/v1/alerts/{alert_id}/unshelve", response_model=ActionOut)
    async def unshelve(
        alert_id: str, body: AckIn, caller: Operator, response: Response
    ) -> ActionOut:
        """End a shelf early, with a reason (comment); an alert still active pages again."""
        comment = _required(body.comment, "unshelving")
        a = await visible(alert_id, caller)
        return await queued(request(a, RequestAction.UNSHELVE, caller, comment), response)

    return router

"""Alert rules over the API (engineer role): list, create or replace, delete and dry-run. Each
change is validated (422 naming every bad key), written with its audit entry (old value, new
value, who, why) and versioned; the alerting process picks the new version up within a tick."""

from __future__ import annotations

import json
import math
import time
import zoneinfo
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from compute.alert_config import AlertConfigError, resolve
from compute.alert_rules import AlertRule, Binding
from compute.model import NO_TS, NS_PER_S
from compute.plant import Plant
from services.access import Permission
from services.alert_dryrun import DryRunTooLarge, dry_run
from services.alert_rulebook import body_of, parse_body
from services.api_auth import Caller, require
from services.api_time import bound_ns, iso
from services.store import Store
from services.store.alerts import RuleChange, RuleRecord, UnknownAlertRule

_UTC = zoneinfo.ZoneInfo("UTC")
Engineer = Annotated[Caller, Depends(require(Permission.CONFIGURE))]


class RuleOut(BaseModel):
    id: str
    version: int
    rule: dict[str, Any] = Field(description="the rule in its rules-file (YAML) form")
    channels: list[str] = Field(description="the channels it watches in this plant")
    updated_at: datetime
    updated_by: str


class RuleIn(BaseModel):
    rule: dict[str, Any] = Field(description="the rule in its rules-file (YAML) form")
    reason: str = Field(description="why: kept in the audit log with the old and new value")


class DeleteIn(BaseModel):
    reason: str


class DryRunIn(BaseModel):
    rule: dict[str, Any]
    start: datetime = Field(description="inclusive; naive = the rule's site time")
    end: datetime = Field(description="exclusive; naive = the rule's site time")


class DryRunAlert(BaseModel):
    alert_id: str
    rule_id: str
    channel_id: str
    raised: datetime
    cleared: datetime | None
    level: str
    severity: str
    value: float | None
    escalated: bool


class DryRunOut(BaseModel):
    rule_id: str
    start: datetime
    end: datetime
    channels: int
    readings: int
    alerts: int
    summary: str
    items: list[DryRunAlert]


def _issues(e: AlertConfigError) -> HTTPException:
    return HTTPException(
        422,
        {
            "message": "invalid alert rule",
            "issues": [{"path": i.path, "message": i.message} for i in e.issues],
        },
    )


def alert_rule_routes(
    plant: Plant,
    store: Store,
    zones: dict[str, zoneinfo.ZoneInfo],
    bucket_ns: int,
    *,
    clock_ns: Callable[[], int] = time.time_ns,
) -> APIRouter:
    router = APIRouter(tags=["alert rules"])

    def bound(rule: AlertRule) -> list[Binding]:
        try:
            return resolve([rule], plant)
        except AlertConfigError as e:
            raise _issues(e) from e

    def checked(body: dict[str, Any], caller: Caller) -> tuple[AlertRule, list[Binding]]:
        """The rule of a body, valid and bound, within the caller's sites (else 422 / 403)."""
        try:
            rule = parse_body(body)
        except AlertConfigError as e:
            raise _issues(e) from e
        bindings = bound(rule)
        for site in sorted({plant.channels[b.channel_id].site.id for b in bindings}):
            caller.check_site(site)
        return rule, bindings

    def out(r: RuleRecord) -> RuleOut:
        body = json.loads(r.body or "{}")
        try:
            channels = [b.channel_id for b in resolve([parse_body(body)], plant)]
        except AlertConfigError:
            channels = []  # stored for another plant model: listed, watching nothing here
        return RuleOut(
            id=r.rule_id,
            version=r.version,
            rule=body,
            channels=channels,
            updated_at=iso(r.updated_at_ns, _UTC),
            updated_by=r.updated_by,
        )

    def reason_of(text: str) -> str:
        if not text.strip():
            raise HTTPException(422, "reason: a rule change needs a reason (GMP: who, when, why)")
        return text.strip()

    @router.get("/v1/alert-rules", response_model=list[RuleOut])
    async def list_rules(caller: Engineer) -> list[RuleOut]:
        """Every rule in force, with its version and the channels it watches."""
        return [out(r) for r in await store.alert_rules()]

    @router.put("/v1/alert-rules/{rule_id}", response_model=RuleOut)
    async def put_rule(rule_id: str, body: RuleIn, caller: Engineer) -> RuleOut:
        """Create or replace a rule. It is validated against the plant (422 lists each bad key
        as rule.<key>), audited with the old and new value, who and why (`reason`), and the
        alerting process applies it from its next reading."""
        reason = reason_of(body.reason)
        data = {"id": rule_id, **body.rule}
        if data["id"] != rule_id:
            raise HTTPException(422, f"rule.id: {data['id']!r} differs from the path's {rule_id!r}")
        rule, _ = checked(data, caller)
        change = RuleChange(
            rule_id=rule_id, body=body_of(rule), at_ns=clock_ns(), actor=caller.actor, reason=reason
        )
        await store.change_alert_rule(change)
        (got,) = [r for r in await store.alert_rules() if r.rule_id == rule_id]
        return out(got)

    @router.delete("/v1/alert-rules/{rule_id}", status_code=204)
    async def delete_rule(rule_id: str, body: DeleteIn, caller: Engineer) -> None:
        """Delete a rule (audited, `reason` required); its open alerts are closed."""
        reason = reason_of(body.reason)
        old = [r for r in await store.alert_rules() if r.rule_id == rule_id]
        if not old:
            raise HTTPException(404, f"no alert rule {rule_id!r}")
        if old[0].body is not None:
            try:
                checked(json.loads(old[0].body), caller)
            except HTTPException as e:
                if e.status_code == 403:
                    raise
        try:
            await store.change_alert_rule(
                RuleChange(
                    rule_id=rule_id, body=None, at_ns=clock_ns(), actor=caller.actor, reason=reason
                )
            )
        except UnknownAlertRule as e:
            raise HTTPException(404, str(e)) from e

    @router.post("/v1/alert-rules/dry-run", response_model=DryRunOut)
    async def dry(body: DryRunIn, caller: Engineer) -> DryRunOut:
        """Replay a rule (stored or not) over the stored readings of [start, end): "this rule
        would have raised N alerts", and each of them. Nothing is stored or sent."""
        rule, bindings = checked({"id": "dry-run", **body.rule}, caller)
        sites = {plant.channels[b.channel_id].site.id for b in bindings}
        tz = zones[next(iter(sites))] if len(sites) == 1 else _UTC
        if len(sites) > 1 and (body.start.tzinfo is None or body.end.tzinfo is None):
            raise HTTPException(422, "start, end: give a UTC offset, the rule spans sites")
        a, b = bound_ns("start", body.start, tz, 1), bound_ns("end", body.end, tz, 1)
        if b <= a:
            raise HTTPException(422, "end must be after start")
        try:
            got = await dry_run(store, bindings, a, b, bucket_ns=bucket_ns)
        except DryRunTooLarge as e:
            raise HTTPException(422, str(e)) from e
        items = [
            DryRunAlert(
                alert_id=x.alert_id,
                rule_id=x.rule_id,
                channel_id=x.channel_id,
                raised=iso(x.raised_ts_ns, tz),
                cleared=None if x.cleared_ts_ns == NO_TS else iso(x.cleared_ts_ns, tz),
                level=x.level.name.lower(),
                severity=x.severity.name.lower(),
                value=x.value if math.isfinite(x.value) else None,
                escalated=x.escalated,
            )
            for x in got.run.alerts
        ]
        days = (b - a) / (86_400 * NS_PER_S)
        return DryRunOut(
            rule_id=rule.id,
            start=iso(a, tz),
            end=iso(b, tz),
            channels=len(bindings),
            readings=got.readings,
            alerts=len(items),
            summary=f"this rule would have raised {len(items)} alerts in {days:.3g} days",
            items=items,
        )

    return router

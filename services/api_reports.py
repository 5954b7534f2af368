"""API routes for ESG reports: a site's report over a year or any span (JSON or CSV), its period
close, its restatements and their history. Reading needs REPORTS, closing and restating CONFIGURE.
"""

from __future__ import annotations

import time
import zoneinfo
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from compute.calendar import Period
from compute.esg_output import CSV_COLUMNS, HASH_KEY, Restatement, restatements
from compute.indicators import round_half_up
from compute.periods import Span
from compute.plant import Plant
from services.access import Permission
from services.api_auth import Caller, require
from services.api_formats import Format, csv_response, wants_csv
from services.api_time import iso, site_zone
from services.api_totals import request_span
from services.reports import ReportConflict, ReportError, Reports, ReportStatus, ReportView, Version
from services.store import Store
from services.store.reporting import subject

REPORT_CSV_COLUMNS = (*CSV_COLUMNS, "status", "current_value", "difference")


class RestatementOut(BaseModel):
    key: str
    name: str
    unit: str
    old_value: str | None  # decimal strings, as published
    new_value: str | None
    difference: str | None  # new − old
    old_factor_refs: list[str]
    new_factor_refs: list[str]


class VersionOut(BaseModel):
    version: int  # 1: the close; then each restatement
    action: str
    at: datetime
    by: str
    reason: str
    sha256: str
    previous_sha256: str | None
    changes: list[RestatementOut]  # against the version before
    content: dict[str, Any] | None = None


class ReportOut(BaseModel):
    site: str
    report_id: str
    start: datetime
    end: datetime
    status: ReportStatus
    report: dict[str, Any]  # the closed figures when closed, else the current ones
    current_sha256: str  # of the figures the stored data give now
    closed: VersionOut | None  # version 1
    latest: VersionOut | None  # the latest recorded version
    restatements: list[RestatementOut]  # closed figure → current figure, where they differ
    pending: list[RestatementOut]  # latest recorded version → current, not yet restated


class AuditOut(BaseModel):
    at: datetime
    actor: str
    action: str
    old_value: str | None
    new_value: str | None
    reason: str


class HistoryOut(BaseModel):
    site: str
    report_id: str
    start: datetime
    end: datetime
    status: ReportStatus
    versions: list[VersionOut]
    pending: list[RestatementOut]
    audit: list[AuditOut]


class PeriodIn(BaseModel):
    """Which period: a year, a calendar period by its label, or [start, end); and why."""

    model_config = ConfigDict(extra="forbid")
    year: int | None = Field(default=None, ge=1900, le=2199)
    period: Period | None = None
    at: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    reason: str = Field(min_length=1, description="why the period is closed or restated")


def _restatement(r: Restatement) -> RestatementOut:
    def text(x: object | None) -> str | None:
        return None if x is None else str(x)

    return RestatementOut(
        key=r.key,
        name=r.name,
        unit=r.unit,
        old_value=text(r.old_value),
        new_value=text(r.new_value),
        difference=text(r.difference),
        old_factor_refs=list(r.old_factor_refs),
        new_factor_refs=list(r.new_factor_refs),
    )


def _versions(vs: list[Version], tz: zoneinfo.ZoneInfo, content: bool) -> list[VersionOut]:
    out = []
    for i, v in enumerate(vs):
        changes = restatements(vs[i - 1].content, v.content) if i else ()
        out.append(
            VersionOut(
                version=v.number,
                action=v.action,
                at=iso(v.at_ns, tz),
                by=v.actor,
                reason=v.reason,
                sha256=v.sha256,
                previous_sha256=v.previous_sha256,
                changes=[_restatement(r) for r in changes],
                content=v.content if content else None,
            )
        )
    return out


def _fraction(x: float) -> str:
    return str(round_half_up(x, 4))


def csv_lines(view: ReportView) -> list[dict[str, Any]]:
    """The shown report's indicators as compute.esg_output.csv_rows gives them, with the
    report's status and, per indicator, the current value and its difference from the shown."""
    changed = {r.key: r for r in view.since_close}
    lines = []
    for i in view.report["indicators"]:
        c = i["coverage"]
        r = changed.get(i["key"])
        lines.append(
            {
                "framework": i["framework"],
                "code": i["code"],
                "item": i["item"],
                "key": i["key"],
                "name": i["name"],
                "value": i["value"] or "",
                "unit": i["unit"],
                "decimals": str(i["decimals"]),
                "rounding": i["rounding"],
                "coverage": _fraction(c["good_fraction"]),
                "samples_good": str(c["good"]),
                "samples_expected": str(c["expected"]),
                "estimated_share": _fraction(i["estimated_share"]),
                "formula": i["formula"],
                "factor_versions": "; ".join(i["factor_refs"]),
                "reason": i["reason"] or "",
                "status": view.status.value,
                "current_value": (i["value"] or "") if r is None else (r.new_value or ""),
                "difference": "" if r is None else r.difference,
            }
        )
    return lines


def report_routes(
    plant: Plant,
    store: Store,
    zones: dict[str, zoneinfo.ZoneInfo],
    bucket_ns: int,
    clock_ns: Callable[[], int] = time.time_ns,
) -> APIRouter:
    router = APIRouter()
    reports = Reports(plant, store, clock_ns)
    read = [Depends(require(Permission.REPORTS))]
    path = "/v1/sites/{site}/reports/esg"

    def span_of(
        tz: zoneinfo.ZoneInfo,
        year: int | None,
        period: Period | None,
        at: str | None,
        start: datetime | None,
        end: datetime | None,
    ) -> Span:
        if year is not None:
            if period is not None or at is not None:
                raise HTTPException(422, "give year, or period and at, not both")
            period, at = Period.YEAR, str(year)
        return request_span(tz, bucket_ns, start, end, period, at)

    def out(site: str, v: ReportView, tz: zoneinfo.ZoneInfo) -> ReportOut:
        versions = _versions(v.versions, tz, content=False)
        return ReportOut(
            site=site,
            report_id=v.report_id,
            start=iso(v.report["start_ns"], tz),
            end=iso(v.report["end_ns"], tz),
            status=v.status,
            report=v.report,
            current_sha256=v.current[HASH_KEY],
            closed=versions[0] if versions else None,
            latest=versions[-1] if versions else None,
            restatements=[_restatement(r) for r in v.since_close],
            pending=[_restatement(r) for r in v.pending],
        )

    async def guarded(call: Awaitable[ReportView]) -> ReportView:
        try:
            view = await call
        except ReportError as e:
            raise HTTPException(422, str(e)) from e
        except ReportConflict as e:
            raise HTTPException(409, str(e)) from e
        return view

    @router.get(
        path,
        response_model=ReportOut,
        dependencies=read,
        responses={200: {"content": {"text/csv": {}}}},
    )
    async def esg_report(
        request: Request,
        site: str,
        year: Annotated[int | None, Query(ge=1900, le=2199, description="a calendar year")] = None,
        period: Annotated[Period | None, Query(description="a calendar period, with at")] = None,
        at: Annotated[str | None, Query(description="e.g. 2026-Q1, 2026-03")] = None,
        start: Annotated[datetime | None, Query(description="naive = site time")] = None,
        end: Annotated[datetime | None, Query(description="exclusive; naive = site time")] = None,
        format: Annotated[Format | None, Query(description="json or csv")] = None,
    ) -> Response | ReportOut:
        """The site's ESG report (GRI 302-1, 302-3, 303-3, 303-5, 305-1, 305-2, 305-4; HKEX
        A1.2, A2.1, A2.2; T/LTIA 27-2024 TECP, TECO, TNGC, EPE, WC, WRR, ECOVRP) with method
        notes, rounding and coverage. For a closed period: the closed figures, and next to each
        the figure late data or a revised factor gives now."""
        tz = site_zone(zones, site)
        span = span_of(tz, year, period, at, start, end)
        view = await guarded(reports.view(site, span))
        if wants_csv(request, format):
            name = f"esg-{site}-{year or at or iso(span.start_ns, tz).date()}.csv"
            return csv_response(csv_lines(view), REPORT_CSV_COLUMNS, name)
        return out(site, view, tz)

    @router.post(
        f"{path}/close",
        status_code=201,
        response_model=ReportOut,
    )
    async def close(
        site: str, body: PeriodIn, caller: Annotated[Caller, Depends(require(Permission.CONFIGURE))]
    ) -> ReportOut:
        """Close a period: its report is stored as version 1 (content and its sha256, who, when
        and why) and written to the audit log. A closed period is changed only by restating."""
        tz = site_zone(zones, site)
        span = span_of(tz, body.year, body.period, body.at, body.start, body.end)
        view = await guarded(reports.close(site, span, actor=caller.actor, reason=body.reason))
        return out(site, view, tz)

    @router.post(
        f"{path}/restate",
        status_code=201,
        response_model=ReportOut,
    )
    async def restate(
        site: str, body: PeriodIn, caller: Annotated[Caller, Depends(require(Permission.CONFIGURE))]
    ) -> ReportOut:
        """Record the figures the stored data and factors give now as the closed report's next
        version, with the reason (late data, a revised factor); 409 when nothing changed."""
        tz = site_zone(zones, site)
        span = span_of(tz, body.year, body.period, body.at, body.start, body.end)
        view = await guarded(reports.restate(site, span, actor=caller.actor, reason=body.reason))
        return out(site, view, tz)

    @router.get(f"{path}/history", response_model=HistoryOut, dependencies=read)
    async def history(
        site: str,
        year: Annotated[int | None, Query(ge=1900, le=2199)] = None,
        period: Period | None = None,
        at: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        content: Annotated[bool, Query(description="include each version's report")] = False,
    ) -> HistoryOut:
        """Every recorded version of a period's report (the close, then each restatement) with
        what changed from the version before, what is pending, and the audit entries."""
        tz = site_zone(zones, site)
        span = span_of(tz, year, period, at, start, end)
        view = await guarded(reports.view(site, span))
        return HistoryOut(
            site=site,
            report_id=view.report_id,
            start=iso(span.start_ns, tz),
            end=iso(span.end_ns, tz),
            status=view.status,
            versions=_versions(view.versions, tz, content),
            pending=[_restatement(r) for r in view.pending],
            audit=[
                AuditOut(
                    at=iso(e.at_ns, tz),
                    actor=e.actor,
                    action=e.action,
                    old_value=e.old_value,
                    new_value=e.new_value,
                    reason=e.reason,
                )
                for e in await store.audit_log(subject(view.report_id))
            ],
        )

    return router

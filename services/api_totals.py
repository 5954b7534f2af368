"""API route for a site's totals over [start, end) or a calendar period: grouped, in a unit,
compared with the period before and a year before, as JSON or CSV. Reads the store only.
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel

from compute.calendar import Period
from compute.emissions import EmissionFactor
from compute.grouping import Comparison, Grouping, Row
from compute.periods import Compare, PeriodRefError, Span, calendar_span
from compute.plant import Plant, Utility
from compute.units import Unit
from services.access import Permission
from services.api_auth import require
from services.api_formats import Format, csv_response, wants_csv
from services.api_time import iso, site_zone, time_range
from services.store import Store
from services.totals import ChannelFigure, Totals, TotalsError, TotalsReader, TotalsRequest


class ComparisonOut(BaseModel):
    start: datetime
    end: datetime
    total: float | None  # None: the row has no counterpart in that span
    difference: float | None  # total now − total then
    percent: float | None  # difference ÷ total then × 100; None when that is 0
    samples_good: int
    samples_expected: int
    coverage: float


class RowOut(BaseModel):
    key: str  # the site, utility, area, meter, channel or tariff band
    utilities: list[Utility]
    unit: str
    total: float
    estimated: float  # the part spread over gaps in the readings
    estimated_share: float
    samples: int
    samples_good: int
    samples_expected: int
    coverage: float  # good ÷ expected samples
    channels: list[str]  # provenance: the counters added
    factors: list[str]  # provenance: the emission-factor versions (id@version), for tCO2e
    previous: ComparisonOut | None = None
    year_before: ComparisonOut | None = None


class UtilityOut(BaseModel):
    """Per utility over the root meters, as in the first version of this endpoint."""

    utility: Utility
    unit: str
    total: float
    estimated: float
    channels: list[str]
    samples_good: int
    samples_expected: int
    coverage: float


class ChannelOut(BaseModel):
    channel_id: str
    meter: str
    area: str
    utility: Utility
    unit: str
    total: float
    estimated: float
    samples: int
    samples_good: int
    samples_expected: int
    coverage: float
    factors: list[str]


class FactorOut(BaseModel):
    ref: str
    id: str
    version: str
    activity: str
    region: str
    basis: str
    value: float
    unit: str
    source: str
    valid_from: datetime
    valid_to: datetime | None


class TotalsOut(BaseModel):
    site: str
    timezone: str
    start: datetime
    end: datetime
    period: Period | None  # when [start, end) is one calendar period
    group: Grouping
    unit: Unit | None  # None: each row in its counters' metered unit
    rows: list[RowOut]
    utilities: list[UtilityOut]  # the group=utility rows, whatever the grouping
    channels: list[ChannelOut]  # every counter asked for, each with its own figure
    factors: list[FactorOut]
    notes: list[str]


CSV_COLUMNS = (
    "site", "timezone", "start", "end", "group", "key", "utilities", "unit", "total",
    "estimated", "estimated_share", "samples", "samples_good", "samples_expected", "coverage",
    "channels", "factors",
    *(f"{c}_{x}" for c in Compare for x in (
        "start", "end", "total", "difference", "percent", "samples_good", "samples_expected",
        "coverage",
    )),
)  # fmt: skip


def _comparison(span: Span, c: Comparison, tz: zoneinfo.ZoneInfo) -> ComparisonOut:
    return ComparisonOut(
        start=iso(span.start_ns, tz),
        end=iso(span.end_ns, tz),
        total=c.total,
        difference=c.difference,
        percent=c.percent,
        samples_good=c.samples_good,
        samples_expected=c.samples_expected,
        coverage=c.coverage,
    )


def _row(i: int, r: Row, t: Totals, tz: zoneinfo.ZoneInfo) -> RowOut:
    compared = {str(how): _comparison(span, cs[i], tz) for how, (span, cs) in t.comparisons.items()}
    return RowOut(
        key=r.key,
        utilities=list(r.utilities),
        unit=r.unit,
        total=r.total,
        estimated=r.estimated,
        estimated_share=r.estimated_share,
        samples=r.samples,
        samples_good=r.samples_good,
        samples_expected=r.samples_expected,
        coverage=r.coverage,
        channels=list(r.channels),
        factors=list(r.factor_refs),
        previous=compared.get(Compare.PREVIOUS),
        year_before=compared.get(Compare.YEAR_BEFORE),
    )


def _channel(c: ChannelFigure) -> ChannelOut:
    s = c.sum
    return ChannelOut(
        channel_id=c.ref.key,
        meter=c.ref.meter.id,
        area=c.ref.area.id,
        utility=c.ref.channel.utility,
        unit=c.unit,
        total=s.total,
        estimated=s.estimated,
        samples=s.samples,
        samples_good=s.samples_good,
        samples_expected=s.samples_expected,
        coverage=min(1.0, s.samples_good / s.samples_expected) if s.samples_expected else 1.0,
        factors=list(s.factor_refs),
    )


def _factor(f: EmissionFactor, tz: zoneinfo.ZoneInfo) -> FactorOut:
    return FactorOut(
        ref=f.ref,
        id=f.id,
        version=f.version,
        activity=f.activity.value,
        region=f.region,
        basis=f.basis.value,
        value=f.value,
        unit=f.unit,
        source=f.source,
        valid_from=iso(f.valid_from_ns, tz),
        valid_to=None if f.valid_to_ns is None else iso(f.valid_to_ns, tz),
    )


def csv_rows(out: TotalsOut) -> list[dict[str, Any]]:
    """One CSV row per figure row, its comparisons flattened into prefixed columns."""
    lines = []
    for r in out.rows:
        line: dict[str, Any] = {
            "site": out.site,
            "timezone": out.timezone,
            "start": out.start,
            "end": out.end,
            "group": out.group,
            **r.model_dump(exclude={"previous", "year_before"}),
        }
        for how in Compare:
            c: ComparisonOut | None = getattr(r, how.value)
            for name, value in (c.model_dump() if c else {}).items():
                line[f"{how}_{name}"] = value
        lines.append(line)
    return lines


def request_span(
    tz: zoneinfo.ZoneInfo,
    bucket_ns: int,
    start: datetime | None,
    end: datetime | None,
    period: Period | None,
    at: str | None,
) -> Span:
    """The span a request names: a calendar period by its label, or [start, end); 422 else."""
    if period is not None or at is not None:
        if start is not None or end is not None:
            raise HTTPException(422, "give either period and at, or start and end, not both")
        if period is None or at is None:
            raise HTTPException(
                422, "a calendar period needs both period and at, e.g. period=month&at=2026-03"
            )
        try:
            return calendar_span(tz.key, period, at)
        except PeriodRefError as e:
            raise HTTPException(422, str(e)) from e
    if start is None or end is None:
        raise HTTPException(
            422, "give start and end, or period and at (e.g. period=month&at=2026-03)"
        )
    a, b = time_range(start, end, tz, bucket_ns)
    return Span(start_ns=a, end_ns=b)


def totals_routes(
    plant: Plant, store: Store, zones: dict[str, zoneinfo.ZoneInfo], bucket_ns: int
) -> APIRouter:
    router = APIRouter()
    reader = TotalsReader(plant, store, bucket_ns)

    @router.get(
        "/v1/sites/{site}/totals",
        response_model=TotalsOut,
        dependencies=[Depends(require(Permission.DATA))],
        responses={200: {"content": {"text/csv": {}}}},
    )
    async def totals(
        request: Request,
        site: str,
        start: Annotated[
            datetime | None, Query(description="inclusive; ISO 8601, naive = site time")
        ] = None,
        end: Annotated[
            datetime | None, Query(description="exclusive; ISO 8601, naive = site time")
        ] = None,
        period: Annotated[
            Period | None, Query(description="a calendar period of the site, with `at`")
        ] = None,
        at: Annotated[
            str | None,
            Query(description="which period: 2026, 2026-Q1, 2026-03, 2026-W13 or 2026-03-29"),
        ] = None,
        group: Grouping = Grouping.UTILITY,
        unit: Annotated[Unit | None, Query(description="none: the counters' metered units")] = None,
        utility: Annotated[
            list[Utility] | None, Query(description="repeatable; none: all the unit fits")
        ] = None,
        compare: Annotated[
            list[Compare] | None, Query(description="repeatable: previous, year_before")
        ] = None,
        format: Annotated[
            Format | None, Query(description="json or csv; else the Accept header")
        ] = None,
    ) -> Response | TotalsOut:
        """A site's consumption over [start, end) or one calendar period of its timezone (a DST
        day has 23 or 25 hours), grouped by site, utility, area, meter, channel or tariff band,
        in its metered units or the unit asked for, each figure with its coverage, estimated
        share and provenance, compared with the previous period and the same period a year
        before on request."""
        tz = site_zone(zones, site)
        span = request_span(tz, bucket_ns, start, end, period, at)
        req = TotalsRequest(
            site=site,
            span=span,
            grouping=group,
            unit=unit,
            utilities=tuple(dict.fromkeys(utility or ())),
            compare=tuple(dict.fromkeys(compare or ())),
        )
        try:
            t = await reader.totals(req)
        except TotalsError as e:
            raise HTTPException(422, str(e)) from e
        out = TotalsOut(
            site=site,
            timezone=tz.key,
            start=iso(span.start_ns, tz),
            end=iso(span.end_ns, tz),
            period=span.period,
            group=group,
            unit=unit,
            rows=[_row(i, r, t, tz) for i, r in enumerate(t.rows)],
            utilities=[
                UtilityOut(
                    utility=u.utilities[0],
                    unit=u.unit,
                    total=u.total,
                    estimated=u.estimated,
                    channels=list(u.channels),
                    samples_good=u.samples_good,
                    samples_expected=u.samples_expected,
                    coverage=u.coverage,
                )
                for u in t.utilities
            ],
            channels=[_channel(c) for c in t.channels],
            factors=[_factor(f, tz) for f in t.factors],
            notes=list(t.notes),
        )
        if wants_csv(request, format):
            label = at or f"{out.start:%Y%m%dT%H%M}-{out.end:%Y%m%dT%H%M}"
            return csv_response(csv_rows(out), CSV_COLUMNS, f"totals-{site}-{label}.csv")
        return out

    return router

"""API routes for intensities: period values (denominators) supplied by other systems or by
hand, and a utility's intensity over a period, each figure with its coverage."""

from __future__ import annotations

import time
import zoneinfo
from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from compute.denominators import PeriodValue, PeriodValueError, denominator_over
from compute.indicators import Coverage, Denominator, Figure, intensity
from compute.model import NS_PER_S
from compute.plant import ChannelKind, ChannelRef, Plant, Utility
from services.access import Permission
from services.api_auth import Caller, require
from services.api_time import bound_ns, iso, site_zone, time_range
from services.series import period_totals
from services.store import Store


class PeriodValueIn(BaseModel):
    kind: Denominator
    start: datetime = Field(description="inclusive; ISO 8601, naive = site time")
    end: datetime = Field(description="exclusive; ISO 8601, naive = site time")
    value: float = Field(ge=0, allow_inf_nan=False)
    source: str = Field(min_length=1, description="the system or person it comes from")
    reason: str = Field(default="", description="why; required to restate a recorded period")


class PeriodValueOut(BaseModel):
    kind: Denominator
    unit: str
    start: datetime
    end: datetime
    value: float
    source: str
    recorded_at: datetime


class FigureOut(BaseModel):
    value: float | None
    unit: str
    reason: str | None
    samples_expected: int
    samples_good: int
    coverage: float


class IntensityOut(BaseModel):
    site: str
    start: datetime
    end: datetime
    numerator: FigureOut
    denominator: FigureOut
    denominator_source: str  # "period values" or "production counters"
    intensity: FigureOut


def _out(f: Figure) -> FigureOut:
    c = f.coverage
    return FigureOut(
        value=f.value,
        unit=f.unit,
        reason=f.reason or None,
        samples_expected=c.expected,
        samples_good=c.good,
        coverage=c.good_fraction,
    )


def indicator_routes(
    plant: Plant,
    store: Store,
    zones: dict[str, zoneinfo.ZoneInfo],
    bucket_ns: int,
    clock_ns: Callable[[], int] = time.time_ns,
) -> APIRouter:
    router = APIRouter()
    data = [Depends(require(Permission.DATA))]

    def value_out(v: PeriodValue, tz: zoneinfo.ZoneInfo) -> PeriodValueOut:
        return PeriodValueOut(
            kind=v.kind,
            unit=v.kind.unit,
            start=iso(v.start_ns, tz),
            end=iso(v.end_ns, tz),
            value=v.value,
            source=v.source,
            recorded_at=iso(v.recorded_at_ns, tz),
        )

    @router.post(
        "/v1/sites/{site}/period-values",
        status_code=201,
        response_model=PeriodValueOut,
    )
    async def add_period_value(
        site: str,
        body: PeriodValueIn,
        caller: Annotated[Caller, Depends(require(Permission.CONFIGURE))],
    ) -> PeriodValueOut:
        """Record a denominator for a period (units produced, output value, revenue, headcount,
        floor area). Recording the same period again restates it, with a reason; the earlier
        value is kept. Each is audited: who, the old and new value, why."""
        tz = site_zone(zones, site)
        try:
            v = PeriodValue(
                site=site,
                kind=body.kind,
                start_ns=bound_ns("start", body.start, tz, NS_PER_S),
                end_ns=bound_ns("end", body.end, tz, NS_PER_S),
                value=body.value,
                source=body.source,
                recorded_at_ns=clock_ns(),
            )
            await store.add_period_value(v, actor=caller.actor, reason=body.reason)
        except PeriodValueError as e:
            raise HTTPException(422, str(e)) from e
        return value_out(v, tz)

    @router.get(
        "/v1/sites/{site}/period-values", response_model=list[PeriodValueOut], dependencies=data
    )
    async def period_values(
        site: str, kind: Denominator, start: datetime, end: datetime
    ) -> list[PeriodValueOut]:
        """Every recorded version of the values whose period overlaps [start, end)."""
        tz = site_zone(zones, site)
        a, b = time_range(start, end, tz, NS_PER_S)
        return [value_out(v, tz) for v in await store.period_values(site, kind, a, b)]

    async def counters_total(refs: list[ChannelRef], unit: str, a: int, b: int) -> Figure:
        tz = refs[0].site.timezone  # one site's channels
        sums = await period_totals(store, [r.key for r in refs], a, b, tz)
        expected = sum(int((b - a) / (r.meter.interval_s * NS_PER_S)) for r in refs)
        received = sum(t.n for t in sums.values())
        good = sum(t.n_good for t in sums.values())
        return Figure(
            value=sum(t.sum for t in sums.values()),
            unit=unit,
            start_ns=a,
            end_ns=b,
            coverage=Coverage(expected=expected, received=received, good=good),
        )

    @router.get("/v1/sites/{site}/intensity", response_model=IntensityOut, dependencies=data)
    async def site_intensity(
        site: str,
        start: Annotated[datetime, Query(description="inclusive; naive = site time")],
        end: Annotated[datetime, Query(description="exclusive; naive = site time")],
        denominator: Denominator,
        utility: Utility = Utility.ELECTRICITY,
    ) -> IntensityOut:
        """The utility's consumption over the site's root meters ÷ the denominator over the same
        period: recorded period values when there are any, else (for units produced) the site's
        production counters. No denominator, or zero, gives no value and the reason."""
        tz = site_zone(zones, site)
        a, b = time_range(start, end, tz, bucket_ns)
        counters = [
            r
            for r in plant.channels.values()
            if r.site.id == site and r.channel.kind is ChannelKind.COUNTER
        ]
        roots = [r for r in counters if r.channel.utility is utility and r.meter.parent is None]
        units = {r.channel.unit for r in roots}
        if len(units) != 1:
            raise HTTPException(
                422, f"site {site!r} has no {utility} counters on root meters in one unit: {units}"
            )
        numerator = await counters_total(roots, units.pop(), a, b)
        recorded = await store.period_values(site, denominator, a, b)
        made = [r for r in counters if r.channel.utility is Utility.PRODUCTION]
        if recorded or denominator is not Denominator.UNITS_PRODUCED or not made:
            source, den = "period values", denominator_over(recorded, denominator, a, b)
        else:
            source, den = "production counters", await counters_total(made, denominator.unit, a, b)
        return IntensityOut(
            site=site,
            start=iso(a, tz),
            end=iso(b, tz),
            numerator=_out(numerator),
            denominator=_out(den),
            denominator_source=source,
            intensity=_out(intensity(numerator, den, denominator)),
        )

    return router

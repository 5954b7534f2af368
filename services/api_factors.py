"""API routes for emission factors: versions recorded (append-only, audited) and listed, and a
site's Scope 1 and location-based Scope 2 emissions over a period from the factors in effect.
"""

from __future__ import annotations

import time
import zoneinfo
from collections.abc import Callable, Sequence
from datetime import datetime
from itertools import pairwise
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import AwareDatetime, BaseModel, Field

from compute.emissions import (
    Activity,
    Basis,
    EmissionFactor,
    EmissionsError,
    FactorKey,
    MissingFactorError,
    emissions,
)
from compute.factor_versions import DEFAULT_FACTORS, FactorConflict, FactorVersion
from compute.model import datetime_ns
from compute.plant import ChannelKind, ChannelRef, Plant, Utility
from services.access import Permission
from services.api_auth import Caller, require
from services.api_time import iso, site_zone, time_range
from services.factors import factor_table, factors_in_effect
from services.series import period_totals
from services.store import Store

_UTC = zoneinfo.ZoneInfo("UTC")
# Per utility: its Scope, activity, and the activity units in one metered unit.
_SCOPES = (
    (1, Utility.NATURAL_GAS, Activity.NATURAL_GAS, {"m3": 1e-3, "Nm3": 1e-3}),
    (2, Utility.ELECTRICITY, Activity.ELECTRICITY_GRID, {"kWh": 1e-3, "MWh": 1.0}),
)


class FactorIn(BaseModel):
    id: str = Field(min_length=1, max_length=100, description="one factor series, e.g. cn-grid")
    version: str = Field(min_length=1, max_length=100, description="e.g. mee-2024")
    activity: Activity
    region: str = Field(min_length=1, description="broad to specific: CN, CN/east/jiangsu")
    basis: Basis = Basis.LOCATION
    valid_from: AwareDatetime
    valid_to: AwareDatetime | None = Field(default=None, description="exclusive; none: open")
    value: float = Field(ge=0, allow_inf_nan=False)
    unit: str | None = Field(default=None, description="tCO2 per the activity's unit")
    source: str = Field(min_length=1, description="the publication it comes from")
    supersedes: list[str] = Field(
        default=[], description="refs id@version it replaces where their validity overlaps"
    )
    reason: str = Field(min_length=1, description="why it is recorded, for the audit log")


class Span(BaseModel):
    valid_from: datetime
    valid_to: datetime | None


class FactorOut(BaseModel):
    ref: str
    id: str
    version: str
    activity: Activity
    region: str
    basis: Basis
    valid_from: datetime
    valid_to: datetime | None
    value: float
    unit: str
    source: str
    recorded_at: datetime | None  # none: built in
    supersedes: list[str]
    built_in: bool
    in_effect: list[Span]  # where it applies: its validity minus what superseded it


class FactorUseOut(BaseModel):
    ref: str
    value: float
    unit: str
    source: str
    start: datetime
    end: datetime
    quantity: float
    emissions_tco2: float


class ScopeOut(BaseModel):
    scope: int
    activity: Activity
    basis: Basis
    channels: list[str]
    quantity: float
    quantity_unit: str
    emissions_tco2: float | None
    factors: list[FactorUseOut]
    reason: str | None = None


class EmissionsOut(BaseModel):
    site: str
    region: str
    start: datetime
    end: datetime
    scopes: list[ScopeOut]


def _t(ts_ns: int | None) -> datetime | None:
    return None if ts_ns is None else iso(ts_ns, _UTC)


def _base(version: str, built_in: bool) -> str:
    return version.split("#")[0] if built_in else version


def factor_routes(
    plant: Plant, store: Store, bucket_ns: int, clock_ns: Callable[[], int] = time.time_ns
) -> APIRouter:
    router = APIRouter()
    zones = {s.id: zoneinfo.ZoneInfo(s.timezone) for s in plant.sites}
    sites = {s.id: s for s in plant.sites}

    def out(v: FactorVersion | None, f: EmissionFactor, pieces: list[EmissionFactor]) -> FactorOut:
        return FactorOut(
            ref=f.ref,
            id=f.id,
            version=f.version,
            activity=f.activity,
            region=f.region,
            basis=f.basis,
            valid_from=iso(f.valid_from_ns, _UTC),
            valid_to=_t(f.valid_to_ns),
            value=f.value,
            unit=f.unit,
            source=f.source,
            recorded_at=None if v is None else iso(v.recorded_at_ns, _UTC),
            supersedes=[] if v is None else list(v.supersedes),
            built_in=v is None,
            in_effect=[
                Span(valid_from=iso(p.valid_from_ns, _UTC), valid_to=_t(p.valid_to_ns))
                for p in pieces
                if (p.id, _base(p.version, v is None)) == (f.id, f.version)
            ],
        )

    @router.get(
        "/v1/emission-factors",
        response_model=list[FactorOut],
        dependencies=[Depends(require(Permission.DATA))],
    )
    async def list_factors(
        activity: Activity | None = None,
        region: str | None = None,
        valid_at: Annotated[
            AwareDatetime | None, Query(description="only those in effect at this time")
        ] = None,
    ) -> list[FactorOut]:
        """Every recorded version, oldest first, then the built-in defaults, each with where it
        is in effect; `region` matches exactly."""
        pieces = await factors_in_effect(store)
        got = [out(v, v.factor, pieces) for v in await store.factor_versions()]
        got += [out(None, d, pieces) for d in DEFAULT_FACTORS]
        at_ns = None if valid_at is None else datetime_ns(valid_at)

        def keep(f: FactorOut) -> bool:
            if (activity is not None and f.activity is not activity) or (
                region is not None and f.region != region
            ):
                return False
            return at_ns is None or any(
                datetime_ns(s.valid_from) <= at_ns
                and (s.valid_to is None or at_ns < datetime_ns(s.valid_to))
                for s in f.in_effect
            )

        return [f for f in got if keep(f)]

    @router.post("/v1/emission-factors", status_code=201, response_model=FactorOut)
    async def add_factor(
        body: FactorIn, caller: Annotated[Caller, Depends(require(Permission.CONFIGURE))]
    ) -> FactorOut:
        """Record a factor version. Its validity may not overlap a version in effect for the
        same activity, region and basis (409) unless it names that version in `supersedes`: it
        then replaces it over the overlap, from a date on or up to a date (not in the middle).
        Versions are never changed or deleted; restating a period under a revision is this
        explicit, audited act."""
        bounds = [datetime_ns(t) for t in (body.valid_from, body.valid_to) if t is not None]
        if not all(0 <= t < 2**63 for t in bounds):
            raise HTTPException(422, "valid_from and valid_to must lie between 1970 and 2262")
        try:
            v = FactorVersion(
                factor=EmissionFactor(
                    id=body.id,
                    version=body.version,
                    activity=body.activity,
                    region=body.region,
                    basis=body.basis,
                    valid_from_ns=datetime_ns(body.valid_from),
                    valid_to_ns=None if body.valid_to is None else datetime_ns(body.valid_to),
                    value=body.value,
                    unit=body.unit or body.activity.factor_unit,
                    source=body.source,
                ),
                supersedes=tuple(body.supersedes),
                recorded_at_ns=clock_ns(),
            )
            await store.add_factor_version(v, actor=caller.actor, reason=body.reason)
        except EmissionsError as e:
            raise HTTPException(422, str(e)) from e
        except FactorConflict as e:
            raise HTTPException(409, str(e)) from e
        return out(v, v.factor, await factors_in_effect(store))

    async def quantity(
        refs: Sequence[ChannelRef], scale: dict[str, float], lo: int, hi: int, tz: zoneinfo.ZoneInfo
    ) -> float:
        """The channels' consumption over [lo, hi) in the activity's unit."""
        if hi <= lo:
            return 0.0
        sums = await period_totals(store, [r.key for r in refs], lo, hi, tz.key)
        unit = {r.key: scale[r.channel.unit] for r in refs}
        return sum(t.sum * unit[k] for k, t in sums.items())

    @router.get(
        "/v1/sites/{site}/emissions",
        response_model=EmissionsOut,
        dependencies=[Depends(require(Permission.DATA))],
    )
    async def site_emissions(
        site: str,
        start: Annotated[datetime, Query(description="inclusive; naive = site time")],
        end: Annotated[datetime, Query(description="exclusive; naive = site time")],
        region: Annotated[
            str | None, Query(min_length=1, description="factor region; default: the site's")
        ] = None,
    ) -> EmissionsOut:
        """Scope 1 (natural gas burned) and location-based Scope 2 (grid electricity) of the
        site's root meters over [start, end): each part of the period under one factor version
        times the consumption metered in that part, with the versions used."""
        tz = site_zone(zones, site)
        a, b = time_range(start, end, tz, bucket_ns)
        region = region or sites[site].region
        if region is None:
            raise HTTPException(422, f"site {site!r} has no region in the plant file: give region")
        table = await factor_table(store)
        scopes = []
        for scope, utility, activity, scale in _SCOPES:
            refs = [
                r
                for r in plant.channels.values()
                if r.site.id == site
                and r.channel.kind is ChannelKind.COUNTER
                and r.channel.utility is utility
                and r.meter.parent is None
            ]
            if not refs:
                continue
            if bad := sorted({r.channel.unit for r in refs} - set(scale)):
                raise HTTPException(422, f"{utility} metered in {bad}: not convertible")
            key = FactorKey(activity=activity, region=region)
            ids = [r.key for r in refs]
            tco2: float | None
            reason: str | None = None
            try:
                segs = table.segments(key, a, b)
                edges = [a] + [s.start_ns - s.start_ns % bucket_ns for s in segs[1:]] + [b]
                parts = [await quantity(refs, scale, lo, hi, tz) for lo, hi in pairwise(edges)]
                got = emissions(table, key, a, b, parts)
                total, tco2, uses = got.quantity, got.emissions_tco2, got.uses
            except MissingFactorError as e:
                total, tco2, uses, reason = await quantity(refs, scale, a, b, tz), None, (), str(e)
            scopes.append(
                ScopeOut(
                    scope=scope,
                    activity=activity,
                    basis=Basis.LOCATION,
                    channels=ids,
                    quantity=total,
                    quantity_unit=activity.unit,
                    emissions_tco2=tco2,
                    factors=[
                        FactorUseOut(
                            ref=u.segment.factor.ref,
                            value=u.segment.factor.value,
                            unit=u.segment.factor.unit,
                            source=u.segment.factor.source,
                            start=iso(u.segment.start_ns, tz),
                            end=iso(u.segment.end_ns, tz),
                            quantity=u.quantity,
                            emissions_tco2=u.emissions_tco2,
                        )
                        for u in uses
                    ],
                    reason=reason,
                )
            )
        return EmissionsOut(
            site=site, region=region, start=iso(a, tz), end=iso(b, tz), scopes=scopes
        )

    return router

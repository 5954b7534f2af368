"""The API process: live values, per-minute series and period totals over FastAPI.

Reads the store only; wrong parameters get a 422 that says what is wrong.
"""

from __future__ import annotations

import math
import time
import zoneinfo
from datetime import datetime
from typing import Annotated

from fastapi import FastAPI, HTTPException, Query, Response
from pydantic import BaseModel

from compute.calendar import Period
from compute.model import NS_PER_S, Quality
from compute.plant import ChannelKind, ChannelRef, Plant
from services.api_indicators import indicator_routes
from services.api_time import iso, time_range
from services.metrics import Registry
from services.metrics_http import metrics_response
from services.series import idle_over, period_totals, series_points
from services.store import Latest, Store


class LiveValue(BaseModel):
    channel_id: str
    site: str
    area: str
    meter: str
    utility: str
    kind: str
    unit: str
    value: float | None
    quality: str
    ts: datetime | None
    age_s: float | None


class SeriesPoint(BaseModel):
    start: datetime
    end: datetime
    samples: int
    samples_good: int
    samples_expected: int
    value: float | None  # consumption for counters, mean of good samples for gauges
    estimated: float  # the part of a counter's consumption spread over a gap in its readings
    min: float | None
    max: float | None
    last: float | None


class IdleOut(BaseModel):
    channel_id: str
    line_channel_id: str
    unit: str
    start: datetime
    end: datetime
    idle_energy: float
    idle_buckets: int
    missing_buckets: int
    unknown_buckets: int


class ChannelTotalOut(BaseModel):
    channel_id: str
    meter: str
    area: str
    utility: str
    unit: str
    total: float
    estimated: float
    samples: int
    samples_good: int
    samples_expected: int
    coverage: float


class UtilityTotal(BaseModel):
    utility: str
    unit: str
    total: float
    estimated: float
    channels: list[str]
    samples_good: int
    samples_expected: int
    coverage: float


class Totals(BaseModel):
    site: str
    timezone: str
    start: datetime
    end: datetime
    utilities: list[UtilityTotal]
    channels: list[ChannelTotalOut]


def _quality(latest: Latest | None, age_s: float, ref: ChannelRef, stale_after: int) -> str:
    """The reading's quality, or "stale" when no new one came within `stale_after` intervals."""
    if latest is None:
        return "missing"
    if age_s > stale_after * ref.meter.interval_s:
        return Quality.STALE.name.lower()
    return Quality(latest.quality).name.lower()


def create_app(
    plant: Plant,
    store: Store,
    *,
    bucket_s: int = 60,
    stale_after_intervals: int = 5,
    registry: Registry | None = None,
) -> FastAPI:
    """Build the API over a plant model and a store; with a registry, it is served at /metrics."""
    app = FastAPI(
        title="plantpulse",
        version="0.1.0",
        description="Plant energy, water and cleanroom telemetry",
    )
    bucket_ns = bucket_s * NS_PER_S
    zones = {s.id: zoneinfo.ZoneInfo(s.timezone) for s in plant.sites}

    def channel(channel_id: str) -> ChannelRef:
        ref = plant.channels.get(channel_id)
        if ref is None:
            raise HTTPException(404, f"unknown channel {channel_id!r}")
        return ref

    app.include_router(indicator_routes(plant, store, zones, bucket_ns))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    if registry is not None:

        @app.get("/metrics", include_in_schema=False)
        async def metrics() -> Response:
            return metrics_response(registry)

    @app.get("/v1/live", response_model=list[LiveValue])
    async def live(site: str | None = None) -> list[LiveValue]:
        """Latest value, quality and age of every channel; quality is "stale" when nothing new
        came within a few poll intervals, "missing" when nothing came at all."""
        if site is not None and site not in zones:
            raise HTTPException(422, f"unknown site {site!r}; known: {sorted(zones)}")
        latest = {x.channel_id: x for x in await store.latest()}
        now_ns = time.time_ns()
        out = []
        for key, ref in plant.channels.items():
            if site is not None and ref.site.id != site:
                continue
            x = latest.get(key)
            age_s = (now_ns - x.ts_ns) / NS_PER_S if x is not None else math.inf
            out.append(
                LiveValue(
                    channel_id=key,
                    site=ref.site.id,
                    area=ref.area.id,
                    meter=ref.meter.id,
                    utility=ref.channel.utility,
                    kind=ref.channel.kind,
                    unit=ref.channel.unit,
                    value=None if x is None or math.isnan(x.value) else x.value,
                    quality=_quality(x, age_s, ref, stale_after_intervals),
                    ts=None if x is None else iso(x.ts_ns, zones[ref.site.id]),
                    age_s=None if x is None else round(age_s, 3),
                )
            )
        return out

    @app.get("/v1/channels/{channel_id}/series", response_model=list[SeriesPoint])
    async def series(
        channel_id: str,
        start: datetime,
        end: datetime,
        period: Annotated[
            Period | None,
            Query(description="roll the base buckets up into calendar periods of the site"),
        ] = None,
    ) -> list[SeriesPoint]:
        """Values of one channel over [start, end) per base bucket, or per calendar period in
        the site's timezone (a DST day has 23 or 25 hours); naive times are site-local."""
        ref = channel(channel_id)
        tz = zones[ref.site.id]
        a, b = time_range(start, end, tz, bucket_ns)
        buckets = await store.series(channel_id, a, b)
        counter = ref.channel.kind is ChannelKind.COUNTER
        interval_ns = ref.meter.interval_s * NS_PER_S
        rolled = series_points(buckets, bucket_ns, tz.key, period)
        return [
            SeriesPoint(
                start=iso(x.start_ns, tz),
                end=iso(x.end_ns, tz),
                samples=x.n,
                samples_good=x.n_good,
                samples_expected=int((x.end_ns - x.start_ns) / interval_ns),
                value=x.sum if counter else (x.sum / x.n_good if x.n_good else None),
                estimated=x.estimated,
                min=x.min,
                max=x.max,
                last=x.last,
            )
            for x in rolled
        ]

    @app.get("/v1/channels/{channel_id}/idle", response_model=IdleOut)
    async def idle(channel_id: str, start: datetime, end: datetime) -> IdleOut:
        """Consumption over [start, end) while the channel's production line (`idle_with`)
        stood still: its counter had good readings and did not advance."""
        ref = channel(channel_id)
        line = ref.channel.idle_with
        if line is None:
            raise HTTPException(
                422, f"channel {channel_id!r} has no idle_with production counter in the config"
            )
        tz = zones[ref.site.id]
        a, b = time_range(start, end, tz, bucket_ns)
        got = idle_over(
            await store.series(channel_id, a, b), await store.series(line, a, b), a, b, bucket_ns
        )
        return IdleOut(
            channel_id=channel_id,
            line_channel_id=line,
            unit=ref.channel.unit,
            start=iso(a, tz),
            end=iso(b, tz),
            idle_energy=got.energy,
            idle_buckets=got.idle_buckets,
            missing_buckets=got.missing_buckets,
            unknown_buckets=got.unknown_buckets,
        )

    @app.get("/v1/sites/{site}/totals", response_model=Totals)
    async def totals(
        site: str,
        start: Annotated[datetime, Query(description="inclusive; ISO 8601, naive = site time")],
        end: Annotated[datetime, Query(description="exclusive; ISO 8601, naive = site time")],
    ) -> Totals:
        """Consumption per utility (meters without a parent) and per counter over [start, end)."""
        if site not in zones:
            raise HTTPException(404, f"unknown site {site!r}; known: {sorted(zones)}")
        tz = zones[site]
        a, b = time_range(start, end, tz, bucket_ns)
        refs = [
            r
            for r in plant.channels.values()
            if r.site.id == site and r.channel.kind is ChannelKind.COUNTER
        ]
        sums = await period_totals(store, [r.key for r in refs], a, b, tz.key)
        channels = []
        for r in refs:
            t = sums.get(r.key)
            expected = int((b - a) / (r.meter.interval_s * NS_PER_S))
            good = t.n_good if t else 0
            channels.append(
                ChannelTotalOut(
                    channel_id=r.key,
                    meter=r.meter.id,
                    area=r.area.id,
                    utility=r.channel.utility,
                    unit=r.channel.unit,
                    total=t.sum if t else 0.0,
                    estimated=t.estimated if t else 0.0,
                    samples=t.n if t else 0,
                    samples_good=good,
                    samples_expected=expected,
                    coverage=min(1.0, good / expected),
                )
            )
        return Totals(
            site=site,
            timezone=tz.key,
            start=iso(a, tz),
            end=iso(b, tz),
            utilities=_by_utility(channels, {r.key: r for r in refs}),
            channels=channels,
        )

    return app


def _by_utility(channels: list[ChannelTotalOut], refs: dict[str, ChannelRef]) -> list[UtilityTotal]:
    groups: dict[tuple[str, str], list[ChannelTotalOut]] = {}
    for c in channels:
        if refs[c.channel_id].meter.parent is None:
            groups.setdefault((c.utility, c.unit), []).append(c)
    out = []
    for (utility, unit), cs in groups.items():
        good = sum(c.samples_good for c in cs)
        expected = sum(c.samples_expected for c in cs)
        out.append(
            UtilityTotal(
                utility=utility,
                unit=unit,
                total=sum(c.total for c in cs),
                estimated=sum(c.estimated for c in cs),
                channels=[c.channel_id for c in cs],
                samples_good=good,
                samples_expected=expected,
                coverage=min(1.0, good / expected),
            )
        )
    return out

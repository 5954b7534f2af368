"""The API process: live values, per-minute series and period totals over FastAPI.

Reads the store only; wrong parameters get a 422 that says what is wrong.
"""

from __future__ import annotations

import time
import zoneinfo
from datetime import datetime
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from compute.calendar import Period
from compute.model import NS_PER_S
from compute.plant import ChannelKind, ChannelRef, Plant
from services.access import Permission
from services.api_alert_rules import alert_rule_routes
from services.api_alerts import alert_routes
from services.api_auth import CACHE_TTL_S, Caller, TokenAuth, allowed_sites, install_auth, require
from services.api_dashboard import dashboard_routes
from services.api_data import data_routes
from services.api_factors import factor_routes
from services.api_indicators import indicator_routes
from services.api_metrics import install_request_metrics
from services.api_reports import report_routes
from services.api_stream import stream_routes
from services.api_time import iso, time_range
from services.api_totals import totals_routes
from services.live_hub import LiveHub
from services.live_values import LiveValues
from services.metrics import Registry
from services.metrics_http import metrics_response
from services.publisher import PublishingBus
from services.readiness import readiness
from services.series import idle_over, series_points
from services.store import Store


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


def create_app(
    plant: Plant,
    store: Store,
    *,
    bucket_s: int = 60,
    stale_after_intervals: int = 5,
    registry: Registry | None = None,
    token_cache_s: float = CACHE_TTL_S,
    hub: LiveHub | None = None,
    bus: PublishingBus | None = None,
    readings_topic: str = "plantpulse.readings",
) -> FastAPI:
    """Build the API over a plant model and a store; with a registry, it is served at /metrics.
    Every /v1 route needs an API token (services.api_auth); /healthz, /readyz and /metrics do
    not. With a bus, imported and manual readings and meter replacements go to the readings topic;
    /readyz then checks that the bus is reachable too."""
    app = FastAPI(
        title="plantpulse",
        version="0.1.0",
        description="Plant energy, water and cleanroom telemetry",
    )
    install_auth(app, TokenAuth(store, plant, ttl_s=token_cache_s))
    bucket_ns = bucket_s * NS_PER_S
    zones = {s.id: zoneinfo.ZoneInfo(s.timezone) for s in plant.sites}
    data = [Depends(require(Permission.DATA))]
    live_values = LiveValues(plant, zones, stale_after_intervals)

    def channel(channel_id: str) -> ChannelRef:
        ref = plant.channels.get(channel_id)
        if ref is None:
            raise HTTPException(404, f"unknown channel {channel_id!r}")
        return ref

    app.include_router(indicator_routes(plant, store, zones, bucket_ns))
    app.include_router(totals_routes(plant, store, zones, bucket_ns))
    app.include_router(report_routes(plant, store, zones, bucket_ns))
    live_sites = allowed_sites(Permission.LIVE, token_in_query=True)
    app.include_router(
        stream_routes(plant, store, hub or LiveHub(), bucket_s=bucket_s, allowed_sites=live_sites)
    )
    app.include_router(dashboard_routes(plant))
    app.include_router(data_routes(plant, store, bus, readings_topic))
    app.include_router(factor_routes(plant, store, bucket_ns))
    app.include_router(alert_routes(plant, store, zones))
    app.include_router(alert_rule_routes(plant, store, zones, bucket_ns))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", responses={503: {"description": "a dependency failed; the body says why"}})
    async def readyz() -> JSONResponse:
        """200 when the store answers a trivial query and the bus (if any) is reachable, each
        within a short timeout; else 503 naming the dependency that failed and why."""
        checks = await readiness(store, bus)
        body = {
            "status": "ready" if all(c.ok for c in checks) else "not ready",
            "checks": {c.dependency: c.reason or "ok" for c in checks},
            "failed": [c.dependency for c in checks if not c.ok],
        }
        return JSONResponse(body, status_code=503 if body["failed"] else 200)

    if registry is not None:
        install_request_metrics(app, registry)

        @app.get("/metrics", include_in_schema=False)
        async def metrics() -> Response:
            return metrics_response(registry)

    @app.get("/v1/live", response_model=list[LiveValue])
    async def live(
        caller: Annotated[Caller, Depends(require(Permission.LIVE))], site: str | None = None
    ) -> Response:
        """Latest value, quality and age of every channel of the token's sites; quality is
        "stale" when nothing new came within a few poll intervals, "missing" when nothing came
        at all."""
        if site is not None and site not in zones:
            raise HTTPException(422, f"unknown site {site!r}; known: {sorted(zones)}")
        # Rendered in one pass, not through the response model: this is the hot read path.
        body = live_values.render(
            await store.latest(), time.time_ns(), site=site, covers=caller.covers
        )
        return Response(body, media_type="application/json")

    @app.get(
        "/v1/channels/{channel_id}/series", response_model=list[SeriesPoint], dependencies=data
    )
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

    @app.get("/v1/channels/{channel_id}/idle", response_model=IdleOut, dependencies=data)
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

    return app

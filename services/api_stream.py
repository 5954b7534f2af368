"""Live streams of the API: GET /v1/stream (SSE) and /v1/ws (WebSocket), filtered by site, area,
utility and channel, and the site overview the dashboard starts from. Filters are checked before
a stream starts; a stream reads the live hub, never the store."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, WebSocket, WebSocketDisconnect
from fastapi.params import Depends as DependsParam
from fastapi.responses import JSONResponse, StreamingResponse

from compute.model import NS_PER_S
from compute.plant import Plant, Utility
from services.live_hub import Client, EventType, LiveError, LiveHub, Scope, drain
from services.live_payloads import cleanrooms
from services.live_site import site_figures
from services.store import Store

Values = Annotated[
    list[str] | None,
    Query(description="repeat the parameter or separate values by commas; any of them matches"),
]
KeepAlive = Annotated[
    float, Query(ge=1, le=120, description="seconds between keepalives when nothing changes")
]


class FilterError(ValueError):
    """A stream filter names something the plant does not have."""


def _split(values: Sequence[str] | None) -> list[str]:
    return [v.strip() for x in values or () for v in x.split(",") if v.strip()]


def resolve_scope(
    plant: Plant,
    *,
    site: Sequence[str] | None = None,
    area: Sequence[str] | None = None,
    utility: Sequence[str] | None = None,
    channel: Sequence[str] | None = None,
    types: Sequence[str] | None = None,
    allowed_sites: frozenset[str] | None = None,
) -> Scope:
    """The channels and sites a filter selects; FilterError says which value is unknown.

    Dimensions combine with AND, the values of one dimension with OR. allowed_sites (None: all)
    is the caller's site scope: naming another site is an error, no site means all allowed ones.
    """
    known_sites = [s.id for s in plant.sites]
    sites = _split(site)
    if unknown := [s for s in sites if s not in known_sites]:
        raise FilterError(f"unknown site {unknown[0]!r}; known: {sorted(known_sites)}")
    chosen_sites = set(sites or known_sites)
    if allowed_sites is not None:
        if denied := [s for s in sites if s not in allowed_sites]:
            raise PermissionError(f"this token does not cover site {denied[0]!r}")
        chosen_sites &= allowed_sites
    areas = _split(area)
    site_areas = {a.id for s in plant.sites if s.id in chosen_sites for a in s.areas}
    if unknown := [a for a in areas if a not in site_areas]:
        raise FilterError(f"unknown area {unknown[0]!r}; known: {sorted(site_areas)}")
    utilities = _split(utility)
    if unknown := [u for u in utilities if u not in {x.value for x in Utility}]:
        raise FilterError(f"unknown utility {unknown[0]!r}; known: {[u.value for u in Utility]}")
    channels = _split(channel)
    if unknown := [c for c in channels if c not in plant.channels]:
        raise FilterError(f"unknown channel {unknown[0]!r}; see GET /v1/live for the channels")
    if off := [c for c in channels if plant.channels[c].site.id not in chosen_sites]:
        raise FilterError(f"channel {off[0]!r} is not in the selected sites")
    kinds = _split(types)
    if unknown := [t for t in kinds if t not in {e.value for e in EventType}]:
        raise FilterError(
            f"unknown event type {unknown[0]!r}; known: {[e.value for e in EventType]}"
        )
    selected = frozenset(
        k
        for k, r in plant.channels.items()
        if r.site.id in chosen_sites
        and (not areas or r.area.id in areas)
        and (not utilities or r.channel.utility.value in utilities)
        and (not channels or k in channels)
    )
    if (areas or utilities or channels) and not selected:
        raise FilterError("the filter selects no channel")
    return Scope(
        channels=selected,
        sites=frozenset(chosen_sites),
        areas=frozenset(areas) if areas else None,
        types=frozenset(EventType(t) for t in kinds) if kinds else frozenset(EventType),
    )


def _all_sites() -> frozenset[str] | None:
    return None


def stream_routes(
    plant: Plant,
    store: Store,
    hub: LiveHub,
    *,
    bucket_s: int = 60,
    allowed_sites: Callable[..., Any] = _all_sites,
    dependencies: Sequence[DependsParam] = (),
    ws_dependencies: Sequence[DependsParam] = (),
) -> APIRouter:
    """The stream routes over a hub. `allowed_sites` is a dependency that authenticates the
    caller and returns the sites it may see (None: all); `dependencies` guard the HTTP routes
    and `ws_dependencies` the WebSocket one (a dependency there gets a WebSocket, no Request)."""
    router = APIRouter(tags=["live"])
    bucket_ns = bucket_s * NS_PER_S
    # A default, not Annotated: the annotations are strings, resolved without this scope.
    caller_sites = Depends(allowed_sites)

    def scope_or_http_error(scoped: frozenset[str] | None, **filters: list[str] | None) -> Scope:
        try:
            return resolve_scope(plant, allowed_sites=scoped, **filters)
        except FilterError as e:
            raise HTTPException(422, str(e)) from e
        except PermissionError as e:
            raise HTTPException(403, str(e)) from e

    @router.get(
        "/v1/stream",
        dependencies=list(dependencies),
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def stream(
        scoped: frozenset[str] | None = caller_sites,
        site: Values = None,
        area: Values = None,
        utility: Values = None,
        channel: Values = None,
        types: Annotated[
            list[str] | None, Query(description="event types: channel, site, alert")
        ] = None,
        keepalive_s: KeepAlive = 15.0,
    ) -> StreamingResponse:
        """Server-Sent Events: first the current state of every selected key, then each change.
        Events are `channel` (latest value, quality, age, rolling figures, cleanroom status),
        `site` (power, today and yesterday, gas and water, rolling windows) and `alert`; a
        `heartbeat` event and a keepalive comment come every keepalive_s. A slow client gets
        the newest state of each key, never a backlog."""
        scope = scope_or_http_error(
            scoped, site=site, area=area, utility=utility, channel=channel, types=types
        )
        if reason := hub.refusal():
            raise HTTPException(503, reason)
        return StreamingResponse(
            _sse(hub, scope, keepalive_s),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @router.websocket("/v1/ws", dependencies=list(ws_dependencies))
    async def ws(
        websocket: WebSocket,
        scoped: frozenset[str] | None = caller_sites,
        site: Values = None,
        area: Values = None,
        utility: Values = None,
        channel: Values = None,
        types: Values = None,
        keepalive_s: float = 15.0,  # checked below: a query error here could only be a 403
    ) -> None:
        """The same events as /v1/stream, one JSON text message each:
        {"event": type, "id": n, "data": {...}}; a bad filter is refused before the upgrade."""
        try:
            scope = resolve_scope(
                plant,
                allowed_sites=scoped,
                site=site,
                area=area,
                utility=utility,
                channel=channel,
                types=types,
            )
        except (FilterError, PermissionError) as e:
            status = 403 if isinstance(e, PermissionError) else 422
            await _deny(websocket, status, str(e))
            return
        if not 1 <= keepalive_s <= 120:
            await _deny(websocket, 422, "keepalive_s must be between 1 and 120 s")
            return
        await _ws(websocket, hub, scope, keepalive_s)

    @router.get("/v1/sites/{site}/overview", dependencies=list(dependencies))
    async def overview(
        site: str, scoped: frozenset[str] | None = caller_sites
    ) -> dict[str, object]:
        """What a site's dashboard starts from: power (kW over the last base bucket), today's
        energy, gas and water against yesterday's (to the same local time, and in full), its
        cleanrooms with their limits, and the active alerts."""
        found = plant.site(site)
        if found is None:
            raise HTTPException(404, f"unknown site {site!r}; known: {[s.id for s in plant.sites]}")
        if scoped is not None and site not in scoped:
            raise HTTPException(403, f"this token does not cover site {site!r}")
        figures = await site_figures(plant, store, site, time.time_ns(), bucket_ns)
        return {
            "site": site,
            "name": found.name,
            "figures": figures,
            "cleanrooms": cleanrooms(plant, site),
            "alerts": [json.loads(e.json) for e in hub.active_alerts() if e.site == site],
        }

    @router.get("/v1/dashboard/sites", dependencies=list(dependencies))
    async def dashboard_sites(scoped: frozenset[str] | None = caller_sites) -> list[dict[str, str]]:
        """The sites the caller may see, for the dashboard's site picker."""
        return [
            {"id": s.id, "name": s.name, "timezone": s.timezone}
            for s in plant.sites
            if scoped is None or s.id in scoped
        ]

    return router


async def _sse(hub: LiveHub, scope: Scope, keepalive_s: float) -> AsyncIterator[bytes]:
    """The event stream. The client's slot is taken here, inside the generator, so that it is
    freed however the stream ends: the client went away (the response is cancelled), the hub
    closed (shutdown) or the generator is collected without having run."""
    try:
        with hub.client(scope) as client:
            yield b"retry: 3000\n\n"
            async for batch in drain(client, keepalive_s):
                yield b"".join(e.sse for e in batch) if batch else _heartbeat_sse()
    except LiveError as e:
        yield f"event: error\ndata: {json.dumps({'reason': str(e)})}\n\n".encode()


def _heartbeat_sse() -> bytes:
    return f': keepalive\n\nevent: heartbeat\ndata: {{"now_ns":{time.time_ns()}}}\n\n'.encode()


async def _deny(websocket: WebSocket, status: int, reason: str) -> None:
    """Refuse the upgrade with an HTTP status and a JSON reason, or close with 1008 where the
    server cannot send an HTTP response to a WebSocket handshake."""
    try:
        await websocket.send_denial_response(JSONResponse({"detail": reason}, status_code=status))
    except RuntimeError:
        await websocket.close(code=1008, reason=reason[:120])


async def _ws(websocket: WebSocket, hub: LiveHub, scope: Scope, keepalive_s: float) -> None:
    if reason := hub.refusal():
        await _deny(websocket, 503, reason)
        return
    await websocket.accept()
    try:
        with hub.client(scope) as client:
            async with asyncio.TaskGroup() as tg:
                sender = tg.create_task(_ws_send(websocket, client, keepalive_s))
                await _ws_receive_until_closed(websocket)
                sender.cancel()
    except* (WebSocketDisconnect, OSError, LiveError):
        pass  # the client went away, or the hub closed
    if hub.closed:
        with contextlib.suppress(RuntimeError, OSError):
            await websocket.close(code=1012, reason="server restart")


async def _ws_send(websocket: WebSocket, client: Client, keepalive_s: float) -> None:
    async for batch in drain(client, keepalive_s):
        if not batch:
            await websocket.send_text(
                f'{{"event":"heartbeat","data":{{"now_ns":{time.time_ns()}}}}}'
            )
        for e in batch:
            await websocket.send_text(e.ws)
    # the hub closed: end the receive side too
    raise WebSocketDisconnect(code=1012)


async def _ws_receive_until_closed(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends until it disconnects."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return

"""Serving a metrics Registry over HTTP in the Prometheus text format, for a scraper."""

from __future__ import annotations

from collections.abc import Callable

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from services.metrics import Registry

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def metrics_response(registry: Registry) -> Response:
    return PlainTextResponse(registry.render(), media_type=CONTENT_TYPE)


NotReady = Callable[[], str | None]  # why the process is not ready, or None when it is


def metrics_app(registry: Registry, ready: NotReady | None = None) -> Starlette:
    """GET /metrics (Prometheus text) and GET /healthz, for a process without an API of its own;
    with `ready`, GET /readyz too: 200, or 503 with the reason it gives."""

    async def metrics(_: Request) -> Response:
        return metrics_response(registry)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    routes = [Route("/metrics", metrics), Route("/healthz", healthz)]
    if ready is not None:
        not_ready = ready

        async def readyz(_: Request) -> Response:
            if (reason := not_ready()) is not None:
                return JSONResponse({"status": "not ready", "reason": reason}, status_code=503)
            return JSONResponse({"status": "ready"})

        routes.append(Route("/readyz", readyz))
    return Starlette(routes=routes)


def metrics_server(
    registry: Registry, host: str, port: int, ready: NotReady | None = None
) -> uvicorn.Server:
    config = uvicorn.Config(
        metrics_app(registry, ready),
        host=host,
        port=port,
        log_level="warning",
        log_config=None,  # to the root handler: PT_LOG_FORMAT applies
        lifespan="off",
    )
    return uvicorn.Server(config)

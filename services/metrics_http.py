"""Serving a metrics Registry over HTTP in the Prometheus text format, for a scraper."""

from __future__ import annotations

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from services.metrics import Registry

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def metrics_response(registry: Registry) -> Response:
    return PlainTextResponse(registry.render(), media_type=CONTENT_TYPE)


def metrics_app(registry: Registry) -> Starlette:
    """GET /metrics (Prometheus text) and GET /healthz, for a process without an API of its own."""

    async def metrics(_: Request) -> Response:
        return metrics_response(registry)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/metrics", metrics), Route("/healthz", healthz)])


def metrics_server(registry: Registry, host: str, port: int) -> uvicorn.Server:
    config = uvicorn.Config(
        metrics_app(registry), host=host, port=port, log_level="warning", lifespan="off"
    )
    return uvicorn.Server(config)

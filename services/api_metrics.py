"""Request metrics of the API for /metrics: requests by route and status, and the time to the
response's start. Plain ASGI, so streams (SSE, WebSocket) pass through untouched; labels use
the route's path template, so they stay few whatever the ids in the URLs."""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.metrics import Counter, Histogram, Registry


class _RequestMetrics:
    def __init__(self, app: ASGIApp, requests: Counter, latency: Histogram) -> None:
        self.app, self.requests, self.latency = app, requests, latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started_s = time.perf_counter()
        status = 500  # what the server answers when the app raises before starting a response

        async def start(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                self.latency.observe(time.perf_counter() - started_s)
            await send(message)

        try:
            await self.app(scope, receive, start)
        finally:
            route: Any = scope.get("route")  # set by the router on this scope when one matched
            template = getattr(route, "path", None) or "unmatched"
            self.requests.inc(method=scope["method"], route=template, status=str(status))


def install_request_metrics(app: FastAPI, registry: Registry) -> None:
    requests = registry.counter(
        "plantpulse_api_requests_total",
        "API requests answered, by method, route template and status code",
        ("method", "route", "status"),
    )
    latency = registry.histogram(
        "plantpulse_api_request_seconds", "time from a request to its response's start"
    )
    app.add_middleware(_RequestMetrics, requests=requests, latency=latency)

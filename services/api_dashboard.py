"""The dashboard's pages, /dashboard (site picker) and /dashboard/{site}, and their static files
shipped in the package (services/dashboard/), so it works on an air-gapped network. The pages
carry no data: their script reads /v1/sites/{site}/overview and /v1/stream."""

from __future__ import annotations

import html
from importlib import resources

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, Response

from compute.plant import Plant

_STATIC = {
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
}
# The pages hold no secret, but the token travels in their URL: keep it out of Referer headers.
_HEADERS = {
    "Cache-Control": "no-cache",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}


def _read(name: str) -> str:
    return resources.files("services").joinpath("dashboard", name).read_text(encoding="utf-8")


def _page(name: str) -> str:
    """A page with the token prompt both pages share."""
    return _read(name).replace("  {{token-dialog}}\n", _read("token-dialog.html"))


def dashboard_routes(plant: Plant) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    sites = {s.id for s in plant.sites}

    @router.get("/dashboard", response_class=HTMLResponse)
    async def picker() -> HTMLResponse:
        return HTMLResponse(_page("index.html"), headers=_HEADERS)

    @router.get("/dashboard/static/{name}")
    async def static(name: str) -> Response:
        media_type = _STATIC.get(name)
        if media_type is None:
            raise HTTPException(404, f"no dashboard file {name!r}")
        return Response(_read(name), media_type=media_type, headers=_HEADERS)

    @router.get("/dashboard/{site}", response_class=HTMLResponse)
    async def site_page(site: str) -> HTMLResponse:
        if site not in sites:
            raise HTTPException(404, f"unknown site {site!r}; known: {sorted(sites)}")
        page = _page("site.html").replace("{{site}}", html.escape(site, quote=True))
        return HTMLResponse(page, headers=_HEADERS)

    return router

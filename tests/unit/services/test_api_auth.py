"""Access control of the API: the role × site × endpoint matrix over every /v1 route of the app
(a route without `require` fails here), 401 and 403 with their reasons, revoked and expired
tokens, the token cache's bound on revocation, and tokens in the query for WebSockets.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import pytest
import uvicorn
import websockets
from fastapi import Depends, FastAPI, WebSocket
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

from compute.model import NS_PER_S
from compute.plant import Plant, parse_plant
from services.access import ALL_SITES, Permission, Role, issue, token_id
from services.api import create_app
from services.api_auth import AccessDenied, Caller, TokenAuth, install_auth, require
from services.metrics import Registry
from services.store.sqlite import SqliteStore
from tests.harness import free_port
from tests.tokens import bearer, token_for

NORTH, SOUTH = "north", "south"
# The policy of the routes that exist; a new route must declare `require`, and belongs here.
PINNED = {
    ("GET", "/v1/live"): Permission.LIVE,
    ("GET", "/v1/channels/{channel_id}/series"): Permission.DATA,
    ("GET", "/v1/channels/{channel_id}/idle"): Permission.DATA,
    ("GET", "/v1/sites/{site}/totals"): Permission.DATA,
    ("GET", "/v1/sites/{site}/period-values"): Permission.DATA,
    ("POST", "/v1/sites/{site}/period-values"): Permission.CONFIGURE,
    ("GET", "/v1/sites/{site}/intensity"): Permission.DATA,
    ("GET", "/v1/alerts"): Permission.LIVE,
    ("GET", "/v1/alerts/{alert_id}"): Permission.LIVE,
    ("POST", "/v1/alerts/{alert_id}/ack"): Permission.ALERTS,
    ("POST", "/v1/alerts/{alert_id}/shelve"): Permission.ALERTS,
    ("POST", "/v1/alerts/{alert_id}/unshelve"): Permission.ALERTS,
    ("GET", "/v1/alert-rules"): Permission.CONFIGURE,
    ("PUT", "/v1/alert-rules/{rule_id}"): Permission.CONFIGURE,
    ("DELETE", "/v1/alert-rules/{rule_id}"): Permission.CONFIGURE,
    ("POST", "/v1/alert-rules/dry-run"): Permission.CONFIGURE,
}


def two_sites() -> Plant:
    def site(sid: str) -> dict[str, Any]:
        return {
            "id": sid,
            "name": sid,
            "timezone": "UTC",
            "areas": [{"id": "u", "kind": "utility"}],
        }

    def meter(sid: str) -> dict[str, Any]:
        energy = {"id": "energy", "unit": "kWh", "kind": "counter", "utility": "electricity"}
        return {
            "id": f"{sid}-m",
            "site": sid,
            "area": "u",
            "protocol": "opcua",
            "endpoint": "opc.tcp://h:4840",
            "channels": [{**energy, "node_id": f"ns=2;s={sid}"}],
        }

    return parse_plant(
        {"sites": [site(NORTH), site(SOUTH)], "meters": [meter(NORTH), meter(SOUTH)]}
    )


def _v1_routes() -> Iterator[tuple[str, str, bool, Dependant]]:
    """(method, path, is WebSocket, dependant) of every /v1 route of the app, included routers'
    too, each with the dependencies it gets from the routers it is included through."""
    never_opened = SqliteStore(Path("/nonexistent/plantpulse.sqlite3"))
    for r in iter_route_contexts(create_app(two_sites(), never_opened).routes):
        if not str(r.path).startswith("/v1/"):
            continue
        if isinstance(r.original_route, APIWebSocketRoute):
            yield "WS", str(r.path), True, r.dependant
        elif isinstance(r.original_route, APIRoute):
            for method in sorted(r.methods or ()):
                yield method, str(r.path), False, r.dependant


ROUTES = list(_v1_routes())
ROUTE_IDS = [f"{m} {p}" for m, p, _, _ in ROUTES]


def _permissions(d: Dependant) -> set[Permission]:
    """The permissions `require` dependencies anywhere under a route ask for."""
    found = set()
    for sub in d.dependencies:
        if (p := getattr(sub.call, "permission", None)) is not None:
            found.add(p)
        found |= _permissions(sub)
    return found


@dataclass
class Served:
    base: str
    store: SqliteStore
    tokens: dict[tuple[Role, str], str]  # (role, "north" or "all") -> raw token


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    """The app on a real server (streaming routes answer with their headers first)."""
    async with SqliteStore(tmp_path / "s.sqlite3") as store:
        tokens = {}
        for role in Role:
            tokens[role, NORTH] = await token_for(store, role, (NORTH,))
            tokens[role, "all"] = await token_for(store, role, (ALL_SITES,))
        app = create_app(two_sites(), store, token_cache_s=0, registry=Registry())
        port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        for _ in range(500):
            if server.started:
                break
            await asyncio.sleep(0.02)
        try:
            yield Served(base=f"127.0.0.1:{port}", store=store, tokens=tokens)
        finally:
            server.should_exit = True
            await task


def _url(path: str, site: str) -> str:
    """The route's path naming `site`: its site, channel or meter; else ?site=."""
    if not re.search(r"\{(site|channel_id|meter_id)\}", path):  # e.g. /v1/alerts/{alert_id}
        return re.sub(r"\{[^}]+\}", "x", path) + f"?site={site}"
    filled = path.replace("{site}", site).replace("{channel_id}", f"{site}-m.energy")
    return re.sub(r"\{[^}]+\}", "x", filled.replace("{meter_id}", f"{site}-m"))


async def _call(base: str, method: str, url: str, headers: dict[str, str]) -> tuple[int, str]:
    """Status and body (empty for an event stream, which is left at its headers)."""
    if method == "WS":
        try:
            async with websockets.connect(f"ws://{base}{url}", additional_headers=headers):
                return 101, ""
        except websockets.InvalidStatus as e:
            return e.response.status_code, e.response.body.decode() if e.response.body else ""
    body = {} if method in ("POST", "PUT", "PATCH") else None
    async with (
        httpx.AsyncClient(base_url=f"http://{base}", timeout=10) as client,
        client.stream(method, url, headers=headers, json=body) as r,
    ):
        streaming = r.headers.get("content-type", "").startswith("text/event-stream")
        return r.status_code, "" if streaming else (await r.aread()).decode()


@pytest.mark.parametrize(
    ("method", "path", "is_ws", "dependant"),
    ROUTES,
    ids=ROUTE_IDS,
)
async def test_every_v1_route_enforces_role_and_site_scope(
    served: Served, method: str, path: str, is_ws: bool, dependant: Dependant
) -> None:
    perms = _permissions(dependant)
    assert len(perms) == 1, f"{method} {path} has no access control: add Depends(require(...))"
    (perm,) = perms
    if (method, path) in PINNED:
        assert perm is PINNED[method, path], f"{method} {path} needs {PINNED[method, path]}"
    wrong: list[str] = []
    for role in Role:
        for scope in (NORTH, "all"):
            for site in (NORTH, SOUTH):
                url = _url(path, site)
                code, body = await _call(
                    served.base, method, url, bearer(served.tokens[role, scope])
                )
                if not role.can(perm):
                    ok = code == 403 and ("needs the role" in body or is_ws)
                elif scope == NORTH and site == SOUTH:
                    ok = code == 403 and ("not in this token's sites" in body or is_ws)
                else:
                    ok = code not in (401, 403)
                if not ok:
                    wrong.append(f"{role} token for {scope}, {method} {url}: {code} {body[:200]}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(("method", "path", "is_ws"), [r[:3] for r in ROUTES], ids=ROUTE_IDS)
async def test_every_v1_route_refuses_missing_wrong_revoked_and_expired_tokens(
    served: Served, method: str, path: str, is_ws: bool
) -> None:
    store = served.store
    revoked = await token_for(store)
    await store.revoke_token(str(token_id(revoked)), at_ns=2, actor="t", reason="lost")
    expired = await token_for(store, expires_at_ns=2 * NS_PER_S)  # 1970
    forged = served.tokens[Role.ADMIN, "all"][:-4] + "AAAA"
    cases = [
        ({}, "missing API token"),
        ({"Authorization": "Basic YWRtaW46YWRtaW4="}, "must be 'Bearer <token>'"),
        (bearer("s3cret"), "malformed API token"),
        (bearer(forged), "unknown API token"),
        (bearer(revoked), "was revoked at 1970-01-01T00:00:00+00:00"),
        (bearer(expired), "expired at 1970-01-01T00:00:02+00:00"),
    ]
    url = _url(path, NORTH)
    for headers, reason in cases:
        code, body = await _call(served.base, method, url, headers)
        assert code == 401 and (is_ws or reason in body), (headers, code, body)
    if not is_ws:
        async with httpx.AsyncClient(base_url=f"http://{served.base}") as client:
            r = await client.request(method, url)
        assert r.headers["WWW-Authenticate"] == 'Bearer realm="plantpulse"'
        assert r.json()["detail"].startswith(
            "missing API token: send the header 'Authorization: Bearer <token>'"
        )


async def test_health_metrics_and_docs_need_no_token(served: Served) -> None:
    async with httpx.AsyncClient(base_url=f"http://{served.base}") as client:
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
            assert (await client.get(path)).status_code == 200, path
        schemes = (await client.get("/openapi.json")).json()["components"]["securitySchemes"]
    assert schemes == {
        "HTTPBearer": {"type": "http", "scheme": "bearer", "bearerFormat": "ptk_<id>_<secret>"}
    }


async def test_403_says_which_role_or_site_is_needed(served: Served) -> None:
    async with httpx.AsyncClient(base_url=f"http://{served.base}") as client:
        live = await client.get("/v1/live", headers=bearer(served.tokens[Role.REPORTING, "all"]))
        post = await client.post(
            "/v1/sites/north/period-values",
            headers=bearer(served.tokens[Role.OPERATOR, "all"]),
            json={},
        )
        south = await client.get(
            "/v1/channels/south-m.energy/series",
            headers=bearer(served.tokens[Role.VIEWER, NORTH]),
        )
    assert live.status_code == post.status_code == south.status_code == 403
    assert live.json()["detail"] == (
        "needs the role viewer, operator, engineer or admin (to read live values);"
        " this token's role is reporting"
    )
    assert "needs the role engineer or admin (to change rules," in post.json()["detail"]
    assert post.headers["WWW-Authenticate"].endswith('error="insufficient_scope"')
    assert (
        south.json()["detail"] == "channel 'south-m.energy' is not in this token's sites ['north']"
    )


async def test_live_without_a_site_lists_only_the_tokens_sites(served: Served) -> None:
    async with httpx.AsyncClient(base_url=f"http://{served.base}") as client:
        north = await client.get("/v1/live", headers=bearer(served.tokens[Role.VIEWER, NORTH]))
        both = await client.get("/v1/live", headers=bearer(served.tokens[Role.VIEWER, "all"]))
    assert {c["site"] for c in north.json()} == {NORTH}
    assert {c["site"] for c in both.json()} == {NORTH, SOUTH}


def test_roles_grant_what_the_readme_table_says() -> None:
    grants = {r: {p.name for p in r.permissions} for r in Role}
    assert grants == {
        Role.VIEWER: {"LIVE", "DATA"},
        Role.REPORTING: {"DATA", "REPORTS"},
        Role.OPERATOR: {"LIVE", "DATA", "ALERTS"},
        Role.ENGINEER: {"LIVE", "DATA", "REPORTS", "ALERTS", "CONFIGURE"},
        Role.ADMIN: {p.name for p in Permission},
    }


async def test_a_revocation_takes_effect_within_the_cache_ttl(tmp_path: Path) -> None:
    now_s = [100.0]
    async with SqliteStore(tmp_path / "s.sqlite3") as store:
        raw = await token_for(store)
        auth = TokenAuth(store, two_sites(), ttl_s=5.0, monotonic_s=lambda: now_s[0])
        t = await auth.authenticate(raw)
        await store.revoke_token(t.id, at_ns=3, actor="t", reason="stolen")
        now_s[0] += 4.9
        assert await auth.authenticate(raw) == t  # cached: still admitted within the TTL
        now_s[0] += 0.2
        with pytest.raises(AccessDenied, match="was revoked") as e:
            await auth.authenticate(raw)
        assert e.value.status_code == 401


async def test_expiry_is_checked_on_every_request(tmp_path: Path) -> None:
    clock_ns = [10 * NS_PER_S]
    async with SqliteStore(tmp_path / "s.sqlite3") as store:
        raw = await token_for(store, expires_at_ns=20 * NS_PER_S)
        auth = TokenAuth(store, two_sites(), clock_ns=lambda: clock_ns[0])
        await auth.authenticate(raw)
        clock_ns[0] = 20 * NS_PER_S
        with pytest.raises(AccessDenied, match="expired at 1970-01-01T00:00:20"):
            await auth.authenticate(raw)


LiveCaller = Annotated[Caller, Depends(require(Permission.LIVE, token_in_query=True))]


def _ws_app(store: SqliteStore) -> FastAPI:
    app = FastAPI()
    install_auth(app, TokenAuth(store, two_sites(), ttl_s=0))

    @app.websocket("/v1/probe")
    async def probe(websocket: WebSocket, caller: LiveCaller) -> None:
        await websocket.accept()
        await websocket.send_text(caller.role.value)
        await websocket.close()

    return app


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
async def test_websockets_take_the_token_in_the_query_or_are_denied_with_the_reason(
    tmp_path: Path,
) -> None:
    from starlette.testclient import TestClient, WebSocketDenialResponse

    async with SqliteStore(tmp_path / "s.sqlite3") as store:
        viewer = await token_for(store, Role.VIEWER, (NORTH,))
        reporting = await token_for(store, Role.REPORTING)
        app = _ws_app(store)

        def session(url: str, asgi: Any = app) -> str:
            with TestClient(asgi) as client, client.websocket_connect(url) as ws:
                return str(ws.receive_text())

        async def without_denial_responses(scope: Scope, receive: Receive, send: Send) -> None:
            await app({**scope, "extensions": {}}, receive, send)

        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, session, f"/v1/probe?token={viewer}") == "viewer"
        for url, reason in (
            (f"/v1/probe?token={reporting}", "needs the role viewer"),
            (f"/v1/probe?token={viewer}&site=south", "'south' is not in this token's sites"),
            ("/v1/probe", "or the query parameter 'token'"),
        ):
            with pytest.raises(WebSocketDenialResponse) as denied:
                await loop.run_in_executor(None, session, url)
            assert denied.value.status_code in (401, 403) and reason in denied.value.text, url
            with pytest.raises(WebSocketDisconnect) as closed:
                await loop.run_in_executor(None, session, url, without_denial_responses)
            assert closed.value.code == 1008 and reason in closed.value.reason, url


async def test_a_new_token_has_256_random_bits_and_only_its_hash_is_kept() -> None:
    t, raw = issue(name="n", role=Role.VIEWER, sites=(NORTH,), created_at_ns=1)
    prefix, tid, secret = raw.split("_", 2)
    assert (prefix, tid) == ("ptk", t.id) and len(secret) == 43  # token_urlsafe(32)
    assert t.matches(raw) and not t.matches(raw[:-1] + ("A" if raw[-1] != "A" else "B"))
    assert secret not in repr(t) and t.secret_sha256 not in repr(t)

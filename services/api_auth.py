"""API access control: `require(permission)` checks a request's token, its role and its site
scope, answering 401 or 403 with the reason. Holds no secret (tokens are checked by hash); token
records are cached for TokenAuth.ttl_s, so a revocation takes effect within that time."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn

from fastapi import Depends, FastAPI, HTTPException, Query, Security, WebSocketException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from compute.errors import PlantPulseError
from compute.model import NS_PER_S
from compute.plant import Plant
from services.access import ApiToken, Permission, Role, TokenStatus, roles_with, token_id
from services.store import Store

CACHE_TTL_S = 5.0
_CACHE_MAX = 4096  # token ids, known or not; past it the cache starts again
# Path and query parameters naming what a request reads or changes; checked against the scope.
_SITE_PARAMS = ("site", "sites")
_CHANNEL_PARAMS = ("channel_id", "channel", "channels")
_METER_PARAMS = ("meter_id", "meter", "meters")
# Declares the scheme in the OpenAPI document (the docs' Authorize button); `require` reads the
# header itself, to say what is wrong with it.
_Bearer = Annotated[
    HTTPAuthorizationCredentials | None,
    Security(HTTPBearer(auto_error=False, bearerFormat="ptk_<id>_<secret>")),
]


class AccessDenied(PlantPulseError):
    """A request's token is missing, wrong, or does not allow what it asks (401 or 403)."""

    def __init__(self, status_code: int, reason: str, *, presented: bool = True) -> None:
        super().__init__(reason)
        self.status_code = status_code
        self.reason = reason
        self.presented = presented  # a token came with the request


@dataclass(frozen=True, slots=True, kw_only=True)
class Caller:
    """The token a request came with, once authenticated and authorised."""

    token: ApiToken

    @property
    def role(self) -> Role:
        return self.token.role

    @property
    def actor(self) -> str:
        """Who did it, for the audit log."""
        return f"token:{self.token.id} ({self.token.name})"

    @property
    def sites(self) -> frozenset[str] | None:
        """The sites the token covers; None: all sites."""
        return None if self.token.all_sites else frozenset(self.token.sites)

    def covers(self, site: str) -> bool:
        """Whether the token may see the site: list endpoints keep only the sites it covers."""
        return self.token.covers(site)

    def check_site(self, site: str) -> None:
        """403 unless the site is in scope: for sites named in a request body."""
        if not self.token.covers(site):
            _deny(AccessDenied(403, _out_of_scope("site", site, self.token)))


class TokenAuth:
    """Looks tokens up in the store through a small TTL cache and maps channels to their sites."""

    def __init__(
        self,
        store: Store,
        plant: Plant,
        *,
        ttl_s: float = CACHE_TTL_S,
        clock_ns: Callable[[], int] = time.time_ns,
        monotonic_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self.clock_ns = clock_ns
        self.monotonic_s = monotonic_s
        self._cache: dict[str, tuple[float, ApiToken | None]] = {}
        self.channel_sites = {k: r.site.id for k, r in plant.channels.items()}
        self.meter_sites = {m.id: m.site for m in plant.meters}

    async def _record(self, tid: str) -> ApiToken | None:
        now = self.monotonic_s()
        hit = self._cache.get(tid)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        got = await self.store.token(tid)
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[tid] = (now, got)
        return got

    async def authenticate(self, raw: str) -> ApiToken:
        """The active token `raw` is; else AccessDenied (401) saying why. Whether a token was
        revoked or expired is told only to whoever holds its secret."""
        tid = token_id(raw)
        if tid is None:
            raise AccessDenied(401, "malformed API token: expected ptk_<id>_<secret>")
        t = await self._record(tid)
        if t is None or not t.matches(raw):
            raise AccessDenied(401, "unknown API token")
        state = t.status(self.clock_ns())
        if state is TokenStatus.REVOKED:
            raise AccessDenied(401, f"API token {t.id} was revoked at {_iso(t.revoked_at_ns)}")
        if state is TokenStatus.EXPIRED:
            raise AccessDenied(401, f"API token {t.id} expired at {_iso(t.expires_at_ns)}")
        return t

    async def authorize(
        self, conn: HTTPConnection, raw: str | None, permission: Permission, via: str
    ) -> Caller:
        """The caller, if `raw` is an active token allowed `permission` on everything the
        request names; else AccessDenied. `via` says where a token is accepted."""
        if not raw:
            raise AccessDenied(401, f"missing API token: send {via}", presented=False)
        t = await self.authenticate(raw)
        if not t.role.can(permission):
            *others, last = [r.value for r in roles_with(permission)]
            needed = f"{', '.join(others)} or {last}" if others else last
            why = f"needs the role {needed} (to {permission}); this token's role is {t.role}"
            raise AccessDenied(403, why)
        if (issue := self.scope_issue(conn, t)) is not None:
            raise AccessDenied(403, issue)
        return Caller(token=t)

    def scope_issue(self, conn: HTTPConnection, t: ApiToken) -> str | None:
        """Why the sites, channels or meters a request names are not all in the token's scope."""
        if t.all_sites:
            return None
        for kind, name, site in self._named(conn):
            if site is None or not t.covers(site):
                return _out_of_scope(kind, name, t)
        return None

    def _named(self, conn: HTTPConnection) -> Iterator[tuple[str, str, str | None]]:
        for kind, keys, sites in (
            ("site", _SITE_PARAMS, None),
            ("channel", _CHANNEL_PARAMS, self.channel_sites),
            ("meter", _METER_PARAMS, self.meter_sites),
        ):
            for key in keys:
                values = [conn.path_params[key]] if key in conn.path_params else []
                values += conn.query_params.getlist(key)
                for name in (n.strip() for v in values for n in str(v).split(",")):
                    if name:
                        yield kind, name, name if sites is None else sites.get(name)


def install_auth(app: FastAPI, auth: TokenAuth) -> None:
    """Make `require` dependencies of this app check tokens with `auth`."""
    app.state.auth = auth


def require(
    permission: Permission, *, token_in_query: bool = False
) -> Callable[..., Awaitable[Caller]]:
    """A dependency admitting tokens whose role grants `permission` and whose sites cover every
    site, channel or meter the path or query names. With token_in_query, a `token` query
    parameter is accepted too, for browsers' EventSource and WebSocket, which send no headers."""
    via = "the header 'Authorization: Bearer <token>'"
    via += " or the query parameter 'token'" if token_in_query else ""

    async def check(conn: HTTPConnection, query_token: str | None) -> Caller:
        auth: TokenAuth = conn.app.state.auth
        try:
            return await auth.authorize(conn, _bearer(conn) or query_token, permission, via)
        except AccessDenied as e:
            no_denial = "websocket.http.response" not in conn.scope.get("extensions", {})
            _deny(e, close_websocket=conn.scope["type"] == "websocket" and no_denial)

    async def header_or_query(
        conn: HTTPConnection,
        _: _Bearer,
        token: Annotated[
            str | None, Query(description="the API token, for clients that cannot send headers")
        ] = None,
    ) -> Caller:
        return await check(conn, token)

    async def header_only(conn: HTTPConnection, _: _Bearer) -> Caller:
        return await check(conn, None)

    dependency = header_or_query if token_in_query else header_only
    dependency.permission = permission  # type: ignore[attr-defined]  # for the route tests
    return dependency


def allowed_sites(
    permission: Permission, *, token_in_query: bool = False
) -> Callable[..., Awaitable[frozenset[str] | None]]:
    """As `require`, but the dependency gives the caller's sites (None: all sites)."""
    caller = require(permission, token_in_query=token_in_query)

    # A default, not Annotated: annotations are strings, and `caller` is not a global.
    async def sites(c: Caller = Depends(caller)) -> frozenset[str] | None:  # noqa: B008
        return c.sites

    return sites


def _out_of_scope(kind: str, name: str, t: ApiToken) -> str:
    return f"{kind} {name!r} is not in this token's sites {list(t.sites)}"


def _iso(ts_ns: int | None) -> str:
    return datetime.fromtimestamp((ts_ns or 0) / NS_PER_S, UTC).isoformat(timespec="seconds")


def _bearer(conn: HTTPConnection) -> str | None:
    header = conn.headers.get("authorization")
    if header is None:
        return None
    scheme, _, raw = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise AccessDenied(401, "the Authorization header must be 'Bearer <token>'")
    return raw.strip()


def _deny(e: AccessDenied, *, close_websocket: bool = False) -> NoReturn:
    """401 (with a WWW-Authenticate challenge, RFC 6750) or 403, with the reason as the detail
    (a WebSocket handshake gets it as a denial response); where a server cannot deny a
    WebSocket handshake with an HTTP response, a close with policy violation (1008) and the
    reason."""
    if close_websocket:
        raise WebSocketException(
            status.WS_1008_POLICY_VIOLATION, f"{e.status_code}: {e}"[:123]
        ) from e
    challenge = 'Bearer realm="plantpulse"'
    if e.status_code == 403:
        challenge += ', error="insufficient_scope"'
    elif e.presented:
        challenge += ', error="invalid_token"'
    headers: dict[str, Any] = {"WWW-Authenticate": challenge}
    raise HTTPException(e.status_code, e.reason, headers=headers) from e

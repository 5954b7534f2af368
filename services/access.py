"""Access control: roles and what each may do, and API tokens (issued, parsed, checked).

Pure apart from the random secret: no store, no HTTP. The store keeps tokens, the API checks them.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from compute.errors import PlantPulseError

ALL_SITES = "*"
TOKEN_PREFIX = "ptk"
_TOKEN = re.compile(r"^ptk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


class TokenError(PlantPulseError):
    """A token cannot be issued, found or revoked as asked; the message says why."""


class Permission(enum.StrEnum):
    """What an endpoint needs; roles grant sets of these (ROLE_PERMISSIONS)."""

    LIVE = "read live values"
    DATA = "read totals, series and period values"
    REPORTS = "read ESG reports and exports"
    ALERTS = "acknowledge and shelve alerts"
    CONFIGURE = "change rules, configuration, emission factors, period values and meter events"
    TOKENS = "manage API tokens"


class Role(enum.StrEnum):
    VIEWER = "viewer"
    REPORTING = "reporting"
    OPERATOR = "operator"
    ENGINEER = "engineer"
    ADMIN = "admin"

    @property
    def permissions(self) -> frozenset[Permission]:
        return ROLE_PERMISSIONS[self]

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self]


_P = Permission
# The hierarchy, explicitly: viewer < operator < engineer < admin, and reporting < engineer.
# Reporting reads figures and reports but not live values: it is for systems, not control rooms.
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({_P.LIVE, _P.DATA}),
    Role.REPORTING: frozenset({_P.DATA, _P.REPORTS}),
    Role.OPERATOR: frozenset({_P.LIVE, _P.DATA, _P.ALERTS}),
    Role.ENGINEER: frozenset({_P.LIVE, _P.DATA, _P.REPORTS, _P.ALERTS, _P.CONFIGURE}),
    Role.ADMIN: frozenset(Permission),
}


def roles_with(permission: Permission) -> list[Role]:
    """The roles granting a permission, least privileged first."""
    return [r for r in Role if r.can(permission)]


class TokenStatus(enum.StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiToken:
    """A token as stored: its hash, never its secret. `sites` holds site ids or ALL_SITES."""

    id: str
    name: str
    role: Role
    sites: tuple[str, ...]
    secret_sha256: str = field(repr=False)
    created_at_ns: int
    expires_at_ns: int | None = None
    revoked_at_ns: int | None = None

    @property
    def all_sites(self) -> bool:
        return ALL_SITES in self.sites

    def covers(self, site: str) -> bool:
        return self.all_sites or site in self.sites

    def status(self, now_ns: int) -> TokenStatus:
        if self.revoked_at_ns is not None:
            return TokenStatus.REVOKED
        if self.expires_at_ns is not None and now_ns >= self.expires_at_ns:
            return TokenStatus.EXPIRED
        return TokenStatus.ACTIVE

    def matches(self, raw: str) -> bool:
        """Whether a presented token is this one, in constant time."""
        return hmac.compare_digest(self.secret_sha256, digest(raw))


def digest(raw: str) -> str:
    """The stored form of a token. A token carries 256 random bits (secrets.token_urlsafe(32)),
    so its SHA-256 can be neither guessed nor looked up; a slow password hash (bcrypt, argon2)
    protects low-entropy human passwords and would only add latency to every request here."""
    return hashlib.sha256(raw.encode()).hexdigest()


def token_id(raw: str) -> str | None:
    """The id part of a well-formed token (`ptk_<12 hex>_<43 url-safe chars>`), else None."""
    m = _TOKEN.match(raw)
    return m[1] if m else None


def check_sites(sites: Iterable[str], known: Iterable[str]) -> tuple[str, ...]:
    """The sorted scope of a new token: at least one site, each known, or ALL_SITES alone."""
    chosen, known_ids = set(sites), set(known)
    if not chosen:
        raise TokenError("a token needs at least one site, or all sites")
    if ALL_SITES in chosen:
        if len(chosen) > 1:
            raise TokenError("all sites ('*') cannot be combined with named sites")
        return (ALL_SITES,)
    if unknown := sorted(chosen - known_ids):
        raise TokenError(f"unknown sites {unknown}; known: {sorted(known_ids)}")
    return tuple(sorted(chosen))


def issue(
    *,
    name: str,
    role: Role,
    sites: tuple[str, ...],
    created_at_ns: int,
    expires_at_ns: int | None = None,
) -> tuple[ApiToken, str]:
    """A new token and its secret form `ptk_<id>_<secret>`, to be shown once and never stored."""
    if not name.strip():
        raise TokenError("a token needs a name")
    if expires_at_ns is not None and expires_at_ns <= created_at_ns:
        raise TokenError("a token must expire after it is created")
    tid = secrets.token_hex(6)
    raw = f"{TOKEN_PREFIX}_{tid}_{secrets.token_urlsafe(32)}"
    token = ApiToken(
        id=tid,
        name=name.strip(),
        role=role,
        sites=sites,
        secret_sha256=digest(raw),
        created_at_ns=created_at_ns,
        expires_at_ns=expires_at_ns,
    )
    return token, raw

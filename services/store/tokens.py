"""API tokens in the store: SQL in PostgreSQL's parameter style (SqliteStore swaps %s for ?),
row conversions and the audit entries of creation and revocation. Holds no secret."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from compute.model import NS_PER_S
from services.access import ApiToken, Role
from services.store.records import AuditEntry

_COLUMNS = "id, name, role, sites, secret_sha256, created_at_ns, expires_at_ns, revoked_at_ns"
INSERT_TOKEN_SQL = f"INSERT INTO api_tokens ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
TOKEN_SQL = f"SELECT {_COLUMNS} FROM api_tokens WHERE id = %s"
TOKENS_SQL = f"SELECT {_COLUMNS} FROM api_tokens ORDER BY created_at_ns, id"
REVOKE_SQL = (
    "UPDATE api_tokens SET revoked_at_ns = %s WHERE id = %s AND revoked_at_ns IS NULL"
    f" RETURNING {_COLUMNS}"
)


def token_row(t: ApiToken) -> tuple[Any, ...]:
    """In _COLUMNS order; the sites as a JSON array."""
    return (
        t.id, t.name, t.role.value, json.dumps(list(t.sites)), t.secret_sha256, t.created_at_ns,
        t.expires_at_ns, t.revoked_at_ns,
    )  # fmt: skip


def api_token(row: Any) -> ApiToken:
    tid, name, role, sites, sha, created, expires, revoked = row
    return ApiToken(
        id=tid,
        name=name,
        role=Role(role),
        sites=tuple(json.loads(sites)),
        secret_sha256=sha,
        created_at_ns=int(created),
        expires_at_ns=None if expires is None else int(expires),
        revoked_at_ns=None if revoked is None else int(revoked),
    )


def subject(token_id: str) -> str:
    """The audit log's subject for a token."""
    return f"api_token:{token_id}"


def created_entry(t: ApiToken, actor: str, reason: str) -> AuditEntry:
    scope = {"name": t.name, "role": t.role.value, "sites": list(t.sites)}
    return AuditEntry(
        at_ns=t.created_at_ns,
        actor=actor,
        action="token.create",
        subject=subject(t.id),
        old_value=None,
        new_value=json.dumps({**scope, "expires_at_ns": t.expires_at_ns}, sort_keys=True),
        reason=reason,
    )


def revoked_entry(token_id: str, at_ns: int, actor: str, reason: str) -> AuditEntry:
    return AuditEntry(
        at_ns=at_ns,
        actor=actor,
        action="token.revoke",
        subject=subject(token_id),
        old_value="active",
        new_value="revoked",
        reason=reason,
    )


def not_revoked(token_id: str, existing: ApiToken | None) -> str:
    """Why a revocation changed no row: the token is unknown, or revoked already."""
    if existing is None:
        return f"unknown token id {token_id!r}"
    at = datetime.fromtimestamp((existing.revoked_at_ns or 0) / NS_PER_S, UTC)
    return f"token {token_id!r} was revoked already, at {at.isoformat(timespec='seconds')}"

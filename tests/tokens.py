"""API tokens for tests: created through the store, as `plantpulse token create` does."""

from __future__ import annotations

from services.access import ALL_SITES, Role, issue
from services.store import Store


async def token_for(
    store: Store,
    role: Role = Role.ADMIN,
    sites: tuple[str, ...] = (ALL_SITES,),
    *,
    created_at_ns: int = 1,
    expires_at_ns: int | None = None,
) -> str:
    """A new token of the role for the sites, stored (hashed); the raw token to send."""
    t, raw = issue(
        name=f"test {role}",
        role=role,
        sites=sites,
        created_at_ns=created_at_ns,
        expires_at_ns=expires_at_ns,
    )
    await store.add_token(t, actor="tests", reason="test fixture")
    return raw


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}

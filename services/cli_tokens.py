"""`plantpulse token create|list|revoke`: API tokens in the store of PT_STORE__URL.

A new token is printed once, alone on stdout; nothing else ever prints a secret or its hash.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from compute.errors import PlantPulseError
from compute.model import NS_PER_S
from compute.plant import Plant
from services import runtime
from services.access import ALL_SITES, ApiToken, Role, TokenError, check_sites, issue
from services.settings import Settings

EXIT_USAGE = 2
DAY_NS = 86_400 * NS_PER_S


def add_token_parser(sub: Any) -> None:
    t = sub.add_parser("token", help="create, list and revoke API tokens (PT_STORE__URL)")
    t_sub = t.add_subparsers(dest="token_command", required=True)
    create = t_sub.add_parser("create", help="create a token and print it, once")
    create.add_argument("--config", type=Path, help="plant file (default: PT_CONFIG)")
    create.add_argument("--name", required=True, help="who or what uses it")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    scope = create.add_mutually_exclusive_group(required=True)
    scope.add_argument("--site", action="append", help="a site it covers; repeat for more")
    scope.add_argument("--all-sites", action="store_true", help="every site, present and future")
    create.add_argument("--expires-days", type=float, help="valid for this many days")
    create.add_argument("--reason", default="plantpulse token create", help="for the audit log")
    t_sub.add_parser("list", help="list the tokens, never their secrets")
    revoke = t_sub.add_parser("revoke", help="revoke a token (within seconds for the API)")
    revoke.add_argument("id", help="the token's id, as `token list` shows it")
    revoke.add_argument("--reason", required=True, help="why, for the audit log")


def actor() -> str:
    """The operating-system user running the command, for the audit log."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def run_token(args: argparse.Namespace, settings: Settings, load: Callable[[Path], Plant]) -> int:
    """Exit 0 done, 1 naming why the store refused, 2 naming the offending option."""
    try:
        if args.token_command == "create":
            return _create(args, settings, load(settings.config))
        if args.token_command == "list":
            print(format_tokens(asyncio.run(_list(settings)), time.time_ns()))
            return 0
        if not args.reason.strip():
            return _usage("--reason", "say why the token is revoked")
        t = asyncio.run(_revoke(settings, args.id, args.reason))
        print(f"revoked token {t.id} ({t.name}); the API refuses it within seconds")
        return 0
    except PlantPulseError as e:
        print(f"plantpulse token {args.token_command}: {e}", file=sys.stderr)
        return 1


def _create(args: argparse.Namespace, settings: Settings, plant: Plant) -> int:
    now_ns = time.time_ns()
    if not args.name.strip():
        return _usage("--name", "must not be empty")
    if args.expires_days is not None and not args.expires_days > 0:
        return _usage("--expires-days", "must be more than 0")
    try:
        wanted = [ALL_SITES] if args.all_sites else args.site
        sites = check_sites(wanted, [s.id for s in plant.sites])
    except TokenError as e:
        return _usage("--site", str(e))
    token, raw = issue(
        name=args.name,
        role=Role(args.role),
        sites=sites,
        created_at_ns=now_ns,
        expires_at_ns=None
        if args.expires_days is None
        else now_ns + int(args.expires_days * DAY_NS),
    )
    asyncio.run(_add(settings, token, args.reason))
    print(raw)
    print(
        f"created token {token.id} ({token.name}): role {token.role}, sites {_sites(token)}, "
        f"expires {_when(token.expires_at_ns)}. It is shown only this once.",
        file=sys.stderr,
    )
    return 0


async def _add(settings: Settings, token: ApiToken, reason: str) -> None:
    async with runtime.open_store(settings) as store:
        await store.add_token(token, actor=actor(), reason=reason)


async def _list(settings: Settings) -> list[ApiToken]:
    async with runtime.open_store(settings) as store:
        return await store.tokens()


async def _revoke(settings: Settings, token_id: str, reason: str) -> ApiToken:
    async with runtime.open_store(settings) as store:
        return await store.revoke_token(
            token_id, at_ns=time.time_ns(), actor=actor(), reason=reason
        )


def format_tokens(tokens: list[ApiToken], now_ns: int) -> str:
    """A table of the tokens: id, name, role, sites, created, expires, status."""
    head = ("id", "name", "role", "sites", "created (UTC)", "expires (UTC)", "status")
    rows = [head] + [
        (
            t.id,
            t.name,
            t.role.value,
            _sites(t),
            _when(t.created_at_ns),
            _when(t.expires_at_ns),
            t.status(now_ns).value
            + ("" if t.revoked_at_ns is None else f" {_when(t.revoked_at_ns)}"),
        )
        for t in tokens
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines if tokens else [*lines, "(no tokens)"])


def _usage(option: str, problem: str) -> int:
    print(f"{option}: {problem}", file=sys.stderr)
    return EXIT_USAGE


def _sites(t: ApiToken) -> str:
    return "all" if t.all_sites else ",".join(t.sites)


def _when(ts_ns: int | None) -> str:
    if ts_ns is None:
        return "never"
    return datetime.fromtimestamp(ts_ns / NS_PER_S, UTC).strftime("%Y-%m-%d %H:%M")

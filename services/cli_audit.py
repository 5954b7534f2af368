"""`plantpulse audit verify`: checks the hash chains of audit_log and alert_events in the store
of PT_STORE__URL. Exit 0 intact, 1 broken (naming the first broken row), 2 usage or no store."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from compute.audit_chain import Chain, Problem
from compute.errors import PlantPulseError
from services import runtime
from services.audit_verify import PAGE_ROWS, ChainReport, verify_chain
from services.settings import Settings
from services.store.sqlite import SqliteStore
from services.store.timescale import TimescaleStore

EXIT_BROKEN = 1
EXIT_USAGE = 2
CHAIN_MIGRATION = 13


class AuditUnavailable(PlantPulseError):
    """The store cannot be verified: missing, unreachable, or its schema predates the chain."""


def add_audit_parser(sub: Any) -> None:
    a = sub.add_parser("audit", help="the tamper-evident audit trail (PT_STORE__URL)")
    a_sub = a.add_subparsers(dest="audit_command", required=True)
    v = a_sub.add_parser("verify", help="check the hash chains of audit_log and alert_events")
    v.add_argument(
        "--chain", choices=[c.value for c in Chain], action="append", help="only this chain"
    )
    v.add_argument("--page-rows", type=int, default=PAGE_ROWS, help="rows read per query")
    v.add_argument(
        "--anchor",
        action="append",
        default=[],
        metavar="CHAIN:SEQ:SHA256",
        help="a head printed by an earlier verify, kept outside the database: it must still be "
        "there (catches a cut-back or rewritten chain); repeat for each chain",
    )


def run_audit(args: argparse.Namespace, settings: Settings) -> int:
    if args.page_rows < 1:
        print("--page-rows: must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    chains = [Chain(c) for c in args.chain] if args.chain else list(Chain)
    try:
        anchors = parse_anchors(args.anchor)
    except ValueError as e:
        print(f"--anchor: {e}", file=sys.stderr)
        return EXIT_USAGE
    print(f"store: {runtime.describe_store(settings)}")
    try:
        reports = asyncio.run(_verify(settings, chains, args.page_rows, anchors))
    except PlantPulseError as e:
        print(f"plantpulse audit verify: {e}", file=sys.stderr)
        return EXIT_USAGE
    for r in reports:
        print(format_report(r))
    return 0 if all(r.ok for r in reports) else EXIT_BROKEN


async def _verify(
    settings: Settings, chains: list[Chain], page_rows: int, anchors: dict[Chain, tuple[int, str]]
) -> list[ChainReport]:
    store: SqliteStore | TimescaleStore
    if (dsn := settings.postgres_dsn) is not None:
        store = TimescaleStore(dsn, timeout_s=settings.io_timeout_s, migrate=False)
    else:
        if not settings.sqlite_path.is_file():
            raise AuditUnavailable(f"no SQLite store at {settings.sqlite_path}")
        store = SqliteStore(settings.sqlite_path, migrate=False)
    async with store:
        status = await store.migration_status()
        if CHAIN_MIGRATION not in {m.version for m in status.applied}:
            raise AuditUnavailable(
                f"the store's schema (version {status.version}) has no audit chain yet: "
                "run `plantpulse db upgrade`"
            )
        return [
            await verify_chain(store, c, page_rows=page_rows, anchor=anchors.get(c)) for c in chains
        ]


def parse_anchors(values: list[str]) -> dict[Chain, tuple[int, str]]:
    """CHAIN:SEQ:SHA256 each, at most one per chain."""
    out: dict[Chain, tuple[int, str]] = {}
    for v in values:
        name, _, rest = v.partition(":")
        seq, _, sha = rest.partition(":")
        if name not in {c.value for c in Chain} or not seq.isdigit() or len(sha) != 64:
            raise ValueError(f"{v!r} is not CHAIN:SEQ:SHA256 (e.g. audit_log:127:<64 hex>)")
        if Chain(name) in out:
            raise ValueError(f"two anchors for {name}")
        out[Chain(name)] = (int(seq), sha.lower())
    return out


def format_report(r: ChainReport) -> str:
    st = r.state
    legacy = f", {st.legacy} rows from before the chain not covered" if st.legacy else ""
    if r.broken is None:
        head = f"; head {r.chain}:{st.head_seq}:{st.head_sha256}" if st.checked else ""
        return f"{r.chain}: OK, {st.checked} rows checked{legacy}{head}"
    b = r.broken
    column = "prev_sha256" if b.problem is Problem.LINK else "sha256"
    lines = [
        f"{r.chain}: BROKEN at seq {b.seq} ({b.problem}) after {st.checked} good rows{legacy}",
        f"  {b.detail}",
        f"  expected {column}: {b.expected_sha256}",
        f"  stored   {column}: {b.stored_sha256 or '(none)'}",
    ]
    if b.changed_fields:
        lines.append(f"  changed fields: {', '.join(b.changed_fields)}")
    return "\n".join(lines)

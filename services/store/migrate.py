"""Versioned, forward-only schema migrations shipped as SQL files, one folder per dialect.

Applies them on a given connection and reads what is applied; it opens no connection itself.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import psycopg

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# The key of the PostgreSQL advisory lock that lets one replica at a time migrate.
MIGRATION_LOCK = 0x706C616E74  # "plant"

_SQLITE_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations"
    " (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
    " applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
)
_POSTGRES_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations"
    " (version int PRIMARY KEY, name text NOT NULL,"
    " applied_at timestamptz NOT NULL DEFAULT now())"
)
_APPLIED = "SELECT version, name, applied_at FROM schema_migrations ORDER BY version"


@dataclass(frozen=True, slots=True, kw_only=True)
class Migration:
    version: int
    name: str
    sql: str
    timescale_sql: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AppliedMigration:
    version: int
    name: str
    applied_at: datetime  # UTC


@dataclass(frozen=True, slots=True, kw_only=True)
class MigrationStatus:
    """What a database has applied and what this build would still apply to it."""

    applied: tuple[AppliedMigration, ...]  # oldest first
    pending: tuple[Migration, ...]  # in the order they would be applied
    latest: int  # the newest version this build ships

    @property
    def version(self) -> int:
        """The newest applied version, 0 for an empty database."""
        return max((m.version for m in self.applied), default=0)

    @property
    def unknown(self) -> tuple[AppliedMigration, ...]:
        """Applied versions this build does not ship (a newer build migrated the database)."""
        return tuple(m for m in self.applied if m.version > self.latest)


def migrations(dialect: str) -> list[Migration]:
    """The dialect's migrations in order; `timescale_sql` is the optional TimescaleDB part."""
    folder = resources.files("services.store") / "migrations" / dialect
    files = {
        f.name: f.read_text(encoding="utf-8") for f in folder.iterdir() if f.name.endswith(".sql")
    }
    out = []
    for name, sql in sorted(files.items()):
        m = _NAME.match(name)
        if m:
            extra = files.get(name.removesuffix(".sql") + ".timescale.sql")
            out.append(Migration(version=int(m[1]), name=m[2], sql=sql, timescale_sql=extra))
    return out


def status_of(dialect: str, applied: Iterable[AppliedMigration]) -> MigrationStatus:
    done = tuple(sorted(applied, key=lambda m: m.version))
    versions = {m.version for m in done}
    shipped = migrations(dialect)
    return MigrationStatus(
        applied=done,
        pending=tuple(m for m in shipped if m.version not in versions),
        latest=max((m.version for m in shipped), default=0),
    )


def _pending(dialect: str, done: set[int], upto: int | None) -> list[Migration]:
    return [
        m
        for m in migrations(dialect)
        if m.version not in done and (upto is None or m.version <= upto)
    ]


def _applied_row(row: tuple[Any, ...]) -> AppliedMigration:
    version, name, at = row
    if isinstance(at, str):  # SQLite's CURRENT_TIMESTAMP: "YYYY-MM-DD HH:MM:SS", UTC
        at = datetime.fromisoformat(at)
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return AppliedMigration(version=int(version), name=str(name), applied_at=at)


# SQLite --------------------------------------------------------------------------------------


def sqlite_status(db: sqlite3.Connection) -> MigrationStatus:
    """Read-only: the migration state of an open SQLite database."""
    return status_of("sqlite", _sqlite_applied(db))


def _sqlite_applied(db: sqlite3.Connection) -> list[AppliedMigration]:
    exists = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    return [_applied_row(row) for row in db.execute(_APPLIED)] if exists else []


def upgrade_sqlite(db: sqlite3.Connection, *, upto: int | None = None) -> list[int]:
    """Apply the pending migrations (those up to `upto` if given) in one transaction; return the
    versions applied. BEGIN IMMEDIATE takes the write lock first, so of two processes opening the
    same file the second finds the work done. `db` must be in autocommit mode
    (isolation_level=None)."""
    if not _pending("sqlite", {m.version for m in _sqlite_applied(db)}, upto):
        return []  # the usual start-up: no write lock needed
    applied = []
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute(_SQLITE_TABLE)
        done = {v for (v,) in db.execute("SELECT version FROM schema_migrations")}
        for m in _pending("sqlite", done, upto):
            for stmt in m.sql.split(";\n"):
                if stmt.strip():
                    db.execute(stmt)
            db.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (?, ?)", (m.version, m.name)
            )
            applied.append(m.version)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return applied


# PostgreSQL ----------------------------------------------------------------------------------


async def postgres_status(conn: psycopg.AsyncConnection[Any]) -> MigrationStatus:
    """Read-only: the migration state of a PostgreSQL database. Takes no lock, so it answers
    while another replica migrates (and shows the state before that migration commits)."""
    async with conn.transaction():
        cur = await conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
        row = await cur.fetchone()
        rows = await (await conn.execute(_APPLIED)).fetchall() if row and row[0] else []
    return status_of("postgres", [_applied_row(r) for r in rows])


async def timescale_available(conn: psycopg.AsyncConnection[Any]) -> bool:
    cur = await conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
    return await cur.fetchone() is not None


async def _timescale_installed(conn: psycopg.AsyncConnection[Any]) -> bool:
    cur = await conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
    return await cur.fetchone() is not None


async def upgrade_postgres(
    conn: psycopg.AsyncConnection[Any], *, timescale: bool, upto: int | None = None
) -> list[int]:
    """Apply the pending migrations (those up to `upto` if given), with their TimescaleDB parts
    when `timescale` (the extension is available) and the database is new or already has the
    extension: one that began on plain PostgreSQL stays plain when the package comes later. In
    one transaction under the advisory lock; return the versions applied.

    A replica that waited for the lock reads schema_migrations after the winner committed and
    applies nothing twice.
    """
    applied = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await conn.execute(_POSTGRES_TABLE)
        cur = await conn.execute("SELECT version FROM schema_migrations")
        done = {v for (v,) in await cur.fetchall()}
        timescale = timescale and (not done or await _timescale_installed(conn))
        for m in _pending("postgres", done, upto):
            await conn.execute(m.sql.encode())
            if timescale and m.timescale_sql:
                await conn.execute(m.timescale_sql.encode())
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                (m.version, m.name),
            )
            applied.append(m.version)
    return applied

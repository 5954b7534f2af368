"""Schema migrations on real SQLite files and real PostgreSQL databases.

From empty and from every earlier version a store opens at the latest version with its data
kept; two processes upgrading one database at once apply each migration exactly once; `plantpulse
db status|upgrade` report and apply them.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from compute.aggregate import ChannelSpec, ChannelState, step
from compute.calendar import Period
from compute.model import NS_PER_S, Quality, ReadingBatch
from services.store import StoreWrite
from services.store.migrate import (
    MIGRATION_LOCK,
    MigrationStatus,
    migrations,
    upgrade_postgres,
    upgrade_sqlite,
)
from services.store.sqlite import SqliteStore
from services.store.timescale import TimescaleStore

KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
# Each dialect's versions: PostgreSQL may ship migrations SQLite has no use for.
SHIPPED = {kind: [m.version for m in migrations(kind)] for kind in ("sqlite", "postgres")}
EARLIER = [
    pytest.param(kind, v, id=f"{kind}-from-{v}", marks=marks)
    for kind, marks in (("sqlite", ()), ("postgres", pytest.mark.postgres))
    for v in SHIPPED[kind][:-1]
]
MIN = 60 * NS_PER_S
CH = "m.energy"
SPECS = {CH: ChannelSpec(is_counter=True, gap_ns=40 * NS_PER_S)}
# Rows in the columns of migration 0001, so they can go into a database at any version.
V1_ROWS = [
    "INSERT INTO readings (channel_id, ts_ns, value, quality, receive_ts_ns)"
    f" VALUES ('{CH}', {10 * NS_PER_S}, 100.0, 0, 7)",
    "INSERT INTO buckets (channel_id, bucket_start_ns, n, n_good, sum, min, max, last, last_ts_ns)"
    f" VALUES ('{CH}', 0, 1, 1, 0.5, 100.0, 100.0, 100.0, {10 * NS_PER_S})",
    "INSERT INTO channel_state (channel_id, last_ts_ns, counter_ts_ns, counter_value)"
    f" VALUES ('{CH}', {10 * NS_PER_S}, {10 * NS_PER_S}, 100.0)",
    "INSERT INTO latest (channel_id, ts_ns, value, quality, receive_ts_ns)"
    f" VALUES ('{CH}', {10 * NS_PER_S}, 100.0, 0, 7)",
]
StoreFactory = Callable[[], AbstractAsyncContextManager[Any]]


def _pg_url(dsn: str) -> str:
    """The pg_dsn fixture's key=value DSN as the postgresql:// URL PT_STORE__URL takes."""
    p = {k: v for k, v in conninfo_to_dict(dsn).items() if v is not None}
    user, password = quote(str(p.pop("user", "")), safe=""), p.pop("password", None)
    auth = f"{user}:{quote(str(password), safe='')}@" if password else f"{user}@" if user else ""
    host = str(p.get("host", ""))
    netloc = ""
    if not host.startswith("/"):  # a socket directory stays in the query string
        netloc = auth + str(p.pop("host", "")) + (f":{p.pop('port')}" if "port" in p else "")
    dbname = quote(str(p.pop("dbname", "")), safe="")
    return f"postgresql://{netloc}/{dbname}" + (f"?{urlencode(p)}" if p else "")


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def location(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLite file that does not exist yet, or a fresh, empty PostgreSQL database's DSN."""
    if kind == "sqlite":
        return str(tmp_path / "store" / "plantpulse.sqlite3")
    return str(request.getfixturevalue("pg_dsn"))


def _store(kind: str, location: str) -> StoreFactory:
    if kind == "sqlite":
        return lambda: SqliteStore(Path(location))
    return lambda: TimescaleStore(location, max_connections=2)


@asynccontextmanager
async def _sql(kind: str, location: str) -> AsyncIterator[Callable[[str], Any]]:
    """Run statements on a plain connection, outside any store."""
    if kind == "sqlite":
        Path(location).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(location, isolation_level=None)
        try:

            async def run_lite(sql: str) -> list[tuple[Any, ...]]:
                return db.execute(sql).fetchall()

            yield run_lite
        finally:
            db.close()
    else:
        async with await psycopg.AsyncConnection.connect(location, autocommit=True) as conn:

            async def run_pg(sql: str) -> list[tuple[Any, ...]]:
                cur = await conn.execute(sql.encode())
                return await cur.fetchall() if cur.description else []

            yield run_pg


async def _upgrade_by_hand(kind: str, location: str, upto: int) -> list[int]:
    if kind == "sqlite":
        Path(location).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(location, isolation_level=None)
        try:
            return upgrade_sqlite(db, upto=upto)
        finally:
            db.close()
    async with await psycopg.AsyncConnection.connect(location, autocommit=True) as conn:
        return await upgrade_postgres(conn, timescale=False, upto=upto)


def _recorded(status: MigrationStatus) -> list[int]:
    return [m.version for m in status.applied]


async def test_an_empty_database_reaches_the_latest_version(kind: str, location: str) -> None:
    async with _store(kind, location)() as store:
        status = await store.migration_status()
        assert _recorded(status) == SHIPPED[kind] and status.pending == ()
        assert status.version == status.latest == SHIPPED[kind][-1]
        assert await store.migrate() == []  # nothing twice
    async with _store(kind, location)() as again:  # a restarted process
        assert _recorded(await again.migration_status()) == SHIPPED[kind]


@pytest.mark.parametrize(("kind", "version"), EARLIER)
async def test_each_earlier_version_reaches_the_latest_and_keeps_its_data(
    kind: str, location: str, version: int
) -> None:
    shipped = SHIPPED[kind]
    assert await _upgrade_by_hand(kind, location, version) == shipped[: shipped.index(version) + 1]
    async with _sql(kind, location) as sql:
        for insert in V1_ROWS:
            await sql(insert)
        before = await sql("SELECT version, applied_at FROM schema_migrations ORDER BY version")

    async with _store(kind, location)() as store:  # migrates on open, as every process does
        status = await store.migration_status()
        assert _recorded(status) == shipped and status.pending == ()
        assert await store.readings_around(CH, 0, MIN) == [(10 * NS_PER_S, 100.0, 0)]
        (bucket,) = await store.series(CH, 0, MIN)
        assert (bucket.n, bucket.sum, bucket.last, bucket.estimated) == (1, 0.5, 100.0, 0.0)
        state = await store.load_state([CH])
        assert state[CH].counter_value == 100.0
        assert state[CH].held_ts_ns == ChannelState().held_ts_ns  # 0003's default: none held
        (latest,) = await store.latest()
        assert (latest.ts_ns, latest.receive_ts_ns) == (10 * NS_PER_S, 7)

        # the upgraded schema takes the current writes: server timestamps, estimates, events
        batch = ReadingBatch.from_rows(
            meter_id="m", receive_ts_ns=8, rows=[(CH, 40 * NS_PER_S, 101.0, Quality.GOOD)]
        )
        r = step([batch], SPECS, state, MIN)
        await store.write(
            StoreWrite(
                readings=r.readings, buckets=r.buckets, state=r.state, events=r.events, new=r.fresh
            )
        )
        assert [t for t, _, _ in await store.readings_around(CH, 0, MIN)] == [
            10 * NS_PER_S,
            40 * NS_PER_S,
        ]
        assert (await store.totals([CH], 0, MIN))[CH].sum == pytest.approx(1.5)

    async with _sql(kind, location) as sql:
        after = await sql("SELECT version, applied_at FROM schema_migrations ORDER BY version")
    assert after[: len(before)] == before  # the earlier migrations were not applied again
    assert [v for v, _ in after] == shipped


async def test_month_rollups_are_complete_only_after_data_stored_before_them(
    kind: str, location: str
) -> None:
    """0008 started hour and day roll-ups two days past the newest bucket; buckets stored after
    it and before 0009 have hour and day roll-ups but no month roll-ups, so months start later."""
    two_days = 2 * 86_400 * NS_PER_S
    await _upgrade_by_hand(kind, location, 8)
    async with _sql(kind, location) as sql:
        await sql(V1_ROWS[1].replace("VALUES ('m.energy', 0,", f"VALUES ('m.energy', {MIN},"))
    async with _store(kind, location)() as store:
        assert await store.rollups_from_ns() == {
            Period.HOUR: two_days,  # where 0008 put it, on an empty database
            Period.DAY: two_days,
            Period.MONTH: MIN + two_days,  # past the bucket stored since
        }


def _plantpulse(*args: str, store_url: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PT_PG_DSN", "PT_STORE__URL")}
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", *args],
        env={**env, "PT_STORE__URL": store_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run(*args: str, store_url: str) -> tuple[int, str, str]:
    proc = _plantpulse(*args, store_url=store_url)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def _waiting_for_the_lock(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
        " WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = current_database()"
    ).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.postgres
def test_two_processes_upgrading_at_once_apply_each_migration_once(pg_dsn: str) -> None:
    url = _pg_url(pg_dsn)
    with psycopg.connect(pg_dsn, autocommit=True, connect_timeout=10) as gate:
        # Hold the migration lock until both processes are queued on it, so they really race.
        gate.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        procs = [_plantpulse("db", "upgrade", store_url=url) for _ in range(2)]
        try:
            deadline = time.monotonic() + 60
            while _waiting_for_the_lock(gate) < 2:
                exited = [p.communicate() for p in procs if p.poll() is not None]
                assert not exited, f"a process ended before reaching the lock: {exited}"
                assert time.monotonic() < deadline, "the processes never reached the lock"
                time.sleep(0.05)
        finally:
            gate.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
            results = [(p, *p.communicate(timeout=60)) for p in procs]
        for p, out, err in results:
            assert p.returncode == 0, f"stdout:\n{out}\nstderr:\n{err}"
        rows = gate.execute(
            "SELECT version, count(*) FROM schema_migrations GROUP BY version ORDER BY version"
        ).fetchall()
    assert rows == [(v, 1) for v in SHIPPED["postgres"]]
    # one process applied everything, the other found it done
    applied = sorted(out.count("applied 0") for _, out, _ in results)
    assert applied == [0, len(SHIPPED["postgres"])]
    assert sum("nothing to apply" in out for _, out, _ in results) == 1


def _store_url(kind: str, location: str) -> str:
    return f"sqlite:///{location}" if kind == "sqlite" else _pg_url(location)


def test_db_status_before_and_after_upgrade(kind: str, location: str) -> None:
    url, shipped, latest = _store_url(kind, location), SHIPPED[kind], SHIPPED[kind][-1]
    code, out, err = _run("db", "status", store_url=url)
    assert code == 0, err
    assert f"store: {'sqlite' if kind == 'sqlite' else 'postgresql'} " in out
    assert f"schema version: 0 (this build ships {latest})" in out
    pending = out.split("pending:\n", 1)[1]
    assert [line.split()[0] for line in pending.splitlines()] == [f"{v:04d}" for v in shipped]
    if kind == "sqlite":
        assert not Path(location).exists(), "db status created the database file"
    else:
        with psycopg.connect(location) as conn:
            row = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()
        assert row == (None,), "db status wrote to the database"

    code, out, err = _run("db", "upgrade", store_url=url)
    assert code == 0, err
    assert [line.split()[1] for line in out.splitlines() if line.startswith("applied 0")] == [
        f"{v:04d}" for v in shipped
    ]

    code, out, err = _run("db", "status", store_url=url)
    assert code == 0, err
    assert f"schema version: {latest} (this build ships {latest})" in out
    assert out.rstrip().endswith("pending:\n  none")
    applied = out.split("applied:\n", 1)[1].split("pending:", 1)[0]
    assert [line.split()[:2] for line in applied.splitlines()] == [
        [f"{m.version:04d}", m.name] for m in migrations(kind)
    ]

    code, out, err = _run("db", "upgrade", store_url=url)
    assert code == 0 and "nothing to apply" in out, err


@pytest.mark.postgres
def test_db_status_names_why_the_database_is_unreachable(pg_dsn: str) -> None:
    params = conninfo_to_dict(pg_dsn)
    params["dbname"] = "no_such_database"
    url = _pg_url(make_conninfo(**params))
    code, _out, err = _run("db", "status", store_url=url)
    assert code == 1
    assert "cannot open the PostgreSQL store" in err and "does not exist" in err

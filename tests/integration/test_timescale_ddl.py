"""TimescaleStore's TimescaleDB migration against a real TimescaleDB 2.23 (WASM in PGlite, npm).

DDL only: the peer crashes on COPY, which the store's writes use. The server is tests/peers/.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from services.store.migrate import migrations
from services.store.timescale import TimescaleStore
from tests.harness import free_port
from tests.peers.harness import pglite_timescale

pytestmark = pytest.mark.peers


TEST_TIMEOUT_S = 60.0
DAY_NS = 86_400_000_000_000
# The integer ns time column of each hypertable and its intended chunk interval.
HYPERTABLES = {
    "readings": ("ts_ns", DAY_NS),
    "buckets": ("bucket_start_ns", 30 * DAY_NS),
}


@pytest.fixture
def timescale_dsn(peers_installed: None) -> Iterator[str]:
    """A fresh, empty PGlite + TimescaleDB per test."""
    with pglite_timescale(free_port()) as dsn:
        yield dsn


async def _query(store: TimescaleStore, sql: str) -> list[tuple[Any, ...]]:
    # Through the store's own pool: the peer serves one client at a time, so a second
    # connection would queue until the store closes.
    async with store.pool.connection() as conn:
        cur = await conn.execute(sql.encode())
        return await cur.fetchall()


async def test_migration_creates_integer_ns_hypertables(timescale_dsn: str) -> None:
    async with (
        asyncio.timeout(TEST_TIMEOUT_S),
        TimescaleStore(timescale_dsn, max_connections=1) as store,
    ):
        assert store.timescale is True

        installed = await _query(
            store, "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
        )
        assert len(installed) == 1, "CREATE EXTENSION timescaledb did not run"

        hypertables = await _query(
            store,
            "SELECT hypertable_name FROM timescaledb_information.hypertables"
            " WHERE hypertable_schema = 'public'",
        )
        assert {name for (name,) in hypertables} >= set(HYPERTABLES)

        dims = await _query(
            store,
            "SELECT hypertable_name, column_name, column_type::text, dimension_type,"
            " integer_interval, integer_now_func"
            " FROM timescaledb_information.dimensions WHERE hypertable_schema = 'public'",
        )
        by_table: dict[str, list[tuple[Any, ...]]] = {}
        for table, *rest in dims:
            by_table.setdefault(table, []).append(tuple(rest))
        for table, (column, interval) in HYPERTABLES.items():
            assert by_table.get(table) == [
                (column, "bigint", "Time", interval, "plantpulse_now_ns")
            ], f"{table}: {by_table.get(table)}"


async def test_migration_is_recorded_and_applies_nothing_twice(timescale_dsn: str) -> None:
    expected = [(m.version, m.name) for m in migrations("postgres")]
    async with asyncio.timeout(TEST_TIMEOUT_S):
        async with TimescaleStore(timescale_dsn, max_connections=1) as store:
            recorded = await _query(
                store, "SELECT version, name FROM schema_migrations ORDER BY version"
            )
            assert recorded == expected
            assert await store.migrate() == []

        # A second store (a restarted replica) finds everything applied, hypertables included.
        async with TimescaleStore(timescale_dsn, max_connections=1) as again:
            assert again.timescale is True
            assert await again.migrate() == []
            recorded = await _query(
                again, "SELECT version, name FROM schema_migrations ORDER BY version"
            )
            assert recorded == expected
            hypertables = await _query(
                again,
                "SELECT count(*) FROM timescaledb_information.hypertables"
                " WHERE hypertable_schema = 'public'",
            )
            assert hypertables == [(len(HYPERTABLES),)]

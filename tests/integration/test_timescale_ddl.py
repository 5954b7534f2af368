"""TimescaleStore's TimescaleDB migrations against a real TimescaleDB 2.23 (WASM in PGlite, npm).

Hypertables, compression, retention and continuous aggregates, with small data written by plain
INSERTs: the peer crashes on COPY, which the store's writes use. PGlite runs no background
workers, so the policies' jobs run in the foreground with `CALL run_job(...)`. The server is
tests/peers/. The roll-ups are also checked on plain PostgreSQL, where they are ordinary views.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
import pytest

from services.store.migrate import migrations, upgrade_postgres
from services.store.timescale import TimescaleStore
from tests.harness import free_port
from tests.peers.harness import pglite_timescale

TEST_TIMEOUT_S = 60.0
MINUTE_NS = 60_000_000_000
HOUR_NS = 60 * MINUTE_NS
DAY_NS = 24 * HOUR_NS
# The integer ns time column of each hypertable and its intended chunk interval.
HYPERTABLES = {
    "readings": ("ts_ns", DAY_NS),
    "buckets": ("bucket_start_ns", 30 * DAY_NS),
}
COMPRESS_AFTER_NS = 7 * DAY_NS
DROP_AFTER_NS = 400 * DAY_NS
ROLL_UPS = {"buckets_hourly": HOUR_NS, "buckets_daily": DAY_NS}
ROLL_UP_COLUMNS = "channel_id, bucket_start_ns, n, n_good, sum, estimated, min, max, n_buckets"
BUCKET_COLUMNS = "channel_id, bucket_start_ns, n, n_good, sum, min, max, estimated"
D = 1_699_920_000_000_000_000  # 2023-11-14T00:00Z
# (channel, start, n, n_good, sum, min, max, estimated): two hours, two days, a bucket without a
# good sample and one before the epoch (the roll-ups floor, like time_bucket). Sums are exact in
# binary, so the order of summation cannot change them.
SAMPLE_BUCKETS = [
    ("a", D + 23 * HOUR_NS + 58 * MINUTE_NS, 3, 3, 6.0, 1.0, 3.0, 0.0),
    ("a", D + 23 * HOUR_NS + 59 * MINUTE_NS, 2, 1, 5.0, 2.5, 2.5, 0.5),
    ("a", D + DAY_NS, 1, 0, 0.0, None, None, 0.25),
    ("a", D + DAY_NS + 30 * MINUTE_NS, 2, 2, 3.0, 1.25, 1.75, 0.0),
    ("b", D + 23 * HOUR_NS + 58 * MINUTE_NS, 4, 4, 8.0, -1.0, 5.0, 0.0),
    ("b", -HOUR_NS + MINUTE_NS, 1, 1, 1.5, 1.5, 1.5, 0.0),
]


@pytest.fixture
def timescale_dsn(peers_installed: None) -> Iterator[str]:
    """A fresh, empty PGlite + TimescaleDB per test."""
    with pglite_timescale(free_port()) as dsn:
        yield dsn


async def _query(
    store: TimescaleStore, sql: str, params: Sequence[Any] = ()
) -> list[tuple[Any, ...]]:
    # Through the store's own pool: the peer serves one client at a time, so a second
    # connection would queue until the store closes.
    async with store.pool.connection() as conn:
        cur = await conn.execute(sql.encode(), params)
        return await cur.fetchall() if cur.description else []


async def _call(store: TimescaleStore, sql: str, params: Sequence[Any] = ()) -> None:
    """A statement that refuses to run inside a transaction block (refreshes, jobs)."""
    async with store.pool.connection() as conn:
        await conn.set_autocommit(True)
        try:
            await conn.execute(sql.encode(), params)
        finally:
            await conn.set_autocommit(False)


async def _run_job(store: TimescaleStore, proc: str, table: str) -> None:
    rows = await _query(
        store,
        "SELECT job_id FROM timescaledb_information.jobs"
        " WHERE proc_name = %s AND hypertable_name = %s",
        (proc, table),
    )
    assert len(rows) == 1, f"{proc} on {table}: {rows}"
    await _call(store, "CALL run_job(%s)", (rows[0][0],))


async def _insert_buckets(store: TimescaleStore, rows: Sequence[tuple[Any, ...]]) -> None:
    values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s)"] * len(rows))
    params = [v for row in rows for v in row]
    await _query(store, f"INSERT INTO buckets ({BUCKET_COLUMNS}) VALUES {values}", params)


async def _insert_readings(store: TimescaleStore, rows: Sequence[tuple[Any, ...]]) -> None:
    values = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(rows))
    params = [v for row in rows for v in row]
    await _query(
        store,
        "INSERT INTO readings (channel_id, ts_ns, value, quality, receive_ts_ns, server_ts_ns)"
        f" VALUES {values} ON CONFLICT DO NOTHING",
        params,
    )


def _expected_roll_up(buckets: Sequence[tuple[Any, ...]], width_ns: int) -> list[tuple[Any, ...]]:
    """Roll-up rows as the views should give them, computed here (floored periods)."""
    groups: dict[tuple[str, int], list[tuple[Any, ...]]] = {}
    for row in buckets:
        groups.setdefault((row[0], row[1] // width_ns * width_ns), []).append(row)
    out = []
    for (channel, start), rows in sorted(groups.items()):
        mins = [r[5] for r in rows if r[5] is not None]
        maxs = [r[6] for r in rows if r[6] is not None]
        out.append(
            (
                channel,
                start,
                sum(r[2] for r in rows),
                sum(r[3] for r in rows),
                sum(r[4] for r in rows),
                sum(r[7] for r in rows),
                min(mins) if mins else None,
                max(maxs) if maxs else None,
                len(rows),
            )
        )
    return out


async def _roll_up(store: TimescaleStore, view: str) -> list[tuple[Any, ...]]:
    return await _query(
        store, f"SELECT {ROLL_UP_COLUMNS} FROM {view} ORDER BY channel_id, bucket_start_ns"
    )


async def _group_by(store: TimescaleStore, width_ns: int) -> list[tuple[Any, ...]]:
    """The same roll-up as a plain GROUP BY over the buckets hypertable."""
    return await _query(
        store,
        "SELECT channel_id, time_bucket(%s::bigint, bucket_start_ns) AS t,"
        " sum(n)::bigint, sum(n_good)::bigint, sum(sum), sum(estimated), min(min), max(max),"
        " count(*) FROM buckets GROUP BY 1, 2 ORDER BY 1, 2",
        (width_ns,),
    )


@pytest.mark.peers
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


@pytest.mark.peers
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


@pytest.mark.peers
async def test_compression_retention_and_roll_up_policies_are_set(timescale_dsn: str) -> None:
    async with (
        asyncio.timeout(TEST_TIMEOUT_S),
        TimescaleStore(timescale_dsn, max_connections=1) as store,
    ):
        settings = await _query(
            store,
            "SELECT hypertable_name, attname, segmentby_column_index, orderby_column_index,"
            " orderby_asc FROM timescaledb_information.compression_settings"
            " WHERE hypertable_schema = 'public'",
        )
        assert sorted(settings) == [
            ("readings", "channel_id", 1, None, None),
            ("readings", "ts_ns", None, 1, False),
        ]
        enabled = await _query(
            store,
            "SELECT hypertable_name, compression_enabled FROM timescaledb_information.hypertables"
            " WHERE hypertable_schema = 'public'",
        )
        assert dict(enabled) == {"readings": True, "buckets": False}

        jobs = await _query(
            store,
            "SELECT proc_name, hypertable_name, config FROM timescaledb_information.jobs"
            " WHERE hypertable_name IS NOT NULL",
        )
        by_policy = {(proc, table): config for proc, table, config in jobs}
        assert len(by_policy) == len(jobs), jobs
        assert set(by_policy) == {
            ("policy_compression", "readings"),
            ("policy_retention", "readings"),
            ("policy_refresh_continuous_aggregate", "buckets_hourly"),
            ("policy_refresh_continuous_aggregate", "buckets_daily"),
        }, "retention only on raw readings; buckets and roll-ups are kept"
        assert by_policy["policy_compression", "readings"]["compress_after"] == COMPRESS_AFTER_NS
        assert by_policy["policy_retention", "readings"]["drop_after"] == DROP_AFTER_NS
        for view, width in ROLL_UPS.items():
            config = by_policy["policy_refresh_continuous_aggregate", view]
            assert config["start_offset"] is None, "late corrections of any age are refreshed"
            assert config["end_offset"] == width

        caggs = await _query(
            store,
            "SELECT view_name, materialized_only FROM timescaledb_information.continuous_aggregates"
            " WHERE view_schema = 'public'",
        )
        assert dict(caggs) == dict.fromkeys(ROLL_UPS, False), "real-time aggregation is on"


@pytest.mark.peers
async def test_roll_ups_equal_a_group_by_before_and_after_refresh(timescale_dsn: str) -> None:
    async with (
        asyncio.timeout(TEST_TIMEOUT_S),
        TimescaleStore(timescale_dsn, max_connections=1) as store,
    ):
        await _insert_buckets(store, SAMPLE_BUCKETS)
        # Nothing materialised yet: real-time aggregation answers from the buckets.
        for view, width in ROLL_UPS.items():
            expected = _expected_roll_up(SAMPLE_BUCKETS, width)
            assert await _roll_up(store, view) == expected, view
            assert await _group_by(store, width) == expected, view

        materialized = dict(
            await _query(
                store,
                "SELECT view_name, format('%%I.%%I', materialization_hypertable_schema,"
                " materialization_hypertable_name)"
                " FROM timescaledb_information.continuous_aggregates",
            )
        )
        for view, width in ROLL_UPS.items():
            await _call(store, f"CALL refresh_continuous_aggregate('{view}', NULL, NULL)")
            stored = await _query(store, f"SELECT count(*) FROM {materialized[view]}")
            assert stored == [(len(_expected_roll_up(SAMPLE_BUCKETS, width)),)], view
            assert await _roll_up(store, view) == await _group_by(store, width), view

        # A late reading corrects a materialised bucket and a new bucket opens the current hour:
        # the refresh policies pick up the first, real-time aggregation serves the second.
        await _query(
            store,
            "UPDATE buckets SET n = n + 1, n_good = n_good + 1, sum = sum + 4.0, max = 4.0"
            " WHERE channel_id = 'a' AND bucket_start_ns = %s",
            (SAMPLE_BUCKETS[1][1],),
        )
        [(now_ns,)] = await _query(store, "SELECT plantpulse_now_ns()")
        current = ("a", now_ns // MINUTE_NS * MINUTE_NS, 1, 1, 7.0, 7.0, 7.0, 0.0)
        await _insert_buckets(store, [current])
        corrected = [
            SAMPLE_BUCKETS[0],
            ("a", SAMPLE_BUCKETS[1][1], 3, 2, 9.0, 2.5, 4.0, 0.5),
            *SAMPLE_BUCKETS[2:],
            current,
        ]
        for view, width in ROLL_UPS.items():
            await _run_job(store, "policy_refresh_continuous_aggregate", view)
            expected = _expected_roll_up(corrected, width)
            assert await _roll_up(store, view) == expected, view
            assert await _group_by(store, width) == expected, view


@pytest.mark.peers
async def test_compressed_readings_read_back_the_same(timescale_dsn: str) -> None:
    async with (
        asyncio.timeout(TEST_TIMEOUT_S),
        TimescaleStore(timescale_dsn, max_connections=1) as store,
    ):
        [(now_ns,)] = await _query(store, "SELECT plantpulse_now_ns()")
        old, older, recent = now_ns - 10 * DAY_NS, now_ns - 20 * DAY_NS, now_ns - 1_000_000_000
        readings = [
            ("a", older, 1.5, 0, older + 5, None),
            ("a", old, 2.5, 0, old + 5, old - 3),
            ("a", old + 1_000, None, 2, old + 6, None),
            ("a", old + 2_000, 4.0, 0, old + 7, None),
            ("b", old, -3.25, 0, old + 5, None),
            ("a", recent, 5.0, 0, recent + 5, None),
        ]
        await _insert_readings(store, readings)
        all_rows = "SELECT * FROM readings ORDER BY channel_id, ts_ns"
        before = await _query(store, all_rows)
        assert len(before) == len(readings)
        around = repr(await store.readings_around("a", old + 500, old + 1_500))  # NaN == NaN

        # One chunk compressed by hand, the other old one by the compression policy.
        [(chunk,)] = await _query(
            store, "SELECT show_chunks('readings', older_than => %s::bigint)", (old - DAY_NS,)
        )
        await _query(store, "SELECT compress_chunk(%s::regclass)", (chunk,))
        await _run_job(store, "policy_compression", "readings")
        chunks = await _query(
            store,
            "SELECT range_start_integer, is_compressed FROM timescaledb_information.chunks"
            " WHERE hypertable_name = 'readings' ORDER BY range_start_integer",
        )
        assert [compressed for _, compressed in chunks] == [True, True, False], chunks

        assert await _query(store, all_rows) == before
        assert repr(await store.readings_around("a", old + 500, old + 1_500)) == around
        # A re-delivered reading leaves the compressed one as it was; a late one joins it.
        await _insert_readings(store, [("a", old, 99.0, 0, now_ns, None)])
        late = ("c", old + 3_000, 6.5, 0, now_ns, None)
        await _insert_readings(store, [late])
        assert await _query(store, all_rows) == sorted([*before, late])


@pytest.mark.peers
async def test_retention_drops_old_raw_readings_only(timescale_dsn: str) -> None:
    async with (
        asyncio.timeout(TEST_TIMEOUT_S),
        TimescaleStore(timescale_dsn, max_connections=1) as store,
    ):
        [(now_ns,)] = await _query(store, "SELECT plantpulse_now_ns()")
        expired, kept = now_ns - DROP_AFTER_NS - 2 * DAY_NS, now_ns - DROP_AFTER_NS + 2 * DAY_NS
        await _insert_readings(
            store,
            [("a", expired, 1.0, 0, expired, None), ("a", kept, 2.0, 0, kept, None)],
        )
        old_bucket = ("a", expired // MINUTE_NS * MINUTE_NS, 1, 1, 1.0, 1.0, 1.0, 0.0)
        await _insert_buckets(store, [old_bucket])

        await _run_job(store, "policy_retention", "readings")

        assert await _query(store, "SELECT ts_ns FROM readings") == [(kept,)]
        assert [b.bucket_start_ns for b in await store.series("a", old_bucket[1], kept)] == [
            old_bucket[1]
        ]


@pytest.mark.postgres
async def test_roll_ups_on_plain_postgres_give_the_same_rows(pg_dsn: str) -> None:
    async with asyncio.timeout(TEST_TIMEOUT_S), TimescaleStore(pg_dsn) as store:
        await _insert_buckets(store, SAMPLE_BUCKETS)
        for view, width in ROLL_UPS.items():
            assert await _roll_up(store, view) == _expected_roll_up(SAMPLE_BUCKETS, width), view


@pytest.mark.peers
async def test_a_database_begun_on_plain_postgresql_stays_plain_when_timescaledb_comes(
    timescale_dsn: str,
) -> None:
    """The package installed later must not break start-up: TimescaleDB parts are applied to
    new databases and to databases that have the extension, not to plain ones."""
    async with asyncio.timeout(TEST_TIMEOUT_S):
        async with await psycopg.AsyncConnection.connect(timescale_dsn) as conn:
            await upgrade_postgres(conn, timescale=False, upto=5)  # as on plain PostgreSQL
        async with TimescaleStore(timescale_dsn, max_connections=1) as store:
            versions = await _query(store, "SELECT max(version) FROM schema_migrations")
            installed = await _query(
                store, "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'"
            )
    assert versions == [(migrations("postgres")[-1].version,)] and installed == []

"""The baseline of the store benchmarks: one psycopg binary COPY of reading rows into an
unindexed, unlogged table with the readings' columns."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import psycopg

TABLE = "bench_raw"
COLUMNS = (
    "(channel_id text, ts_ns bigint, value float8, quality int2, receive_ts_ns bigint,"
    " server_ts_ns bigint)"
)
TYPES = ["text", "int8", "float8", "int2", "int8", "int8"]
READINGS_COLUMNS = "(channel_id, ts_ns, value, quality, receive_ts_ns, server_ts_ns)"


@contextlib.asynccontextmanager
async def raw_table(
    conn: psycopg.AsyncConnection[Any], *, like_readings: bool = False
) -> AsyncIterator[str]:
    """The empty baseline table for the block, dropped after it: unindexed and unlogged, or
    like_readings, a copy of the readings table with its primary key."""
    await conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
    if like_readings:
        await conn.execute(f"CREATE TABLE {TABLE} (LIKE readings INCLUDING ALL)")
    else:
        await conn.execute(f"CREATE UNLOGGED TABLE {TABLE} {COLUMNS}")
    try:
        yield TABLE
    finally:
        await conn.execute(f"DROP TABLE {TABLE}")


async def copy_rows(conn: psycopg.AsyncConnection[Any], rows: Iterable[tuple[Any, ...]]) -> float:
    """Seconds to COPY the rows (in the readings' column order) into the baseline table."""
    started = time.perf_counter()
    sql = f"COPY {TABLE} {READINGS_COLUMNS} FROM STDIN (FORMAT BINARY)"
    async with conn.cursor() as cur, cur.copy(sql) as copy:
        copy.set_types(TYPES)
        for row in rows:
            await copy.write_row(row)
    return time.perf_counter() - started

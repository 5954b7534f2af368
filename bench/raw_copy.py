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


@contextlib.asynccontextmanager
async def raw_table(conn: psycopg.AsyncConnection[Any]) -> AsyncIterator[str]:
    """The empty baseline table for the block, dropped after it."""
    await conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
    await conn.execute(f"CREATE UNLOGGED TABLE {TABLE} {COLUMNS}")
    try:
        yield TABLE
    finally:
        await conn.execute(f"DROP TABLE {TABLE}")


async def copy_rows(conn: psycopg.AsyncConnection[Any], rows: Iterable[tuple[Any, ...]]) -> float:
    """Seconds to COPY the rows (in the readings' column order) into the baseline table."""
    started = time.perf_counter()
    async with conn.cursor() as cur, cur.copy(f"COPY {TABLE} FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(TYPES)
        for row in rows:
            await copy.write_row(row)
    return time.perf_counter() - started

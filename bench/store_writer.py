"""Store write throughput: TimescaleStore.write (COPY to staging + merge + state, one
transaction) against a raw psycopg binary COPY of the same readings into a bare table.

    python -m bench.store_writer [--readings N]      (PT_PG_DSN, or a throwaway local cluster)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

from bench.aggregator import batches
from compute.aggregate import ChannelSpec, step
from compute.model import NS_PER_S
from services.store import StoreWrite
from services.store import rows as r
from services.store.timescale import TimescaleStore


@contextlib.contextmanager
def database() -> Iterator[str]:
    if dsn := os.environ.get("PT_PG_DSN"):
        yield dsn
        return
    from tests.harness.postgres import postgres_cluster

    with tempfile.TemporaryDirectory() as d, postgres_cluster(Path(d)) as dsn:
        yield dsn


async def run(dsn: str, n: int) -> None:
    bs = batches(n, 500)
    specs = {c: ChannelSpec(is_counter=i % 2 == 0) for b in bs for i, c in enumerate(b.channel_ids)}
    result = step(bs, specs, {}, 60 * NS_PER_S)
    w = StoreWrite(
        readings=result.readings, buckets=result.buckets, state=result.state, events=result.events
    )
    rows = list(r.reading_rows(result.readings))

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("DROP TABLE IF EXISTS bench_raw")
        await conn.execute(
            "CREATE UNLOGGED TABLE bench_raw (channel_id text, ts_ns bigint, value float8,"
            " quality int2, receive_ts_ns bigint, server_ts_ns bigint)"
        )
        t = time.perf_counter()
        async with (
            conn.cursor() as cur,
            cur.copy("COPY bench_raw FROM STDIN (FORMAT BINARY)") as copy,
        ):
            copy.set_types(["text", "int8", "float8", "int2", "int8", "int8"])
            for row in rows:
                await copy.write_row(row)
        raw_s = time.perf_counter() - t
        await conn.execute("DROP TABLE bench_raw")

    async with TimescaleStore(dsn) as store:
        async with store.pool.connection() as conn:
            await conn.execute("TRUNCATE readings, buckets, channel_state, latest")
        t = time.perf_counter()
        await store.write(w)
        ours_s = time.perf_counter() - t
        t = time.perf_counter()
        await store.write(w)  # a redelivery: every row conflicts
        replay_s = time.perf_counter() - t

    n_rows = len(rows)
    print(f"readings: {n_rows:,}, bucket rows: {len(result.buckets.n):,}")
    print(f"raw COPY (baseline):      {raw_s:7.3f} s  {n_rows / raw_s / 1e3:8.1f} k rows/s")
    print(f"TimescaleStore.write:     {ours_s:7.3f} s  {n_rows / ours_s / 1e3:8.1f} k rows/s")
    print(f"same write replayed:      {replay_s:7.3f} s  {n_rows / replay_s / 1e3:8.1f} k rows/s")
    print(f"ratio write / raw COPY:   {ours_s / raw_s:7.2f}x the time")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--readings", type=int, default=200_000)
    args = ap.parse_args()
    with database() as dsn:
        asyncio.run(run(dsn, args.readings))


if __name__ == "__main__":
    main()

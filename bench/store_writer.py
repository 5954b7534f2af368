"""Store write throughput: TimescaleStore.write (COPY to staging + merge + state, one
transaction) against a raw psycopg binary COPY of the same readings into a bare table.

    python -m bench.store_writer [--readings N]      (PT_PG_DSN, or a throwaway local cluster)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

from bench.aggregator import batches
from bench.raw_copy import copy_rows, raw_table
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
    fresh = dataclasses.replace(w, new=result.fresh)  # as the aggregator writes new readings
    rows = list(r.reading_rows(result.readings))

    async with (
        await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn,
        raw_table(conn),
    ):
        raw_s = await copy_rows(conn, rows)

    async with TimescaleStore(dsn) as store:
        async with store.pool.connection() as conn:
            await conn.set_autocommit(True)
            async with raw_table(conn, like_readings=True):
                same_s = await copy_rows(conn, rows)

        async def timed(write: StoreWrite) -> float:
            started = time.perf_counter()
            await store.write(write)
            return time.perf_counter() - started

        async def empty() -> None:
            async with store.pool.connection() as conn:
                await conn.execute("TRUNCATE readings, buckets, channel_state, latest")

        await empty()
        new_s = await timed(fresh)  # straight into readings
        await empty()
        merged_s = await timed(w)  # every reading through staging and ON CONFLICT
        replay_s = await timed(w)  # a redelivery: every row conflicts

    n_rows = len(rows)
    print(f"readings: {n_rows:,}, bucket rows: {len(result.buckets.n):,}")
    for what, secs in (
        ("raw COPY (baseline)", raw_s),
        ("raw COPY, like readings", same_s),
        ("write, readings new", new_s),
        ("write, all merged", merged_s),
        ("same write replayed", replay_s),
    ):
        print(f"{what:<26}{secs:7.3f} s  {n_rows / secs / 1e3:8.1f} k rows/s")
    print(f"ratio of raw COPY's rate:  new {raw_s / new_s:.2f}, merged {raw_s / merged_s:.2f}")
    print("ratio of the rate of a raw COPY into a table like readings (its key included):")
    print(f"                           new {same_s / new_s:.2f}, merged {same_s / merged_s:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--readings", type=int, default=200_000)
    args = ap.parse_args()
    with database() as dsn:
        asyncio.run(run(dsn, args.readings))


if __name__ == "__main__":
    main()

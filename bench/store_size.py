"""Bytes stored per raw reading: TimescaleStore (plain PostgreSQL here) and SqliteStore, each fed
through compute.aggregate.step and Store.write as the aggregator does, against the raw bytes of
the columns and a raw COPY of the same rows into an unindexed, unlogged table.

    python -m bench.store_size [--readings N] [--step-readings S]   (PT_PG_DSN, or a throwaway
                                                                     local cluster)
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import psycopg

from bench.aggregator import batches
from bench.raw_copy import copy_rows, raw_table
from bench.store_writer import database
from compute.aggregate import ChannelSpec, ChannelState, Readings, step
from compute.model import NS_PER_S, ReadingBatch
from services.store import StoreWrite
from services.store import rows as r
from services.store.sqlite import SqliteStore
from services.store.timescale import TimescaleStore

CHANNELS = 500
BUCKET_NS = 60 * NS_PER_S
# the columns a reading holds, besides its channel id: ts, value, quality (1 byte), receive, server
FIXED_BYTES = 8 + 8 + 1 + 8 + 8
# bench.aggregator's readings start at ts 0 and arrive at receive_ts_ns 0; SQLite stores integers
# as varints (0 in no bytes), so they are moved to 2025-01-01 and received 0.2 s after the poll
EPOCH_NS = 1_735_689_600 * NS_PER_S
RECEIVE_LAG_NS = NS_PER_S // 5


class Store(Protocol):
    async def load_state(self, channel_ids: Sequence[str]) -> dict[str, ChannelState]: ...
    async def write(self, w: StoreWrite) -> None: ...


def steps(n: int, per_step: int, epoch_ns: int) -> Iterator[list[ReadingBatch]]:
    """bench.aggregator's meters (1 s polls), cut in time into steps of about per_step readings,
    each batch received RECEIVE_LAG_NS after its last poll."""
    bs = batches(n, CHANNELS)
    polls = max(1, per_step // CHANNELS)
    total = bs[0].size // len(bs[0].channel_ids)
    for p in range(0, total, polls):
        out = []
        for b in bs:
            k = len(b.channel_ids)
            s = slice(p * k, min(p + polls, total) * k)
            out.append(
                ReadingBatch(
                    meter_id=b.meter_id,
                    channel_ids=b.channel_ids,
                    channel_index=b.channel_index[s],
                    ts_ns=b.ts_ns[s] + epoch_ns,
                    value=b.value[s],
                    quality=b.quality[s],
                    server_ts_ns=b.server_ts_ns[s] + epoch_ns,
                    receive_ts_ns=int(b.ts_ns[s][-1]) + epoch_ns + RECEIVE_LAG_NS,
                )
            )
        yield out


async def fill(store: Store, n: int, per_step: int, epoch_ns: int) -> tuple[list[Readings], float]:
    """The aggregator's path, step by step: load_state, step, write(new=fresh). Returns the
    readings written and the seconds spent."""
    written, t = [], time.perf_counter()
    for bs in steps(n, per_step, epoch_ns):
        specs = {
            c: ChannelSpec(is_counter=i % 2 == 0) for b in bs for i, c in enumerate(b.channel_ids)
        }
        state = await store.load_state(sorted(specs))
        result = step(bs, specs, state, BUCKET_NS)
        await store.write(
            StoreWrite(
                readings=result.readings,
                buckets=result.buckets,
                state=result.state,
                events=result.events,
                new=result.fresh,
            )
        )
        written.append(result.readings)
    return written, time.perf_counter() - t


async def sizes(conn: psycopg.AsyncConnection[Any], table: str) -> tuple[int, int, int, int]:
    """(rows, table incl. TOAST/FSM/VM, indexes, total) of a table, after VACUUM ANALYZE."""
    await conn.execute(f"VACUUM ANALYZE {table}".encode())
    cur = await conn.execute(
        f"SELECT count(*), pg_table_size('{table}'), pg_indexes_size('{table}'),"
        f" pg_total_relation_size('{table}') FROM {table}".encode()
    )
    row = await cur.fetchone()
    assert row is not None
    return row


def per(label: str, nbytes: float, n: int, base: float | None = None) -> str:
    ratio = f"  {nbytes / n / base:5.2f}x the raw columns" if base else ""
    return f"  {label:<40} {nbytes / n:7.1f} B/reading  ({nbytes / 2**20:7.1f} MiB){ratio}"


async def postgres(dsn: str, n: int, per_step: int, epoch_ns: int, raw: float) -> None:
    async with TimescaleStore(dsn) as store:
        async with store.pool.connection() as conn:
            await conn.execute("TRUNCATE readings, buckets, channel_state, latest, counter_events")
        readings, secs = await fill(store, n, per_step, epoch_ns)
        if store.timescale:
            print("  (TimescaleDB is installed: readings is a hypertable, chunks uncompressed)")
    written = sum(len(rs.ts_ns) for rs in readings)
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        n_rows, table, index, total = await sizes(conn, "readings")
        assert n_rows == written, (n_rows, written)
        b_rows, b_table, b_index, b_total = await sizes(conn, "buckets")
        await conn.execute("REINDEX TABLE readings")  # the same keys, packed (90 % leaf fill)
        cur = await conn.execute("SELECT pg_indexes_size('readings')")
        (packed,) = await cur.fetchone() or (0,)

        # baseline: the same rows, binary COPY into an unindexed, unlogged table
        async with raw_table(conn) as baseline:
            await copy_rows(conn, (row for rs in readings for row in r.reading_rows(rs)))
            c_rows, _, _, c_total = await sizes(conn, baseline)
        assert c_rows == written, (c_rows, written)

    print(f"PostgreSQL (TimescaleStore.write, {secs:.1f} s to write {written:,} readings):")
    print(per("baseline: raw COPY, unindexed, unlogged", c_total, n_rows, raw))
    print(per("readings total (table+indexes+TOAST)", total, n_rows, raw))
    print(per("  of which table (heap, TOAST, FSM, VM)", table, n_rows, raw))
    print(per("  of which indexes (primary key)", index, n_rows, raw))
    print(per("  the same index after REINDEX", packed, n_rows, raw))
    print(per(f"buckets total ({b_rows:,} rows)", b_total, n_rows))
    print(per("  of which table", b_table, n_rows))
    print(per("  of which indexes", b_index, n_rows))
    print(per("readings + buckets", total + b_total, n_rows, raw))
    print(f"  ratio readings / raw COPY:               {total / c_total:7.2f}x")


async def sqlite(n: int, per_step: int, epoch_ns: int, raw: float) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "store.db"
        async with SqliteStore(path) as store:
            readings, secs = await fill(store, n, per_step, epoch_ns)
        written = sum(len(rs.ts_ns) for rs in readings)
        db = sqlite3.connect(path)
        try:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            wal = path.with_name(path.name + "-wal")
            wal_bytes = wal.stat().st_size if wal.exists() else 0
            file_bytes = path.stat().st_size
            (n_rows,) = db.execute("SELECT count(*) FROM readings").fetchone()
            (b_rows,) = db.execute("SELECT count(*) FROM buckets").fetchone()
            (free,) = db.execute("PRAGMA freelist_count").fetchone()
            (page,) = db.execute("PRAGMA page_size").fetchone()
            try:
                stat = db.execute(
                    "SELECT name, sum(pgsize), sum(unused) FROM dbstat GROUP BY name"
                    " ORDER BY 2 DESC"
                ).fetchall()
            except sqlite3.OperationalError:
                stat = None
        finally:
            db.close()
    assert n_rows == written, (n_rows, written)
    print(f"SQLite (SqliteStore.write, {secs:.1f} s to write {written:,} readings):")
    print(per("file after wal_checkpoint(TRUNCATE)", file_bytes, n_rows, raw))
    print(f"  (WAL left: {wal_bytes} B, free pages: {free}, page size {page} B)")
    if stat is None:
        print("  dbstat: not compiled into this SQLite build")
        return
    by_name = {name: (size, unused) for name, size, unused in stat}
    for name in ("readings", "buckets"):
        size, unused = by_name.pop(name, (0, 0))
        rows = "" if name == "readings" else f" ({b_rows:,} rows)"
        print(per(f"dbstat {name}{rows}", size, n_rows, raw if name == "readings" else None))
        print(f"    of which unused bytes in its pages: {unused / n_rows:7.1f} B/reading")
    rest = sum(size for size, _ in by_name.values())
    print(per("dbstat every other table and index", rest, n_rows))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--readings", type=int, default=1_000_000)
    ap.add_argument("--step-readings", type=int, default=100_000)
    ap.add_argument("--epoch-ns", type=int, default=EPOCH_NS, help="0: timestamps as generated")
    args = ap.parse_args()
    n, per_step, epoch_ns = args.readings, args.step_readings, args.epoch_ns

    ids = [c for b in batches(CHANNELS, CHANNELS) for c in b.channel_ids]  # one poll
    id_bytes = sum(len(c.encode()) for c in ids) / len(ids)
    raw = id_bytes + FIXED_BYTES
    print(f"readings: {n:,} ({CHANNELS} channels, 1 s polls, half counters), steps of {per_step:,}")
    print(
        f"baseline: raw column bytes {raw:.1f} B/reading"
        f" (channel id {id_bytes:.1f} + 8 ts + 8 value + 1 quality + 8 receive + 8 server)"
    )
    t = time.perf_counter()
    with database() as dsn:
        asyncio.run(postgres(dsn, n, per_step, epoch_ns, raw))
    asyncio.run(sqlite(n, per_step, epoch_ns, raw))
    print(
        "TimescaleDB columnstore compression (segmentby channel_id, orderby ts_ns DESC): not"
        " measured, TimescaleDB is not installed and PGlite refuses COPY and large data"
    )
    print(f"wall time: {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()

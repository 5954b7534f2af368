"""End to end: Kafka -> the real Aggregator.run() -> TimescaleStore on PostgreSQL, sustained
readings/s, against a raw psycopg binary COPY of the same reading rows into an unlogged table.

    python -m bench.pipeline [--channels C] [--polls P] [--partitions K]

The broker and the throwaway cluster of the test harness run on this machine, beside the bench.
ReadingBatch messages (one per meter per 1 s poll, compute.codec) are produced first; then one
Aggregator consumes them as a consumer group, timed from the first message in hand to the commit
of the last one, and the group's committed offsets and the stored rows are checked afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import psycopg
from aiokafka.admin import AIOKafkaAdminClient

from bench.quix_compare import produce_batches
from bench.raw_copy import copy_rows, raw_table
from compute.aggregate import ChannelState, step
from compute.model import NS_PER_S, Quality, ReadingBatch
from compute.plant import Plant
from services.aggregator import Aggregator, channel_specs
from services.bus import Message, Subscription
from services.bus.kafka import KafkaBus
from services.store import Bucket, StoreWrite
from services.store.timescale import TimescaleStore
from tests.harness.kafka import kafka_broker
from tests.harness.postgres import postgres_cluster
from tests.plants import meter, one_site

PER_METER = 50
WRAP_BITS = 16  # every fourth channel: a counter that wraps at 65,536 during the run
TIMEOUT_S = 300.0
GOAL_PER_S = 150_000

# ---- the plant and its readings (also used by bench.aggregator_memory) ------------------------


def channel_def(i: int) -> dict[str, Any]:
    """Even channels are electricity counters (every fourth wraps), odd ones gauges."""
    cid = f"c{i:02d}"
    node = {"node_id": f"ns=2;s={cid}"}
    if i % 2:
        return {"id": cid, "unit": "x", "kind": "gauge", "utility": "environment", **node}
    wrap = {"wrap_bits": WRAP_BITS} if i % 4 == 0 else {}
    return {"id": cid, "unit": "kWh", "kind": "counter", "utility": "electricity", **node, **wrap}


def plant_data(n_channels: int, per_meter: int = PER_METER) -> list[dict[str, Any]]:
    """The meters of a plant of n_channels, as a loaded plant file holds them."""
    chans = [channel_def(i) for i in range(per_meter)]
    return [
        meter(f"m{m}", "opcua", "opc.tcp://plant:4840", chans)
        for m in range(n_channels // per_meter)
    ]


def plant_of(n_channels: int, per_meter: int = PER_METER) -> Plant:
    return one_site(plant_data(n_channels, per_meter))


def poll_batches(
    n_channels: int, polls: int, t0_ns: int, per_meter: int = PER_METER
) -> list[ReadingBatch]:
    """One batch per meter per 1 s poll, in the order the gateways publish them; channel ids
    are the plant's keys ("m7.c03"). Counters advance 0-2 a second, gauges walk, 1 % is bad."""
    rng = np.random.default_rng(1)
    i = np.arange(n_channels) % per_meter
    is_counter, wraps = i % 2 == 0, i % 4 == 0
    steps = rng.random((polls, n_channels)) * 2.0
    steps[:, ~is_counter] -= 1.0
    start = np.where(wraps, 2.0**WRAP_BITS - polls / 2, 1_000.0 * rng.random(n_channels))
    values = np.cumsum(steps, axis=0) + start
    values[:, wraps] %= 2.0**WRAP_BITS
    quality = np.where(rng.random((polls, n_channels)) < 0.01, Quality.BAD, Quality.GOOD)
    quality = quality.astype(np.uint8)
    index = np.arange(per_meter, dtype=np.uint16)
    tables = [
        (f"m{m}", tuple(f"m{m}.c{k:02d}" for k in range(per_meter)))
        for m in range(n_channels // per_meter)
    ]
    out = []
    for p in range(polls):
        ts_ns = t0_ns + p * NS_PER_S
        ts = np.full(per_meter, ts_ns, np.int64)
        for m, (meter_id, ids) in enumerate(tables):
            cols = slice(m * per_meter, (m + 1) * per_meter)
            out.append(
                ReadingBatch(
                    meter_id=meter_id,
                    channel_ids=ids,
                    channel_index=index,
                    ts_ns=ts,
                    value=values[p, cols],
                    quality=quality[p, cols],
                    server_ts_ns=ts,
                    receive_ts_ns=ts_ns + 50_000_000,
                )
            )
    return out


# ---- instrumentation: the Store and Bus ports, timed -------------------------------------------


# ---- CPU of the other processes on the machine: the broker and the database server -----------


def _stat(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()  # from field 3 (state) on


def process_cpu_s(pid: int, children: bool = False) -> float:
    """CPU seconds of a process; with its direct children, live and reaped (PG's backends)."""
    tick = os.sysconf("SC_CLK_TCK")
    f = _stat(pid)
    total = int(f[11]) + int(f[12]) + (int(f[13]) + int(f[14]) if children else 0)
    if children:
        for p in Path("/proc").iterdir():
            if p.name.isdigit() and int(p.name) != pid:
                with contextlib.suppress(OSError, IndexError):
                    c = _stat(int(p.name))
                    if int(c[1]) == pid:
                        total += int(c[11]) + int(c[12])
    return total / tick


def broker_pid(marker: str) -> int | None:
    """The broker's JVM: its command line names our server.properties."""
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            with contextlib.suppress(OSError):
                cmd = (p / "cmdline").read_bytes().decode(errors="replace")
                if "kafka.Kafka" in cmd and marker in cmd:
                    return int(p.name)
    return None


@dataclass
class CpuProbe:
    """CPU seconds of the bench process, the PostgreSQL server (postmaster and backends) and
    the Kafka broker, read from /proc."""

    postmaster: int | None = None
    broker: int | None = None

    def read(self) -> dict[str, float]:
        out = {"bench process": time.process_time()}
        with contextlib.suppress(OSError, IndexError, ValueError):
            if self.postmaster:
                out["PostgreSQL"] = process_cpu_s(self.postmaster, children=True)
            if self.broker:
                out["Kafka broker"] = process_cpu_s(self.broker)
        return out


@dataclass
class Spent:
    """Seconds spent in each port call, and what went through them."""

    s: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    writes: int = 0
    readings_written: int = 0
    buckets_written: int = 0
    timescale: bool = False
    committed: int = 0
    rewinds: int = 0
    first_poll: float = 0.0
    last_commit: float = 0.0
    in_write: bool = False
    sql: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # inside writes
    probe: CpuProbe = field(default_factory=CpuProbe)
    cpu_first: dict[str, float] = field(default_factory=dict)
    cpu_last: dict[str, float] = field(default_factory=dict)


class TimedStore:
    """TimescaleStore with the time spent in each call added up."""

    def __init__(self, inner: TimescaleStore, spent: Spent) -> None:
        self.inner, self.spent = inner, spent

    async def write(self, w: StoreWrite) -> None:
        t = time.perf_counter()
        self.spent.in_write = True
        try:
            await self.inner.write(w)
        finally:
            self.spent.in_write = False
        self.spent.s["store.write"] += time.perf_counter() - t
        self.spent.writes += 1
        self.spent.readings_written += len(w.readings.ts_ns)
        self.spent.buckets_written += len(w.buckets.n)

    async def load_state(self, channel_ids: Sequence[str]) -> dict[str, ChannelState]:
        t = time.perf_counter()
        out = await self.inner.load_state(channel_ids)
        self.spent.s["store.load_state + series_many"] += time.perf_counter() - t
        return out

    async def series_many(
        self, channel_ids: Sequence[str], start_ns: int, end_ns: int
    ) -> list[Bucket]:
        t = time.perf_counter()
        out = await self.inner.series_many(channel_ids, start_ns, end_ns)
        self.spent.s["store.load_state + series_many"] += time.perf_counter() - t
        return out

    def __getattr__(self, name: str) -> Any:  # the read side, not used by the aggregator's loop
        return getattr(self.inner, name)


def _label(query: Any) -> str:
    """The first three words of each statement: "INSERT INTO readings + INSERT INTO buckets"."""
    text = query.decode() if isinstance(query, bytes) else str(query)
    return " + ".join(" ".join(q.split()[:3]) for q in text.split(";") if q.strip())


def timed_statements(spent: Spent) -> contextlib.AbstractContextManager[Any]:
    """psycopg's cursor execute and executemany, timed by statement while a write runs: the
    split of store.write between its statements and the rest (the COPYs, the commit)."""
    execute, executemany = psycopg.AsyncCursor.execute, psycopg.AsyncCursor.executemany

    async def timed_execute(cur: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return await execute(cur, query, *args, **kwargs)
        finally:
            if spent.in_write:
                spent.sql[_label(query)] += time.perf_counter() - t

    async def timed_executemany(cur: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        t = time.perf_counter()
        try:
            return await executemany(cur, query, *args, **kwargs)
        finally:
            if spent.in_write:
                spent.sql[f"executemany: {_label(query)}"] += time.perf_counter() - t

    return mock.patch.multiple(
        psycopg.AsyncCursor, execute=timed_execute, executemany=timed_executemany
    )


class TimedSub:
    def __init__(self, inner: Subscription, spent: Spent, n_messages: int, done: asyncio.Event):
        self.inner, self.spent, self.n_messages, self.done = inner, spent, n_messages, done

    async def poll(self, max_records: int, timeout_s: float) -> list[Message]:
        t = time.perf_counter()
        got = await self.inner.poll(max_records, timeout_s)
        now = time.perf_counter()
        if got and not self.spent.first_poll:  # the clock starts with the first message in hand
            self.spent.first_poll, self.spent.cpu_first = now, self.spent.probe.read()
        elif self.spent.first_poll:
            self.spent.s["bus.poll"] += now - t
        return got

    async def commit(self, messages: Sequence[Message]) -> None:
        t = time.perf_counter()
        await self.inner.commit(messages)
        now = time.perf_counter()
        self.spent.s["bus.commit"] += now - t
        self.spent.committed += len(messages)
        if self.spent.committed >= self.n_messages:
            self.spent.last_commit, self.spent.cpu_last = now, self.spent.probe.read()
            self.done.set()

    async def rewind(self) -> None:
        self.spent.rewinds += 1
        await self.inner.rewind()


class TimedBus:
    """KafkaBus whose subscription times poll and commit and says when all is committed."""

    def __init__(self, inner: KafkaBus, spent: Spent, n_messages: int) -> None:
        self.inner, self.spent, self.n_messages = inner, spent, n_messages
        self.done = asyncio.Event()

    async def publish(
        self, topic: str, key: bytes, value: bytes, headers: Sequence[tuple[str, bytes]] = ()
    ) -> None:
        t = time.perf_counter()
        await self.inner.publish(topic, key, value, headers)
        self.spent.s["bus.publish (live figures)"] += time.perf_counter() - t

    @contextlib.asynccontextmanager
    async def subscribe(self, topic: str, group: str) -> AsyncIterator[TimedSub]:
        async with self.inner.subscribe(topic, group) as sub:
            yield TimedSub(sub, self.spent, self.n_messages, self.done)


# ---- the two contenders ------------------------------------------------------------------------


def rows_of(batches: Sequence[ReadingBatch]) -> Iterator[tuple[Any, ...]]:
    """The readings table's rows, straight from the batches' columns."""
    for b in batches:
        ids, rt = b.channel_ids, b.receive_ts_ns
        for i, t, v, q, st in zip(
            b.channel_index.tolist(),
            b.ts_ns.tolist(),
            b.value.tolist(),
            b.quality.tolist(),
            b.server_ts_ns.tolist(),
            strict=True,
        ):
            yield ids[i], t, v, q, rt, st


async def raw_copy(dsn: str, batches: Sequence[ReadingBatch]) -> float:
    """Seconds for one binary COPY of every reading into an unindexed, unlogged table."""
    async with (
        await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn,
        raw_table(conn),
    ):
        return await copy_rows(conn, rows_of(batches))


async def run_until_committed(
    agg: Aggregator, bus: TimedBus, spent: Spent, n_messages: int
) -> None:
    task = asyncio.create_task(agg.run())
    waiter = asyncio.create_task(bus.done.wait())
    finished, _ = await asyncio.wait(
        {task, waiter}, timeout=TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
    )
    for t in (task, waiter):
        t.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    if waiter not in finished:
        raise RuntimeError(
            f"{spent.committed:,} of {n_messages:,} messages committed in {TIMEOUT_S} s"
        )


async def ours(
    bootstrap: str, dsn: str, topic: str, plant: Plant, n_messages: int, spent: Spent
) -> None:
    """The real Aggregator.run() until the group has committed every message."""
    group = "bench-pipeline"
    async with KafkaBus(bootstrap) as kafka, TimescaleStore(dsn) as store:
        async with store.pool.connection() as conn:
            cur = await conn.execute("SELECT pg_backend_pid()")
            backend = await cur.fetchone()
        if backend:
            spent.probe.postmaster = int(_stat(int(backend[0]))[1])
        spent.timescale = store.timescale
        bus = TimedBus(kafka, spent, n_messages)
        agg = Aggregator(plant, bus, TimedStore(store, spent), group=group, topic=topic)
        with timed_statements(spent):
            await run_until_committed(agg, bus, spent, n_messages)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    if (n := sum(o.offset for o in offsets.values())) != n_messages:
        raise RuntimeError(f"the group committed {n:,} offsets, not {n_messages:,}")


async def stored_readings(dsn: str) -> int:
    async with await psycopg.AsyncConnection.connect(dsn) as conn:
        cur = await conn.execute("SELECT count(*) FROM readings")
        row = await cur.fetchone()
        return int(row[0]) if row else 0


# ---- the run ------------------------------------------------------------------------------------


def timed(what: str, t: float) -> None:
    print(f"  {what}: {time.perf_counter() - t:.1f} s", file=sys.stderr)


def run(work: Path, args: argparse.Namespace) -> None:
    load_start = os.getloadavg()[0]
    t = time.perf_counter()
    plant = plant_of(args.channels)
    t0_ns = (time.time_ns() // (60 * NS_PER_S)) * 60 * NS_PER_S - args.polls * NS_PER_S
    batches = poll_batches(args.channels, args.polls, t0_ns)
    n_readings = sum(b.size for b in batches)
    step(batches[:100], channel_specs(plant), {}, 60 * NS_PER_S)  # compile, or load numba's cache
    timed(f"built {len(batches):,} batches of {n_readings:,} readings", t)

    topic = "bench.pipeline"
    spent = Spent()
    t = time.perf_counter()
    with (
        kafka_broker(work / "kafka") as bootstrap,
        postgres_cluster(work / "pg") as dsn,
    ):
        timed("Kafka broker and PostgreSQL started", t)
        spent.probe.broker = broker_pid(str(work / "kafka"))

        async def prepare() -> None:
            async with KafkaBus(bootstrap) as bus:
                await bus.ensure_topics(
                    [topic, f"{topic}.dlq", "plantpulse.metrics"], args.partitions, 1
                )
            await produce_batches(bootstrap, topic, batches)

        t = time.perf_counter()
        asyncio.run(prepare())
        timed(f"produced {len(batches):,} messages", t)
        raw_s = asyncio.run(raw_copy(dsn, batches))
        asyncio.run(ours(bootstrap, dsn, topic, plant, len(batches), spent))
        stored = asyncio.run(stored_readings(dsn))
    if stored != n_readings:
        raise RuntimeError(f"{stored:,} readings stored, not {n_readings:,}")
    report(args, len(batches), n_readings, raw_s, spent, load_start)


def report(
    args: argparse.Namespace,
    n_messages: int,
    n_readings: int,
    raw_s: float,
    spent: Spent,
    load_start: float,
) -> None:
    wall_s = spent.last_commit - spent.first_poll
    ours_rate, raw_rate = n_readings / wall_s, n_readings / raw_s
    goal = "met" if ours_rate >= GOAL_PER_S else "not met"
    print(
        f"{args.channels:,} channels, {PER_METER} per meter, polled every second for"
        f" {args.polls:,} s: {n_readings:,} readings\nin {n_messages:,} ReadingBatch messages,"
        f" {args.partitions} partitions; broker, PostgreSQL and bench on this"
        f" {os.cpu_count()}-core machine\n(load average {load_start:.1f} at the start,"
        f" {os.getloadavg()[0]:.1f} at the end)"
    )
    print(f"{'':<52}{'wall s':>8}{'readings/s':>13}")
    for what, s in (
        ("baseline: raw binary COPY into an unlogged table", raw_s),
        ("ours: Kafka -> Aggregator.run() -> TimescaleStore", wall_s),
    ):
        print(f"{what:<52}{s:>8.2f}{n_readings / s:>13,.0f}")
    print(
        f"ratio ours / raw COPY: {ours_rate / raw_rate:.2f} of its rate"
        f" ({wall_s / raw_s:.1f}x the time); goal >= {GOAL_PER_S:,} readings/s: {goal}"
    )
    print(
        f"\nwhere the aggregator's wall time went ({spent.writes:,} store writes of"
        f" {spent.readings_written / max(1, spent.writes):,.0f} readings and"
        f" {spent.buckets_written / max(1, spent.writes):,.0f} bucket rows on average;"
        f"\nTimescaleDB {'installed' if spent.timescale else 'not installed: plain tables'}):"
    )
    parts = [*spent.s.items(), ("decode + step + live windows (the rest)", 0.0)]
    parts[-1] = (parts[-1][0], wall_s - sum(spent.s.values()))
    for what, s in sorted(parts, key=lambda kv: -kv[1]):
        print(f"  {what:<48}{s:>8.2f} s {s / wall_s:>5.0%}")
    write_s = spent.s.get("store.write", 0.0)
    if spent.sql:
        print("  inside store.write, by statement:")
        sql = [
            *spent.sql.items(),
            ("the rest: the COPYs (rows built in Python), commit", 0.0),
        ]
        sql[-1] = (sql[-1][0], write_s - sum(spent.sql.values()))
        for what, s in sorted(sql, key=lambda kv: -kv[1]):
            print(f"    {what:<56}{s:>8.2f} s {s / wall_s:>5.0%}")
    print("CPU over the same interval (cores busy = CPU s / wall s):")
    for what, last in spent.cpu_last.items():
        cpu = last - spent.cpu_first.get(what, last)
        print(f"  {what:<48}{cpu:>8.2f} s {cpu / wall_s:>5.2f} cores")
    if spent.rewinds:
        print(f"  ({spent.rewinds} rewinds after failed cycles: see the log)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--channels", type=int, default=1_000)
    ap.add_argument("--polls", type=int, default=3_000, help="seconds of 1 s polls")
    ap.add_argument("--partitions", type=int, default=4)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    # aiokafka logs the broker's start-up (no leader yet, no coordinator yet) as errors; a real
    # failure still raises or times out
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        run(Path(d), args)
    print(f"\n(total {time.perf_counter() - started:.0f} s, broker start and producing included)")


if __name__ == "__main__":
    main()

"""Period totals over one year of 1-minute buckets × 1,000 channels, read from the site-local
roll-ups (services.series.period_totals, what /v1/sites/{site}/totals uses), against summing the
base buckets directly for one channel's year.

    python -m bench.year_totals [--channels N] [--zones TZ ...] [--repeats R]
        (PT_PG_DSN, or a throwaway local cluster; on 2 cores about 4-5 minutes a zone, the load
        of the roll-ups most of it; --zones Asia/Shanghai for one)

Per zone: the year 2026 of 1-minute bucket deltas for every channel is generated one local day
at a time (numpy; worker processes), each day turned into hour, day and month roll-up deltas by
compute.rollups.rollup_deltas (the aggregator's own code) and written by TimescaleStore.write,
as the aggregator writes a step. The 525.6 M base buckets themselves are not stored (about
75 GB): only channel 0's whole year (the baseline) and every channel's buckets on the first and
last local day of the ragged period, so the partial days of its plan read real buckets.
Every query's totals are checked, for every channel, against the sums of the generated minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from multiprocessing import get_context
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import psycopg
import psycopg.sql

from bench.store_writer import database
from compute.aggregate import no_events, no_readings
from compute.buckets import BucketDeltas, select_buckets
from compute.calendar import Period, period_bounds, periods_between
from compute.model import NO_TS, NS_PER_S
from compute.rollups import plan, rollup_deltas
from services.series import period_totals
from services.store import ChannelTotal, StoreWrite
from services.store.timescale import TimescaleStore

YEAR = 2026
MINUTE_NS = 60 * NS_PER_S
ZONES = ("Asia/Shanghai", "Europe/Berlin")
# untimed calls before the timed ones: psycopg prepares a statement at its 6th execution on a
# connection and PostgreSQL plans a prepared statement afresh (custom plans) for its first 5
# executions, so from the 11th call on a connection runs the plan it will keep
WARMUP = 10
IN_FLIGHT = 6  # days computed ahead of the writer


@dataclass(frozen=True, slots=True)
class Query:
    name: str
    start_ns: int
    end_ns: int


def queries(tz: str) -> list[Query]:
    zone = ZoneInfo(tz)

    def local(month: int, day: int, hour: int, minute: int) -> int:
        return int(datetime(YEAR, month, day, hour, minute, tzinfo=zone).timestamp()) * NS_PER_S

    return [
        Query("year 2026", *period_bounds(tz, Period.YEAR, date(YEAR, 1, 1))),
        Query("month 2026-10", *period_bounds(tz, Period.MONTH, date(YEAR, 10, 1))),
        Query("day 2026-10-25", *period_bounds(tz, Period.DAY, date(YEAR, 10, 25))),
        Query("03-10T13:37..11-02T08:15", local(3, 10, 13, 37), local(11, 2, 8, 15)),
    ]


def channel_keys(n: int) -> tuple[str, ...]:
    """Plant-model keys ("meter.channel"), 50 channels a meter, so bench.year_report can build
    a plant over the same data."""
    return tuple(f"m{i // 50:03d}.c{i % 50:02d}" for i in range(n))


@dataclass(frozen=True, slots=True)
class Day:
    rollups: dict[str, BucketDeltas]
    buckets: BucketDeltas  # channel 0's, or every channel's on the ragged period's edge days
    expected: npt.NDArray[np.float64]  # [query, (sum, estimated, n), channel] of this day
    minutes: int


def minutes(keys: tuple[str, ...], index: int, start_ns: int, end_ns: int) -> BucketDeltas:
    """Every channel's 1-minute bucket deltas of one local day: consumption around a rate of
    its own with a daily swing; 1 % of buckets with a bad reading, 0.2 % spread over a gap."""
    rng = np.random.default_rng([YEAR, index])
    c, m = len(keys), (end_ns - start_ns) // MINUTE_NS
    channel = np.repeat(np.arange(c, dtype=np.int32), m)
    start = np.tile(start_ns + np.arange(m, dtype=np.int64) * MINUTE_NS, c)
    rate = 0.2 + (np.arange(c) % 37) * 0.05
    swing = 1.0 + 0.4 * np.sin(np.arange(m) * (2 * np.pi / m))
    value = (rate[:, None] * swing[None, :]).ravel() * rng.uniform(0.8, 1.2, c * m)
    gap = rng.random(c * m) < 0.002
    n = np.where(gap, 0, 60).astype(np.int64)
    n_good = n - (rng.random(c * m) < 0.01) * (~gap)
    nan = np.where(gap, np.nan, 1.0)
    return BucketDeltas(
        keys=keys,
        channel=channel,
        bucket_start_ns=start,
        n=n,
        n_good=n_good,
        sum=value,
        estimated=np.where(gap, value, 0.0),
        min=value * 0.9 * nan,
        max=value * 1.1 * nan,
        last=value * nan,
        last_ts_ns=np.where(gap, NO_TS, start + 59 * NS_PER_S),
    )


def day(
    n_channels: int,
    tz: str,
    index: int,
    start_ns: int,
    end_ns: int,
    windows: Sequence[tuple[int, int]],
    keep_all: bool,
) -> Day:
    """In a worker: one local day's minutes, their roll-up deltas, and their sums per window."""
    keys = channel_keys(n_channels)
    b = minutes(keys, index, start_ns, end_ns)
    rollups = rollup_deltas(b, {k: tz for k in keys})
    expected = np.zeros((len(windows), 3, n_channels))
    for i, (lo, hi) in enumerate(windows):
        inside = (b.bucket_start_ns >= lo) & (b.bucket_start_ns < hi)
        ch = b.channel[inside]
        for j, col in enumerate((b.sum, b.estimated, b.n)):
            expected[i, j] = np.bincount(ch, weights=col[inside], minlength=n_channels)
    return Day(
        rollups={p.value: d for p, d in rollups.items()},
        buckets=b if keep_all else select_buckets(b, b.channel == 0),
        expected=expected,
        minutes=len(b.n) // n_channels,
    )


async def load(
    store: TimescaleStore, pool: ProcessPoolExecutor, n_channels: int, tz: str, qs: list[Query]
) -> npt.NDArray[np.float64]:
    """Write the year's roll-ups (and the buckets kept) a local day at a time, each day in one
    TimescaleStore.write as an aggregator step; return the totals the minutes add up to."""
    keys = channel_keys(n_channels)
    starts = [int(s) for s in periods_between(qs[0].start_ns, qs[0].end_ns, tz, Period.DAY)]
    days = list(zip(starts, [*starts[1:], qs[0].end_ns], strict=True))
    ragged = qs[-1]
    edges = {s for s, e in days if s <= ragged.start_ns < e or s < ragged.end_ns <= e}
    windows = [(q.start_ns, q.end_ns) for q in qs]
    loop = asyncio.get_running_loop()
    expected = np.zeros((len(qs), 3, n_channels))
    counts = collections.Counter[str]()
    write_s, started = 0.0, time.perf_counter()
    pending: collections.deque[asyncio.Future[Day]] = collections.deque()

    async def write(d: Day) -> None:
        nonlocal write_s
        t = time.perf_counter()
        await store.write(
            StoreWrite(
                readings=no_readings(keys),
                buckets=d.buckets,
                state={},
                events=no_events(keys),
                rollups=d.rollups,
            )
        )
        write_s += time.perf_counter() - t
        expected[:] += d.expected
        counts["days"] += 1
        counts["minutes"] += d.minutes * n_channels
        counts["buckets"] += len(d.buckets.n)
        for period, deltas in d.rollups.items():
            counts[period] += len(deltas.n)
        if counts["days"] % 60 == 0 or counts["days"] == len(days):
            print(
                f"  {counts['days']:3d}/{len(days)} days: {counts['minutes'] / 1e6:5.1f} M minute"
                f" buckets rolled up; {counts['hour']:,} hour + {counts['day']:,} day +"
                f" {counts['month']:,} month roll-ups and {counts['buckets']:,} buckets written;"
                f" {time.perf_counter() - started:4.0f} s",
                flush=True,
            )

    for i, (s, e) in enumerate(days):
        args = (n_channels, tz, i, s, e, windows, s in edges)
        pending.append(loop.run_in_executor(pool, day, *args))
        if len(pending) >= IN_FLIGHT:
            await write(await pending.popleft())
    while pending:
        await write(await pending.popleft())
    print(
        f"  loaded in {time.perf_counter() - started:.0f} s ({write_s:.0f} s of it waiting on"
        " TimescaleStore.write while the workers rolled up the next days)"
    )
    return expected


Totals = dict[str, ChannelTotal]


async def timed(
    f: Callable[[], Awaitable[Totals]], repeats: int
) -> tuple[list[float], list[float], Totals]:
    """Milliseconds of WARMUP calls, then of `repeats` calls; the last result."""
    ms = []
    for _ in range(WARMUP + repeats):
        t = time.perf_counter()
        got = await f()
        ms.append((time.perf_counter() - t) * 1e3)
    return ms[:WARMUP], ms[WARMUP:], got


def p(ms: Sequence[float], q: float) -> float:
    return float(np.percentile(ms, q))


def check(got: Totals, keys: Sequence[str], want: npt.NDArray[np.float64]) -> float:
    """The greatest relative difference of sum and estimated from the generated minutes;
    n must be equal. Raises when a channel is missing or off beyond rounding."""
    if missing := [k for k in keys if k not in got]:
        raise SystemExit(f"no total for {len(missing)} channels, e.g. {missing[0]}")
    cols = np.array([[got[k].sum, got[k].estimated, got[k].n] for k in keys]).T
    if not np.array_equal(cols[2], want[2]):
        raise SystemExit("reading counts (n) differ from the generated minutes")
    worst = float(np.max(np.abs(cols[:2] - want[:2]) / np.maximum(np.abs(want[:2]), 1e-300)))
    if not np.allclose(cols[:2], want[:2], rtol=1e-9, atol=1e-9):
        raise SystemExit(f"totals differ from the generated minutes: rel. diff {worst:.2e}")
    return worst


async def read_parts(
    store: TimescaleStore, keys: Sequence[str], q: Query, tz: str
) -> list[tuple[str, int]]:
    """Each part of the plan (local times) and the rows it reads for these channels."""
    zone = ZoneInfo(tz)

    def local(ns: int) -> str:
        return datetime.fromtimestamp(ns / NS_PER_S, zone).strftime("%Y-%m-%d %H:%M")

    out = []
    for part in plan(q.start_ns, q.end_ns, tz, await store.rollups_from_ns()):
        got = await store.plan_totals(keys, [part])
        where = f"{part.source} {local(part.start_ns)}..{local(part.end_ns)}"
        out.append((where, sum(t.buckets for t in got.values())))
    return out


async def admin(dsn: str, *statements: tuple[str, tuple[object, ...]]) -> list[tuple[object, ...]]:
    """Statements on a connection of their own, in autocommit (VACUUM needs it); the last
    one's rows."""
    rows: list[tuple[object, ...]] = []
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for sql, params in statements:
            cur = await conn.execute(sql.encode(), params)
            rows = await cur.fetchall() if cur.description else []
    return rows


@dataclass(frozen=True, slots=True)
class Figures:
    tz: str
    rows: list[tuple[str, int, int, float, float]]  # query, parts, rows read, p50, p95
    cold: tuple[float, float]  # the year's first WARMUP calls on a new connection: median, max
    baseline: tuple[float, float, float, float]  # p50, p95 of totals; p50, p95 of period_totals


async def zone_run(
    dsn: str, store: TimescaleStore, pool: ProcessPoolExecutor, n: int, tz: str, repeats: int
) -> Figures:
    keys = channel_keys(n)
    qs = queries(tz)
    year_start, year_end = qs[0].start_ns, qs[0].end_ns
    n_minutes = (year_end - year_start) // MINUTE_NS * n
    print(
        f"\n{tz}: {YEAR}, 1-minute buckets × {n:,} channels = {n_minutes / 1e6:.1f} M", flush=True
    )
    await admin(dsn, ("TRUNCATE rollups, buckets", ()))
    expected = await load(store, pool, n, tz, qs)
    # roll-ups are complete from the year's start: the migrations put rollup_starts two days
    # after the newest bucket of an empty database (1970); set them explicitly
    await admin(
        dsn,
        ("UPDATE rollup_starts SET from_ns = %s", (year_start,)),
        ("VACUUM (ANALYZE) rollups", ()),
        ("VACUUM (ANALYZE) buckets", ()),
    )
    sizes = await admin(
        dsn,
        (
            "SELECT (SELECT count(*) FROM rollups), pg_total_relation_size('rollups'),"
            " (SELECT count(*) FROM buckets), pg_total_relation_size('buckets')",
            (),
        ),
    )
    n_roll, roll_b, n_buck, buck_b = (int(str(x)) for x in sizes[0])
    print(
        f"  stored: rollups {n_roll:,} rows, {roll_b / 2**20:,.0f} MiB; buckets {n_buck:,} rows"
        f" (channel 0's year, every channel on {_local_day(qs[-1].start_ns, tz)} and"
        f" {_local_day(qs[-1].end_ns - 1, tz)}), {buck_b / 2**20:,.0f} MiB; rollup_starts ="
        f" {_local(min((await store.rollups_from_ns()).values()), tz)} (VACUUM ANALYZE done)"
    )

    figures = []
    # the timed calls go through a store of their own, on one connection, so what PostgreSQL
    # plans (and psycopg prepares) depends on the calls made on it alone
    async with TimescaleStore(dsn, max_connections=1) as reader:
        for i, q in enumerate(qs):

            async def totals(q: Query = q) -> Totals:
                return await period_totals(reader, keys, q.start_ns, q.end_ns, tz)

            first, ms, got = await timed(totals, repeats)
            worst = check(got, keys, expected[i])
            parts = await read_parts(store, keys, q, tz)
            rows_read = sum(k for _, k in parts)
            figures.append((q.name, len(parts), rows_read, p(ms, 50), p(ms, 95)))
            print(
                f"  period_totals({n:,} channels, {q.name}): p50 {p(ms, 50):6.1f} ms, p95"
                f" {p(ms, 95):6.1f} ms; {rows_read:,} rows read in {len(parts)} part(s);"
                f" totals = the minutes' sums (rel. diff ≤ {worst:.0e})"
            )
            for where, k in parts:
                print(f"      {where:<42}{k:>10,} rows")
            if i == 0:
                cold = (p(first, 50), max(first))
                print(
                    f"    the first {WARMUP} calls on the new connection (not in the figures):"
                    f" {', '.join(f'{x:.0f}' for x in first)} ms"
                )

    # baseline: channel 0's year summed from its 525,600 minute buckets, interleaved with the
    # same year from the roll-ups
    k0 = keys[:1]
    base, roll = [], []
    for i in range(WARMUP + repeats):
        t0 = time.perf_counter()
        a = await store.totals(k0, year_start, year_end)
        t1 = time.perf_counter()
        b = await period_totals(store, k0, year_start, year_end, tz)
        t2 = time.perf_counter()
        if i >= WARMUP:
            base.append((t1 - t0) * 1e3)
            roll.append((t2 - t1) * 1e3)
    ta, tb = a[k0[0]], b[k0[0]]
    diff = abs(ta.sum - tb.sum) / abs(ta.sum)
    if diff > 1e-9 or ta.n != tb.n or ta.n != expected[0, 2, 0]:
        raise SystemExit(f"channel 0's year: buckets {ta} and roll-ups {tb} differ")
    print(
        f"  baseline, channel 0's year: store.totals over {ta.buckets:,} minute buckets p50"
        f" {p(base, 50):.1f} ms, p95 {p(base, 95):.1f} ms; period_totals over {tb.buckets:,}"
        f" roll-ups p50 {p(roll, 50):.2f} ms, p95 {p(roll, 95):.2f} ms;"
        f" sums {ta.sum:,.4f} and {tb.sum:,.4f} (rel. diff {diff:.1e})"
    )
    return Figures(tz, figures, cold, (p(base, 50), p(base, 95), p(roll, 50), p(roll, 95)))


def _local(ns: int, tz: str) -> str:
    return datetime.fromtimestamp(ns / NS_PER_S, ZoneInfo(tz)).isoformat(timespec="minutes")


def _local_day(ns: int, tz: str) -> str:
    return datetime.fromtimestamp(ns / NS_PER_S, ZoneInfo(tz)).date().isoformat()


async def run(dsn: str, n: int, zones: Sequence[str], repeats: int, workers: int) -> None:
    started = time.perf_counter()
    results = []
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        async with TimescaleStore(dsn) as store:
            for tz in zones:
                results.append(await zone_run(dsn, store, pool, n, tz, repeats))
    print(f"\nperiod_totals over {n:,} channels, {repeats} calls each after {WARMUP} untimed:")
    print(f"{'zone':<15}{'query':<27}{'parts':>6}{'rows read':>11}{'p50 ms':>9}{'p95 ms':>9}")
    for f in results:
        for name, parts, rows_read, p50, p95 in f.rows:
            print(f"{f.tz:<15}{name:<27}{parts:>6}{rows_read:>11,}{p50:>9.1f}{p95:>9.1f}")
    print(f"year, the first {WARMUP} calls on a new connection (custom plans):")
    for f in results:
        print(f"{f.tz:<15}median {f.cold[0]:.0f} ms, max {f.cold[1]:.0f} ms")
    print("baseline, channel 0's year (525,600 minute buckets against 12 month roll-ups):")
    for f in results:
        b50, b95, r50, r95 = f.baseline
        print(
            f"{f.tz:<15}store.totals p50 {b50:.1f} ms, p95 {b95:.1f} ms;"
            f" period_totals p50 {r50:.2f} ms, p95 {r95:.2f} ms: {b50 / r50:.0f}× at p50"
        )
    year = max(f.rows[0][-1] for f in results)  # the first query is the year
    worst = max(p95 for f in results for *_, p95 in f.rows)
    print(
        f"goal, a year's totals p95 < 100 ms: {'met' if year < 100 else 'NOT met'} (worst p95"
        f" {year:.1f} ms); worst p95 of every query {worst:.1f} ms"
    )
    print(f"whole run {time.perf_counter() - started:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--channels", type=int, default=1_000)
    ap.add_argument("--zones", nargs="+", default=list(ZONES))
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--workers", type=int, default=2, help="processes rolling up the days")
    args = ap.parse_args()
    with database() as dsn:
        asyncio.run(run(dsn, args.channels, args.zones, args.repeats, args.workers))


if __name__ == "__main__":
    main()

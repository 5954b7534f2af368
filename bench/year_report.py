"""Year-report latency for a 1,000-channel site on PostgreSQL: the ESG report of 2026 (GRI, HKEX,
T/LTIA 27 indicators) against the bare year totals of the same 1,000 channels, in the same run.

    python -m bench.year_report [--channels N] [--repeats R]
        (PT_PG_DSN, or a throwaway local cluster; about 5 minutes on 2 cores, the load of the
        year's roll-ups most of it)

The data are bench.year_totals' (loaded by its `load`: 525.6 M one-minute bucket deltas rolled
up into local hours, days and months by the aggregator's code, written by TimescaleStore.write),
in Asia/Shanghai. A plant model maps the 1,000 channels (20 meters of 50) to every ESG input:
grid, on-site PV, production and office electricity, natural gas, water withdrawal by source,
discharge, recycled and production water. Timed, interleaved call by call, after untimed
warm-up calls: the baseline services.series.period_totals for the 1,000 channels over the year;
services.reports.Reports.build (the report's content: totals, denominators, factors,
compute.esg.build_report, to_dict and its hash); and GET /v1/sites/{site}/reports/esg?year=2026
through the API in process (token check, JSON), first open, then after the period is closed
(the closed snapshot read and diffed against the current figures).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

import httpx
import numpy as np

from bench.store_writer import database
from bench.year_totals import WARMUP, admin, channel_keys, load, p, queries
from compute.denominators import PeriodValue
from compute.indicators import Denominator
from compute.periods import Span
from compute.plant import Plant, parse_plant
from services.access import ALL_SITES, Role, issue
from services.api import create_app
from services.reports import Reports
from services.series import period_totals
from services.store.timescale import TimescaleStore

TZ = "Asia/Shanghai"
SITE = "site1"
# meter index ranges (of 50 channels each) and what they meter
ROLES: list[tuple[range, dict[str, Any]]] = [
    (range(0, 4), {"area": "utility", "utility": "electricity", "unit": "kWh"}),  # grid
    (range(4, 8), {"area": "line", "utility": "electricity", "unit": "kWh", "parent": "m000"}),
    (range(8, 10), {"area": "office", "utility": "electricity", "unit": "kWh", "parent": "m000"}),
    (range(10, 12), {"area": "utility", "utility": "natural_gas", "unit": "m3"}),
    (range(12, 13), {"area": "utility", "utility": "water", "unit": "m3"}),
    (range(13, 14), {"area": "utility", "utility": "water", "unit": "m3", "source": "groundwater"}),
    (range(14, 15), {"area": "utility", "utility": "water", "unit": "m3", "esg": "discharge"}),
    (range(15, 16), {"area": "utility", "utility": "recycled_water", "unit": "m3"}),
    (range(16, 18), {"area": "line", "utility": "water", "unit": "m3", "parent": "m012"}),
    (
        range(18, 20),
        {"area": "utility", "utility": "electricity", "unit": "kWh", "esg": "onsite_pv"},
    ),
]


def plant(n_channels: int) -> Plant:
    """A site whose channels are bench.year_totals' keys, each meter in one ESG role."""
    keys = channel_keys(n_channels)
    meters: dict[str, dict[str, Any]] = {}
    for key in keys:
        mid, cid = key.split(".")
        role = next(r for span, r in ROLES if int(mid[1:]) % 20 in span)
        m = meters.setdefault(
            mid,
            {
                "id": mid,
                "site": SITE,
                "area": role["area"],
                "protocol": "opcua",
                "endpoint": "opc.tcp://127.0.0.1:4840",
                "interval_s": 1,
                "parent": role.get("parent"),
                "channels": [],
            },
        )
        channel = {
            "id": cid,
            "node_id": f"ns=2;s={key}",
            "kind": "counter",
            "unit": role["unit"],
            "utility": role["utility"],
        }
        if "esg" in role:
            channel["esg"] = role["esg"]
        if "source" in role:
            channel["water_source"] = role["source"]
        m["channels"].append(channel)
    site = {
        "id": SITE,
        "name": "1,000-channel site",
        "timezone": TZ,
        "region": "CN/east/jiangsu",
        "areas": [
            {"id": "utility", "kind": "utility"},
            {"id": "line", "kind": "production"},
            {"id": "office", "kind": "office"},
        ],
    }
    return parse_plant({"sites": [site], "meters": list(meters.values())})


async def timed_round(
    calls: dict[str, Callable[[], Awaitable[Any]]], repeats: int
) -> dict[str, list[float]]:
    """Milliseconds of each call, interleaved call by call, after WARMUP untimed rounds."""
    ms: dict[str, list[float]] = {name: [] for name in calls}
    for i in range(WARMUP + repeats):
        for name, call in calls.items():
            t = time.perf_counter()
            await call()
            if i >= WARMUP:
                ms[name].append((time.perf_counter() - t) * 1e3)
    return ms


async def run(dsn: str, n: int, repeats: int, workers: int) -> None:
    started = time.perf_counter()
    keys = channel_keys(n)
    qs = queries(TZ)
    year = Span(start_ns=qs[0].start_ns, end_ns=qs[0].end_ns)
    print(f"{TZ}: 2026, 1-minute buckets × {n:,} channels, rolled up and written", flush=True)
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        async with TimescaleStore(dsn) as store:
            expected = await load(store, pool, n, TZ, qs)
            for kind, value in ((Denominator.OUTPUT_VALUE_10K_CNY, 52_380.0),
                                (Denominator.HEADCOUNT, 437.0)):  # fmt: skip
                await store.add_period_value(
                    PeriodValue(
                        site=SITE,
                        kind=kind,
                        start_ns=year.start_ns,
                        end_ns=year.end_ns,
                        value=value,
                        source="bench",
                        recorded_at_ns=1,
                    )
                )
    await admin(
        dsn,
        ("UPDATE rollup_starts SET from_ns = %s", (year.start_ns,)),
        ("VACUUM (ANALYZE) rollups", ()),
        ("VACUUM (ANALYZE) buckets", ()),
    )
    model = plant(n)
    async with TimescaleStore(dsn, max_connections=1) as reader:
        token, raw = issue(name="bench", role=Role.ADMIN, sites=(ALL_SITES,), created_at_ns=1)
        await reader.add_token(token, actor="bench", reason="year-report bench")
        reports = Reports(model, reader, clock_ns=lambda: year.end_ns + 1)
        app = create_app(model, reader)
        headers = {"Authorization": f"Bearer {raw}"}
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bench", headers=headers
        ) as client:

            async def bare() -> Any:
                return await period_totals(reader, keys, year.start_ns, year.end_ns, TZ)

            async def get() -> Any:
                r = await client.get(f"/v1/sites/{SITE}/reports/esg", params={"year": 2026})
                r.raise_for_status()
                return r.json()

            content = await reports.build(SITE, year)
            grid_meters = ROLES[0][0]  # m000-m003 (of each 20)
            grid = sum(
                expected[0, 0, i] for i, k in enumerate(keys) if int(k[1:4]) % 20 in grid_meters
            )
            got = next(
                i["unrounded"] for i in content["indicators"]
                if i["key"] == "GRI:302-1:electricity/grid"
            )  # fmt: skip
            if not np.isclose(got, grid * 0.0036, rtol=1e-9):
                raise SystemExit(f"grid electricity {got} GJ is not the minutes' {grid * 0.0036}")
            indicators = len(content["indicators"])
            print(f"  the report: {indicators} indicators; grid electricity = the minutes' sum")
            open_ms = await timed_round(
                {"bare": bare, "build": lambda: reports.build(SITE, year), "get": get}, repeats
            )
            await reports.close(SITE, year, actor="bench", reason="bench close")
            status = (await get())["status"]
            closed_ms = await timed_round({"bare": bare, "get": get}, repeats)
    base = open_ms["bare"] + closed_ms["bare"]
    b50, b95 = p(base, 50), p(base, 95)
    print(f"\nyear report over {n:,} channels, {repeats} calls each after {WARMUP} untimed:")
    print(f"{'what':<62}{'p50 ms':>9}{'p95 ms':>9}{'p50 ratio':>11}")
    for name, ms in (
        (f"baseline: period_totals, {n:,} channels, the year", base),
        ("Reports.build (totals, denominators, factors, compute.esg)", open_ms["build"]),
        ("GET /v1/sites/{site}/reports/esg?year=2026, open", open_ms["get"]),
        (f"GET /v1/sites/{{site}}/reports/esg?year=2026, {status}", closed_ms["get"]),
    ):
        print(f"{name:<62}{p(ms, 50):>9.1f}{p(ms, 95):>9.1f}{p(ms, 50) / b50:>10.2f}×")
    print(f"baseline p95 {b95:.1f} ms; whole run {time.perf_counter() - started:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--channels", type=int, default=1_000)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--workers", type=int, default=2, help="processes rolling up the days")
    args = ap.parse_args()
    with database() as dsn:
        asyncio.run(run(dsn, args.channels, args.repeats, args.workers))


if __name__ == "__main__":
    main()

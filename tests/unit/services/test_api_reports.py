"""The ESG report endpoint over a synthetic plant-year written as the aggregator writes it
(bucket deltas with their site-local roll-ups): its figures equal compute.esg's on the same
totals; a period close, late data and a revised factor, the restatement and the history.
Runs on SqliteStore and on PostgreSQL."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import pytest

from compute.aggregate import no_events, no_readings
from compute.buckets import BucketDeltas
from compute.denominators import PeriodValue, denominator_over
from compute.emissions import Activity, EmissionFactor, FactorTable
from compute.esg import build_report
from compute.esg_model import EsgInputs, Measured, WaterSource
from compute.esg_output import to_dict
from compute.factor_versions import DEFAULT_FACTORS, FactorVersion, with_defaults
from compute.indicators import Coverage, Denominator, Figure
from compute.model import NO_TS, datetime_ns
from compute.plant import Plant, parse_plant
from compute.rollups import rollup_deltas
from services.access import Role
from services.api import create_app
from services.store import Store, StoreWrite
from services.store.sqlite import SqliteStore
from services.store.timescale import TimescaleStore
from tests.tokens import bearer, token_for

SHANGHAI = ZoneInfo("Asia/Shanghai")
YEAR_SAMPLES = 365 * 96  # 2025 at a 15-minute poll interval: 35,040


def _ns(year: int, month: int = 1, day: int = 1) -> int:
    return datetime_ns(datetime(year, month, day, tzinfo=SHANGHAI))


START, END = _ns(2025), _ns(2026)
# channel: (annual total, estimated part, samples received, good samples)
YEAR = {
    "incomer.e": (1_200_000, 12_000, YEAR_SAMPLES, 34_900),
    "pv.e": (50_000, 1_000, 35_000, 35_000),
    "line.e": (1_004_560, 0, YEAR_SAMPLES, YEAR_SAMPLES),
    "office.e": (183_420, 0, YEAR_SAMPLES, YEAR_SAMPLES),
    "gas.v": (80_000, 0, YEAR_SAMPLES, 34_800),
    "intake.v": (62_350, 3_117.5, YEAR_SAMPLES, YEAR_SAMPLES),
    "well.v": (4_870, 487, 32_000, 32_000),
    "drain.v": (49_815, 0, YEAR_SAMPLES, 34_000),
    "recycle.v": (15_430, 0, YEAR_SAMPLES, YEAR_SAMPLES),
    "process.v": (41_260, 0, YEAR_SAMPLES, YEAR_SAMPLES),
    "plc.made": (100_000, 0, YEAR_SAMPLES, YEAR_SAMPLES),
}
RECORDED = {  # denominators from ERP and HR, for the year
    Denominator.OUTPUT_VALUE_10K_CNY: 52_380,
    Denominator.REVENUE_10K_CNY: 61_240,
    Denominator.HEADCOUNT: 437,
    Denominator.FLOOR_AREA_M2: 36_500,
}


def plant() -> Plant:
    def meter(mid: str, area: str, cid: str, unit: str, utility: str, **kw: Any) -> Any:
        tags = {k: kw.pop(k) for k in ("esg", "water_source") if k in kw}
        channel = {"id": cid, "unit": unit, "kind": "counter", "utility": utility, **tags}
        return {
            "id": mid,
            "site": "sz",
            "area": area,
            "protocol": "opcua",
            "endpoint": "opc.tcp://h:4840",
            "interval_s": 900,
            "channels": [{**channel, "node_id": f"ns=2;s={mid}"}],
            **kw,
        }

    site = {
        "id": "sz",
        "name": "Suzhou",
        "timezone": "Asia/Shanghai",
        "region": "CN/east/jiangsu",
        "areas": [
            {"id": "utility", "kind": "utility"},
            {"id": "line", "kind": "production"},
            {"id": "office", "kind": "office"},
        ],
    }
    meters = [
        meter("incomer", "utility", "e", "kWh", "electricity"),
        meter("pv", "utility", "e", "kWh", "electricity", esg="onsite_pv"),
        meter("line", "line", "e", "kWh", "electricity", parent="incomer"),
        meter("office", "office", "e", "kWh", "electricity", parent="incomer"),
        meter("gas", "utility", "v", "m3", "natural_gas"),
        meter("intake", "utility", "v", "m3", "water"),
        meter("well", "utility", "v", "m3", "water", water_source="groundwater"),
        meter("drain", "utility", "v", "m3", "water", esg="discharge"),
        meter("recycle", "utility", "v", "m3", "recycled_water"),
        meter("process", "line", "v", "m3", "water", parent="intake"),
        meter("plc", "line", "made", "units", "production"),
    ]
    return parse_plant({"sites": [site], "meters": meters})


def _split(total: float) -> list[float]:
    """Twelve monthly parts that add up to `total` exactly in floating point."""
    part = float(int(total // 12))
    return [part] * 11 + [total - 11 * part]


def deltas(rows: list[tuple[str, int, float, float, int, int]]) -> BucketDeltas:
    """Bucket deltas (channel, bucket start, sum, estimated, n, n_good) of counters."""
    keys = tuple(sorted({r[0] for r in rows}))
    nan = np.full(len(rows), np.nan)
    return BucketDeltas(
        keys=keys,
        channel=np.array([keys.index(r[0]) for r in rows], np.int32),
        bucket_start_ns=np.array([r[1] for r in rows], np.int64),
        n=np.array([r[4] for r in rows], np.int64),
        n_good=np.array([r[5] for r in rows], np.int64),
        sum=np.array([r[2] for r in rows]),
        estimated=np.array([r[3] for r in rows]),
        min=nan,
        max=nan,
        last=nan,
        last_ts_ns=np.full(len(rows), NO_TS, np.int64),
    )


async def write(store: Store, b: BucketDeltas) -> None:
    """As the aggregator writes a step: the buckets with their roll-ups, in one write."""
    rollups = rollup_deltas(b, {k: "Asia/Shanghai" for k in b.keys})
    await store.write(
        StoreWrite(
            readings=no_readings(b.keys),
            buckets=b,
            state={},
            events=no_events(b.keys),
            rollups={p.value: d for p, d in rollups.items()},
        )
    )


async def seed(store: Store) -> None:
    """The plant-year: each channel's total, estimated part and samples over 2025's months
    (the missing samples in December), one minute bucket at each local month start."""
    rows = []
    for key, (total, est, n, good) in YEAR.items():
        for m, (part, est_part) in enumerate(zip(_split(total), _split(est), strict=True)):
            month_n = (_ns(2025 + (m == 11), m + 2 if m < 11 else 1) - _ns(2025, m + 1)) // (
                900 * 10**9
            )
            short = (YEAR_SAMPLES - n, YEAR_SAMPLES - good) if m == 11 else (0, 0)
            rows.append(
                (key, _ns(2025, m + 1), part, est_part, month_n - short[0], month_n - short[1])
            )
    await write(store, deltas(rows))
    for kind, value in RECORDED.items():
        await store.add_period_value(
            PeriodValue(
                site="sz",
                kind=kind,
                start_ns=START,
                end_ns=END,
                value=value,
                source="ERP",
                recorded_at_ns=1,
            )
        )


def expected_inputs() -> EsgInputs:
    """The same year as compute.esg inputs, worked out from YEAR by hand."""

    def m(key: str) -> Measured:
        total, est, n, good = YEAR[key]
        coverage = Coverage(expected=YEAR_SAMPLES, received=n, good=good)
        return Measured(value=total, coverage=coverage, estimated_share=est / total)

    made = Figure(
        value=100_000,
        unit="unit",
        start_ns=START,
        end_ns=END,
        coverage=Coverage.complete(YEAR_SAMPLES),
    )
    denominators = {
        k: denominator_over(
            [
                PeriodValue(
                    site="sz",
                    kind=k,
                    start_ns=START,
                    end_ns=END,
                    value=v,
                    source="ERP",
                    recorded_at_ns=1,
                )
            ],
            k,
            START,
            END,
        )
        for k, v in RECORDED.items()
    }
    return EsgInputs(
        site="sz",
        region="CN/east/jiangsu",
        start_ns=START,
        end_ns=END,
        grid_electricity_kwh=m("incomer.e"),
        pv_electricity_kwh=m("pv.e"),
        production_electricity_kwh=m("line.e"),
        office_electricity_kwh=m("office.e"),
        natural_gas_m3=m("gas.v"),
        water_withdrawal_m3={
            WaterSource.GROUND: m("well.v"),
            WaterSource.THIRD_PARTY: m("intake.v"),
        },
        water_discharge_m3=m("drain.v"),
        water_recycled_m3=m("recycle.v"),
        production_water_m3=m("process.v"),
        denominators={Denominator.UNITS_PRODUCED: made, **denominators},
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        async with SqliteStore(tmp_path / "s.sqlite3") as lite:
            await seed(lite)
            yield lite
    else:
        async with TimescaleStore(request.getfixturevalue("pg_dsn")) as pg:
            await seed(pg)
            yield pg


@pytest.fixture
async def clients(store: Store) -> AsyncIterator[dict[Role, httpx.AsyncClient]]:
    app = create_app(plant(), store)
    out = {}
    for role in (Role.REPORTING, Role.ENGINEER, Role.VIEWER):
        headers = bearer(await token_for(store, role))
        out[role] = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t", headers=headers
        )
    yield out
    for c in out.values():
        await c.aclose()


def _values(report: dict[str, Any]) -> dict[str, str | None]:
    return {i["key"]: i["value"] for i in report["indicators"]}


async def test_a_plant_year_from_the_rollups_equals_compute_esg(
    clients: dict[Role, httpx.AsyncClient],
) -> None:
    r = await clients[Role.REPORTING].get("/v1/sites/sz/reports/esg", params={"year": 2025})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "open" and body["closed"] is None
    assert (
        body["start"] == "2025-01-01T00:00:00+08:00" and body["end"] == "2026-01-01T00:00:00+08:00"
    )
    table = FactorTable(with_defaults([], DEFAULT_FACTORS))
    want = to_dict(build_report(expected_inputs(), table))
    assert body["report"]["indicators"] == want["indicators"]
    assert body["report"]["method"] == want["method"]
    values = _values(body["report"])
    # spot checks by hand (tests/unit/compute/test_esg.py works the same year out in full):
    # 1,200 MWh × 0.5703; no certificates and no market factor: market = location
    assert values["GRI:305-2:location"] == values["GRI:305-2:market"] == "684.36"
    assert values["GRI:305-1:total"] == "172.98"  # 80 × 2.162188809 tCO2/1000 m3
    assert values["GRI:302-1:renewable"] == "180.00"  # PV only: 50,000 kWh × 0.0036
    assert values["T/LTIA 27-2024:TNGC"] == "80000" and values["T/LTIA 27-2024:WC"] == "41260"
    assert values["T/LTIA 27-2024:WRR"] == "18.67"  # 15,430 / (67,220 + 15,430) × 100
    assert values["GRI:303-5"] == "17.405"  # (67,220 − 49,815) m3 ÷ 1000
    assert values["GRI:302-3:intensity/units_produced"] == "0.076145"  # from the counter
    assert body["report"]["channels"]["grid_electricity"] == ["incomer.e"]
    assert body["report"]["channels"]["water_withdrawal/groundwater"] == ["well.v"]
    assert body["report"]["denominator_sources"]["units_produced"].startswith("production counters")
    # CSV: the same published values
    got = await clients[Role.REPORTING].get(
        "/v1/sites/sz/reports/esg", params={"year": 2025, "format": "csv"}
    )
    lines = list(csv.DictReader(io.StringIO(got.text)))
    assert {x["key"]: x["value"] or None for x in lines} == values
    assert {x["status"] for x in lines} == {"open"}


async def test_close_late_data_revised_factor_restatement_and_history(
    clients: dict[Role, httpx.AsyncClient], store: Store
) -> None:
    reader, engineer = clients[Role.REPORTING], clients[Role.ENGINEER]
    url = "/v1/sites/sz/reports/esg"
    year = {"year": 2025}
    assert (await reader.post(f"{url}/close", json={**year, "reason": "x"})).status_code == 403
    unfinished = await engineer.post(f"{url}/close", json={"year": 2026, "reason": "x"})
    assert unfinished.status_code == 422 and "has not ended" in unfinished.text
    not_closed = await engineer.post(f"{url}/restate", json={**year, "reason": "x"})
    assert not_closed.status_code == 409 and "not closed" in not_closed.text

    closed = await engineer.post(f"{url}/close", json={**year, "reason": "FY2025 close"})
    assert closed.status_code == 201, closed.text
    c = closed.json()
    assert c["status"] == "closed" and c["closed"]["version"] == 1
    assert c["closed"]["reason"] == "FY2025 close" and c["closed"]["by"].startswith("token:")
    assert c["closed"]["sha256"] == c["report"]["content_hash"] == c["current_sha256"]
    again = await engineer.post(f"{url}/close", json={**year, "reason": "twice"})
    assert again.status_code == 409 and "closed already" in again.text
    unchanged = await engineer.post(f"{url}/restate", json={**year, "reason": "nothing"})
    assert unchanged.status_code == 409 and "nothing to restate" in unchanged.text

    # late gas readings for June 2025 reach the store: +500 m3
    await write(store, deltas([("gas.v", _ns(2025, 6, 15), 500.0, 0.0, 1, 1)]))
    view = (await reader.get(url, params=year)).json()
    assert view["status"] == "changed"
    assert _values(view["report"])["T/LTIA 27-2024:TNGC"] == "80000"  # the closed figure
    changes = {x["key"]: x for x in view["restatements"]}
    assert view["pending"] == view["restatements"]
    tngc, scope1 = changes["T/LTIA 27-2024:TNGC"], changes["GRI:305-1:total"]
    assert (tngc["old_value"], tngc["new_value"], tngc["difference"]) == ("80000", "80500", "500")
    # 80.5 × 2.162188809 = 174.0561991… → 174.06, against 172.98 closed
    assert (scope1["old_value"], scope1["new_value"], scope1["difference"]) == (
        "172.98",
        "174.06",
        "1.08",
    )
    assert "GRI:305-2:location" not in changes  # no gas in it
    lines = {
        x["key"]: x
        for x in csv.DictReader(
            io.StringIO((await reader.get(url, params={**year, "format": "csv"})).text)
        )
    }
    row = lines["T/LTIA 27-2024:TNGC"]
    assert (row["value"], row["current_value"], row["difference"], row["status"]) == (
        "80000",
        "80500",
        "500",
        "changed",
    )

    restated = await engineer.post(f"{url}/restate", json={**year, "reason": "late gas readings"})
    assert restated.status_code == 201, restated.text
    r = restated.json()
    assert r["status"] == "restated" and r["latest"]["version"] == 2 and r["pending"] == []
    assert r["latest"]["previous_sha256"] == c["closed"]["sha256"]
    assert {x["key"] for x in r["restatements"]} == set(changes)  # still against the close

    # a revised grid factor for the province: 0.6 tCO2/MWh for 2025
    revised = EmissionFactor(
        id="grid-jiangsu",
        version="2025-rev1",
        activity=Activity.ELECTRICITY_GRID,
        region="CN/east/jiangsu",
        valid_from_ns=START,
        valid_to_ns=END,
        value=0.6,
        unit="tCO2/MWh",
        source="provincial factor (test)",
    )
    await store.add_factor_version(
        FactorVersion(factor=revised, recorded_at_ns=2), actor="t", reason="revised"
    )
    view = (await reader.get(url, params=year)).json()
    assert view["status"] == "changed"
    pending = {x["key"]: x for x in view["pending"]}
    location = pending["GRI:305-2:location"]  # 1,200 MWh × 0.6
    assert (location["old_value"], location["new_value"]) == ("684.36", "720.00")
    assert location["old_factor_refs"] == ["default-cn-grid@mee-2024"]
    assert location["new_factor_refs"] == ["grid-jiangsu@2025-rev1"]
    assert "T/LTIA 27-2024:TNGC" not in pending  # recorded by version 2 already

    history = (await reader.get(f"{url}/history", params=year)).json()
    assert [(v["version"], v["action"], v["reason"]) for v in history["versions"]] == [
        (1, "close", "FY2025 close"),
        (2, "restate", "late gas readings"),
    ]
    assert {x["key"] for x in history["versions"][1]["changes"]} == set(changes)
    assert history["versions"][0]["content"] is None
    assert "GRI:305-2:location" in {x["key"] for x in history["pending"]}
    assert [(a["action"], a["reason"]) for a in history["audit"]] == [
        ("report.close", "FY2025 close"),
        ("report.restate", "late gas readings"),
    ]
    full = (await reader.get(f"{url}/history", params={**year, "content": True})).json()
    first = full["versions"][0]["content"]
    assert _values(first)["T/LTIA 27-2024:TNGC"] == "80000"
    assert first["content_hash"] == history["versions"][0]["sha256"]


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({}, "give start and end, or period and at"),
        ({"year": 2025, "period": "year", "at": "2025"}, "not both"),
        ({"year": 2025, "start": "2025-01-01T00:00"}, "not both"),
        ({"period": "quarter", "at": "2025-Q5"}, "a quarter is named like"),
        ({"start": "2025-02-01T00:00", "end": "2025-01-01T00:00"}, "end must be after start"),
    ],
)
async def test_wrong_report_parameters_get_422(
    clients: dict[Role, httpx.AsyncClient], params: dict[str, Any], reason: str
) -> None:
    r = await clients[Role.REPORTING].get("/v1/sites/sz/reports/esg", params=params)
    assert r.status_code == 422 and reason in r.text, r.text


async def test_viewers_do_not_read_reports_and_a_quarter_reads_the_same_way(
    clients: dict[Role, httpx.AsyncClient],
) -> None:
    denied = await clients[Role.VIEWER].get("/v1/sites/sz/reports/esg", params={"year": 2025})
    assert denied.status_code == 403 and "needs the role" in denied.text
    q = await clients[Role.REPORTING].get(
        "/v1/sites/sz/reports/esg", params={"period": "quarter", "at": "2025-Q1"}
    )
    assert q.status_code == 200
    # Q1: three of the twelve equal monthly parts of the grid, 100,000 kWh each
    assert _values(q.json()["report"])["HKEX:A2.1:indirect/purchased_electricity"] == "300.00"
    # the denominators cover the year: a quarter takes its share of the flows
    assert q.json()["report"]["start"] == "2024-12-31T16:00:00+00:00"

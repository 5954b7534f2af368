"""Totals against hand-computed figures: Berlin's 23- and 25-hour days, tariff bands from hour
roll-ups and from buckets, every grouping, unit conversions with a factor revised mid-day, the
previous period and the year before, CSV equal to JSON, and 4xx answers with their reasons.

The plant (Europe/Berlin, readings every 10 minutes): the incomer draws 10 + h kWh in local
hour h (h = 0..23), the line 5 kWh/h and the office 2 kWh/h under it, gas 3 m3/h and water
1.5 m3/h. A normal day's incomer total is Σ(10 + h) = 516 kWh; 2026-03-29 skips 02:00 (-12 kWh:
504) and 2026-10-25 repeats it (+12: 528).
"""

from __future__ import annotations

import asyncio
import csv
import io
import shutil
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from compute.aggregate import step
from compute.emissions import Activity, EmissionFactor
from compute.factor_versions import FactorVersion
from compute.model import NS_PER_S, Quality, ReadingBatch, datetime_ns
from compute.plant import Plant, parse_plant
from compute.rollups import rollup_deltas
from services.aggregator import channel_specs
from services.api import create_app
from services.store import StoreWrite
from services.store.sqlite import SqliteStore
from tests.tokens import bearer, token_for

BERLIN = ZoneInfo("Europe/Berlin")
STEP_S = 600
RATES = {  # per local hour h, per hour
    "incomer.e": lambda h: 10.0 + h,
    "line.e": lambda h: 5.0,
    "office.e": lambda h: 2.0,
    "gas.v": lambda h: 3.0,
    "water.v": lambda h: 1.5,
}
DAYS = [  # stretches of local days with readings, each ingested from an empty counter state
    [date(2025, 3, 29)],
    [date(2025, 10, 25)],
    [date(2026, 3, 28), date(2026, 3, 29)],
    [date(2026, 10, 24), date(2026, 10, 25)],
]
TARIFFS = {
    "default": "flat",
    "windows": [
        {"band": "valley", "start": "23:00", "end": "07:00"},
        {"band": "peak", "start": "08:00", "end": "11:00"},
        {"band": "peak", "start": "18:00", "end": "21:00"},
    ],
}


def plant(tariffs: dict[str, Any] | None = TARIFFS, region: str | None = "DE") -> Plant:
    def meter(mid: str, area: str, cid: str, unit: str, utility: str, **kw: Any) -> Any:
        channel = {"id": cid, "unit": unit, "kind": "counter", "utility": utility}
        return {
            "id": mid,
            "site": "b",
            "area": area,
            "protocol": "opcua",
            "endpoint": "opc.tcp://h:4840",
            "interval_s": STEP_S,
            "channels": [{**channel, "node_id": f"ns=2;s={mid}"}],
            **kw,
        }

    site: dict[str, Any] = {
        "id": "b",
        "name": "Berlin",
        "timezone": "Europe/Berlin",
        "areas": [
            {"id": "utility", "kind": "utility"},
            {"id": "line", "kind": "production"},
            {"id": "office", "kind": "office"},
        ],
        "region": region,
        "tariffs": tariffs,
    }
    return parse_plant(
        {
            "sites": [site],
            "meters": [
                meter("incomer", "utility", "e", "kWh", "electricity"),
                meter("line", "line", "e", "kWh", "electricity", parent="incomer"),
                meter("office", "office", "e", "kWh", "electricity", parent="incomer"),
                meter("gas", "utility", "v", "m3", "natural_gas"),
                meter("water", "utility", "v", "m3", "water"),
            ],
        }
    )


def _local_midnight(d: date) -> int:
    return datetime_ns(datetime(d.year, d.month, d.day, tzinfo=BERLIN))


def readings(days: list[date]) -> list[tuple[str, int, float, Quality]]:
    """Counter readings every 10 minutes from the first day's midnight to the day after the
    last, each interval (s, s + 10 min] advancing by the rate of the local hour holding s."""
    start = _local_midnight(days[0])
    end = _local_midnight(days[-1] + timedelta(days=1))
    rows = []
    for key, rate in RATES.items():
        value = 1000.0
        for t in range(start, end + 1, STEP_S * NS_PER_S):
            rows.append((key, t, value, Quality.GOOD))
            hour = datetime.fromtimestamp(t / NS_PER_S, BERLIN).hour
            value += rate(hour) * STEP_S / 3600
    return rows


async def _ingest(store: SqliteStore, p: Plant) -> None:
    """As the aggregator writes: the step's buckets with their site-local roll-ups."""
    tz_of = {k: r.site.timezone for k, r in p.channels.items()}
    for days in DAYS:
        batch = ReadingBatch.from_rows(meter_id="m", receive_ts_ns=0, rows=readings(days))
        r = step([batch], channel_specs(p), {}, 60 * NS_PER_S)
        rollups = rollup_deltas(r.buckets, tz_of)
        await store.write(
            StoreWrite(
                readings=r.readings,
                buckets=r.buckets,
                state=r.state,
                events=r.events,
                rollups={k.value: v for k, v in rollups.items()},
            )
        )


def _factor(version: str, value: float, start: datetime, end: datetime | None) -> FactorVersion:
    f = EmissionFactor(
        id="grid-de",
        version=version,
        activity=Activity.ELECTRICITY_GRID,
        region="DE",
        valid_from_ns=datetime_ns(start),
        valid_to_ns=None if end is None else datetime_ns(end),
        value=value,
        unit="tCO2/MWh",
        source="test: a grid factor revised at noon",
    )
    return FactorVersion(factor=f, recorded_at_ns=1)


async def _seed(path: Path) -> None:
    async with SqliteStore(path) as s:
        await _ingest(s, plant())
        noon = datetime(2026, 3, 29, 12, tzinfo=BERLIN)
        since = datetime(2020, 1, 1, tzinfo=BERLIN)
        await s.add_factor_version(_factor("v1", 0.4, since, noon), actor="t", reason="r")
        await s.add_factor_version(_factor("v2", 0.3, noon, None), actor="t", reason="r")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The readings ingested once; each test works on a copy of the database file."""
    path = tmp_path_factory.mktemp("totals") / "seeded.sqlite3"
    asyncio.run(_seed(path))
    return path


@pytest.fixture
async def store(seeded: Path, tmp_path: Path) -> AsyncIterator[SqliteStore]:
    shutil.copy(seeded, tmp_path / "s.sqlite3")
    async with SqliteStore(tmp_path / "s.sqlite3") as s:
        yield s


async def _client(p: Plant, store: SqliteStore) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(p, store))
    headers = bearer(await token_for(store))
    return httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers)


@pytest.fixture
async def api(store: SqliteStore) -> AsyncIterator[httpx.AsyncClient]:
    async with await _client(plant(), store) as client:
        yield client


def _rows(body: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["key"], "+".join(r["utilities"])): r for r in body["rows"]}


async def _get(api: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    r = await api.get("/v1/sites/b/totals", params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


DAY_SPRING = {"period": "day", "at": "2026-03-29"}  # 23 hours
DAY_AUTUMN = {"period": "day", "at": "2026-10-25"}  # 25 hours


@pytest.mark.parametrize(
    ("day", "hours", "incomer_kwh"),
    [
        (DAY_SPRING, 23, 504.0),
        (DAY_AUTUMN, 25, 528.0),
        ({"period": "day", "at": "2026-03-28"}, 24, 516.0),
    ],
)
async def test_a_day_per_utility_on_dst_days(
    api: httpx.AsyncClient, day: dict[str, str], hours: int, incomer_kwh: float
) -> None:
    body = await _get(api, **day)
    start, end = datetime.fromisoformat(body["start"]), datetime.fromisoformat(body["end"])
    assert (end - start) == timedelta(hours=hours) and body["period"] == "day"
    rows = _rows(body)
    elec = rows["electricity", "electricity"]
    assert elec["total"] == pytest.approx(incomer_kwh) and elec["unit"] == "kWh"
    assert elec["channels"] == ["incomer.e"]  # the root meter only: line and office are under it
    assert (elec["samples_good"], elec["samples_expected"], elec["coverage"]) == (
        6 * hours,
        6 * hours,
        1.0,
    )
    assert elec["estimated"] == 0.0 and elec["estimated_share"] == 0.0
    assert rows["natural_gas", "natural_gas"]["total"] == pytest.approx(3.0 * hours)
    assert rows["water", "water"]["total"] == pytest.approx(1.5 * hours)
    assert rows["water", "water"]["unit"] == "m3"


async def test_groupings(api: httpx.AsyncClient) -> None:
    area = _rows(await _get(api, group="area", **DAY_SPRING))
    assert {k: r["total"] for k, r in area.items()} == pytest.approx(
        {
            ("utility", "electricity"): 504.0,  # the incomer, which the line and office are under
            ("utility", "natural_gas"): 69.0,
            ("utility", "water"): 34.5,
            ("line", "electricity"): 5.0 * 23,
            ("office", "electricity"): 2.0 * 23,
        }
    )
    meter = _rows(await _get(api, group="meter", **DAY_SPRING))
    assert {k: r["total"] for k, r in meter.items()} == pytest.approx(
        {
            ("incomer", "electricity"): 504.0,
            ("line", "electricity"): 115.0,
            ("office", "electricity"): 46.0,
            ("gas", "natural_gas"): 69.0,
            ("water", "water"): 34.5,
        }
    )
    channel = _rows(await _get(api, group="channel", utility="electricity", **DAY_SPRING))
    assert list(channel) == [
        ("incomer.e", "electricity"),
        ("line.e", "electricity"),
        ("office.e", "electricity"),
    ]
    # the site in kWh: 504 kWh and 69 m3 of gas at 38.931 GJ/1000 m3 = 746.1775 kWh
    (site,) = (await _get(api, group="site", unit="kWh", **DAY_SPRING))["rows"]
    assert site["key"] == "b" and site["utilities"] == ["electricity", "natural_gas"]
    assert site["total"] == pytest.approx(504.0 + 69 * 38.931 / 3.6, rel=1e-12)
    assert site["channels"] == ["incomer.e", "gas.v"]
    assert site["samples_expected"] == 2 * 138


@pytest.mark.parametrize(
    ("day", "bands"),
    [
        # valley 23-07, peak 08-11 and 18-21, flat the rest: Σ(10 + h) over each band's hours
        ({"period": "day", "at": "2026-03-28"}, {"valley": 124.0, "flat": 248.0, "peak": 144.0}),
        (DAY_SPRING, {"valley": 112.0, "flat": 248.0, "peak": 144.0}),  # no 02:00 (12 kWh)
        (DAY_AUTUMN, {"valley": 136.0, "flat": 248.0, "peak": 144.0}),  # 02:00 twice
    ],
)
async def test_tariff_bands_from_hour_rollups(
    api: httpx.AsyncClient, day: dict[str, str], bands: dict[str, float]
) -> None:
    body = await _get(api, group="tariff", utility="electricity", **day)
    rows = {r["key"]: r for r in body["rows"]}
    assert list(rows) == ["peak", "flat", "valley"]
    assert {k: r["total"] for k, r in rows.items()} == pytest.approx(bands)
    valley_hours = {"2026-03-28": 8, "2026-03-29": 7, "2026-10-25": 9}[day["at"]]
    for band, band_hours in (("peak", 6), ("flat", 10), ("valley", valley_hours)):
        r = rows[band]  # expected samples: 6 an hour of the band's hours that day
        assert r["samples_good"] == r["samples_expected"] == 6 * band_hours
        assert r["channels"] == ["incomer.e"] and r["unit"] == "kWh"
    assert any("hour roll-ups" in n for n in body["notes"])


async def test_tariff_bands_off_the_hour_come_from_buckets(store: SqliteStore) -> None:
    half = {
        **TARIFFS,
        "windows": [*TARIFFS["windows"][:1], {"band": "peak", "start": "08:30", "end": "11:00"}],
    }
    async with await _client(plant(half), store) as api:
        body = await _get(api, group="tariff", utility="electricity", **DAY_SPRING)
    rows = {r["key"]: r["total"] for r in body["rows"]}
    # peak: half of hour 8 (9 kWh) + hours 9, 10 (19 + 20); flat gains the other half of 8 and
    # hours 18-20 (28 + 29 + 30)
    assert rows == pytest.approx({"peak": 48.0, "flat": 248.0 + 144.0 - 48.0, "valley": 112.0})
    assert any("base buckets" in n for n in body["notes"])


async def test_unit_conversions(api: httpx.AsyncClient) -> None:
    def elec(body: dict[str, Any]) -> float:
        total: float = _rows(body)["electricity", "electricity"]["total"]
        return total

    assert elec(await _get(api, unit="MWh", **DAY_SPRING)) == pytest.approx(0.504)
    assert elec(await _get(api, unit="GJ", **DAY_SPRING)) == pytest.approx(504 * 0.0036)
    tce = await _get(api, unit="tce", **DAY_SPRING)
    assert elec(tce) == pytest.approx(504 * 0.1229 / 1000)  # GB/T 2589-2020
    assert _rows(tce)["natural_gas", "natural_gas"]["total"] == pytest.approx(69 * 1.2143 / 1000)
    assert ("water", "water") not in _rows(tce)  # tce does not fit water: left out
    ml = await _get(api, unit="ML", **DAY_SPRING)
    assert list(_rows(ml)) == [("water", "water")]
    assert _rows(ml)["water", "water"]["total"] == pytest.approx(0.0345)
    # tCO2e: the grid factor 0.4 tCO2/MWh until noon, 0.3 after: hours 0-11 (no 02:00) draw
    # 10+11+13+...+21 = 174 kWh, hours 12-23 draw 22+...+33 = 330 kWh
    co2 = await _get(api, unit="tCO2e", utility="electricity", **DAY_SPRING)
    row = _rows(co2)["electricity", "electricity"]
    assert row["total"] == pytest.approx(0.174 * 0.4 + 0.330 * 0.3)
    assert row["factors"] == ["grid-de@v1", "grid-de@v2"]
    assert [(f["ref"], f["value"]) for f in co2["factors"]] == [
        ("grid-de@v1", 0.4),
        ("grid-de@v2", 0.3),
    ]
    tariff = await _get(api, unit="tCO2e", utility="electricity", group="tariff", **DAY_SPRING)
    by_band = {r["key"]: r["total"] for r in tariff["rows"]}
    # peak: 08-11 at 0.4 (18+19+20 = 57 kWh), 18-21 at 0.3 (28+29+30 = 87 kWh)
    assert by_band["peak"] == pytest.approx(0.057 * 0.4 + 0.087 * 0.3)
    assert sum(by_band.values()) == pytest.approx(row["total"])


async def test_previous_period_and_year_before(api: httpx.AsyncClient) -> None:
    body = await _get(api, compare=["previous", "year_before"], **DAY_SPRING)
    elec = _rows(body)["electricity", "electricity"]
    prev, year = elec["previous"], elec["year_before"]
    assert (prev["start"], prev["end"]) == (
        "2026-03-28T00:00:00+01:00",
        "2026-03-29T00:00:00+01:00",
    )
    assert prev["total"] == pytest.approx(516.0) and prev["difference"] == pytest.approx(-12.0)
    assert prev["percent"] == pytest.approx(-12 / 516 * 100)
    assert year["start"] == "2025-03-29T00:00:00+01:00" and year["total"] == pytest.approx(516.0)
    autumn = _rows(await _get(api, compare=["previous", "year_before"], **DAY_AUTUMN))
    elec = autumn["electricity", "electricity"]
    assert elec["previous"]["difference"] == pytest.approx(12.0)  # 528 − 516
    assert elec["year_before"]["end"] == "2025-10-26T00:00:00+02:00"
    assert elec["year_before"]["percent"] == pytest.approx(12 / 516 * 100)
    # a range moves by its wall-clock length: 06:00-12:00 (Σ 16..21 = 111) against 00:00-06:00,
    # which lacks 02:00 (10 + 11 + 13 + 14 + 15 = 63)
    body = await _get(api, start="2026-03-29T06:00", end="2026-03-29T12:00", compare="previous")
    elec = _rows(body)["electricity", "electricity"]
    assert body["period"] is None and elec["total"] == pytest.approx(111.0)
    assert elec["previous"]["total"] == pytest.approx(63.0)
    assert elec["previous"]["start"] == "2026-03-29T00:00:00+01:00"


async def test_csv_parses_and_matches_json(api: httpx.AsyncClient) -> None:
    params = {"group": "tariff", "compare": ["previous", "year_before"], **DAY_AUTUMN}
    body = await _get(api, **params)
    by_param = await api.get("/v1/sites/b/totals", params={**params, "format": "csv"})
    by_accept = await api.get("/v1/sites/b/totals", params=params, headers={"Accept": "text/csv"})
    assert by_param.status_code == by_accept.status_code == 200
    assert by_param.headers["content-type"].startswith("text/csv")
    assert by_param.text == by_accept.text
    lines = list(csv.DictReader(io.StringIO(by_param.text)))
    assert len(lines) == len(body["rows"]) == 9  # 3 bands × electricity, gas, water
    for line, row in zip(lines, body["rows"], strict=True):
        assert line["key"] == row["key"] and line["utilities"] == "; ".join(row["utilities"])
        assert line["start"] == body["start"] and line["unit"] == row["unit"]
        for col in ("total", "estimated", "coverage"):
            assert float(line[col]) == row[col]
        assert int(line["samples_expected"]) == row["samples_expected"]
        assert line["channels"] == "; ".join(row["channels"])
        for how in ("previous", "year_before"):
            assert float(line[f"{how}_total"]) == row[how]["total"]
            assert float(line[f"{how}_difference"]) == row[how]["difference"]
            assert line[f"{how}_start"] == row[how]["start"]


@pytest.mark.parametrize(
    ("params", "status", "reason"),
    [
        ({"start": "2026-03-29T12:00", "end": "2026-03-29T06:00"}, 422, "end must be after start"),
        ({**DAY_SPRING, "group": "floor"}, 422, "'site', 'utility', 'area'"),
        ({**DAY_SPRING, "unit": "BTU"}, 422, "'kWh', 'MWh'"),
        (
            {**DAY_SPRING, "unit": "ML", "utility": "electricity"},
            422,
            "unit 'ML' does not fit electricity",
        ),
        ({**DAY_SPRING, "start": "2026-03-29T00:00"}, 422, "not both"),
        ({"period": "month"}, 422, "needs both period and at"),
        ({"period": "month", "at": "2026-13"}, 422, "not a real month"),
        ({"period": "day", "at": "2026"}, 422, "a day is named like 2026-03-29"),
        ({"period": "hour", "at": "2026-03-29"}, 422, "period must be one of day"),
        ({"start": "2026-03-29T00:00"}, 422, "give start and end"),
        ({**DAY_SPRING, "group": "site"}, 422, "grouping by site adds utilities"),
        ({**DAY_SPRING, "utility": "production"}, 422, "no production counters"),
        ({**DAY_SPRING, "compare": "last_week"}, 422, "'previous' or 'year_before'"),
        (
            {**DAY_SPRING, "unit": "tCO2e"},
            422,
            "no location-based natural_gas in region 'DE' factor",
        ),
    ],
)
async def test_wrong_parameters_get_4xx_with_a_reason(
    api: httpx.AsyncClient, params: dict[str, str], status: int, reason: str
) -> None:
    r = await api.get("/v1/sites/b/totals", params=params)
    assert r.status_code == status and reason in r.text, r.text


async def test_site_configuration_errors_get_422(store: SqliteStore) -> None:
    async with await _client(plant(tariffs=None, region=None), store) as api:
        no_tariffs = await api.get("/v1/sites/b/totals", params={**DAY_SPRING, "group": "tariff"})
        no_region = await api.get("/v1/sites/b/totals", params={**DAY_SPRING, "unit": "tCO2e"})
        nowhere = await api.get("/v1/sites/x/totals", params=DAY_SPRING)
    assert no_tariffs.status_code == 422 and "has no tariffs" in no_tariffs.text
    assert no_region.status_code == 422 and "emission-factor region" in no_region.text
    assert nowhere.status_code == 404

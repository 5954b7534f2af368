"""The API's parameter checks: wrong parameters get a 4xx that says what is wrong."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from compute import codec
from compute.aggregate import ChannelState, step
from compute.model import NS_PER_S, Quality, ReadingBatch
from compute.plant import Plant
from compute.rollups import Part
from services.aggregator import Aggregator, channel_specs
from services.api import create_app
from services.bus import Message
from services.bus.memory import MemoryBus
from services.metrics import MetricsError, Registry
from services.store import StoreWrite
from services.store.sqlite import SqliteStore
from tests.plants import meter, one_site
from tests.tokens import bearer, token_for

T0 = 1_795_406_400 * NS_PER_S  # 2026-11-23 12:00 in Shanghai


@pytest.fixture
async def api(plant: Plant, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with SqliteStore(tmp_path / "s.sqlite3") as store:
        rows = [
            ("main-incomer.energy-import", T0 + i * 30 * NS_PER_S, 1000.0 + i, Quality.GOOD)
            for i in range(5)
        ]
        batch = ReadingBatch.from_rows(meter_id="main-incomer", receive_ts_ns=T0, rows=rows)
        r = step([batch], channel_specs(plant), dict[str, ChannelState](), 60 * NS_PER_S)
        await store.write(
            StoreWrite(readings=r.readings, buckets=r.buckets, state=r.state, events=r.events)
        )
        async with await _client(plant, store) as client:
            yield client


async def _client(plant: Plant, store: SqliteStore) -> httpx.AsyncClient:
    """A client of the API over the store, with an admin token for all sites."""
    headers = bearer(await token_for(store))
    transport = httpx.ASGITransport(app=create_app(plant, store))
    return httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers)


async def test_naive_times_are_site_local(api: httpx.AsyncClient) -> None:
    local = await api.get(
        "/v1/sites/suzhou/totals", params={"start": "2026-11-23T12:00", "end": "2026-11-23T12:03"}
    )
    utc = await api.get(
        "/v1/sites/suzhou/totals",
        params={"start": "2026-11-23T04:00Z", "end": "2026-11-23T04:03:00+00:00"},
    )
    assert local.status_code == utc.status_code == 200
    assert local.json()["utilities"] == utc.json()["utilities"]
    (elec,) = [u for u in local.json()["utilities"] if u["utility"] == "electricity"]
    assert (
        elec["total"] == pytest.approx(4.0)
        and elec["samples_good"] == 5
        and elec["samples_expected"] == 180
    )


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        (
            {"start": "2026-11-23T12:00:30", "end": "2026-11-23T13:00"},
            "start must fall on a 60 s bucket boundary",
        ),
        ({"start": "2026-11-23T13:00", "end": "2026-11-23T12:00"}, "end must be after start"),
        ({"start": "yesterday", "end": "2026-11-23T12:00"}, "valid datetime"),
        ({"end": "2026-11-23T12:00"}, "give start and end, or period and at"),
    ],
)
async def test_wrong_totals_parameters_get_422_with_a_reason(
    api: httpx.AsyncClient, params: dict[str, str], reason: str
) -> None:
    r = await api.get("/v1/sites/suzhou/totals", params=params)
    assert r.status_code == 422 and reason in r.text


async def test_unknown_site_and_channel_are_404(api: httpx.AsyncClient) -> None:
    r = await api.get(
        "/v1/sites/atlantis/totals", params={"start": "2026-11-23T12:00", "end": "2026-11-23T13:00"}
    )
    assert r.status_code == 404 and "atlantis" in r.text
    r = await api.get(
        "/v1/channels/nope/series", params={"start": "2026-11-23T12:00", "end": "2026-11-23T13:00"}
    )
    assert r.status_code == 404


async def test_series_gives_consumption_per_bucket(api: httpx.AsyncClient) -> None:
    r = await api.get(
        "/v1/channels/main-incomer.energy-import/series",
        params={"start": "2026-11-23T12:00", "end": "2026-11-23T12:05"},
    )
    # readings every 30 s from 12:00:00; a delta over (a, b] belongs to the bucket holding b
    assert [p["value"] for p in r.json()] == pytest.approx([2.0, 2.0, 0.0])
    assert r.json()[0]["start"] == "2026-11-23T12:00:00+08:00"


async def test_live_lists_every_channel_even_without_data(
    api: httpx.AsyncClient, plant: Plant
) -> None:
    live = (await api.get("/v1/live")).json()
    assert len(live) == len(plant.channels)
    missing = [c for c in live if c["quality"] == "missing"]
    assert len(missing) == len(plant.channels) - 1 and all(c["value"] is None for c in missing)
    (old,) = [c for c in live if c["quality"] != "missing"]
    assert old["quality"] == "stale" and old["value"] == 1004.0 and old["age_s"] > 3600


async def test_calendar_series_follow_the_site_timezone_across_a_dst_change(
    tmp_path: Path,
) -> None:
    energy = {"id": "e", "unit": "kWh", "kind": "counter", "utility": "electricity"}
    berlin = one_site(
        [meter("m", "opcua", "opc.tcp://h:4840", [{**energy, "node_id": "ns=2;s=e"}],
               interval_s=60)],
        timezone="Europe/Berlin",
    )  # fmt: skip
    day_start_ns = 1_792_879_200 * NS_PER_S  # 2026-10-25 00:00 in Berlin (22:00Z the day before)
    rows = [
        ("m.e", day_start_ns + i * 1800 * NS_PER_S, 100.0 + i, Quality.GOOD) for i in range(-2, 53)
    ]
    async with SqliteStore(tmp_path / "s.sqlite3") as store:
        batch = ReadingBatch.from_rows(meter_id="m", receive_ts_ns=0, rows=rows)
        r = step([batch], channel_specs(berlin), {}, 60 * NS_PER_S)
        await store.write(
            StoreWrite(readings=r.readings, buckets=r.buckets, state=r.state, events=r.events)
        )
        async with await _client(berlin, store) as api:
            day = {"start": "2026-10-25T00:00", "end": "2026-10-26T00:00"}
            hours = await api.get("/v1/channels/m.e/series", params={**day, "period": "hour"})
            days = await api.get("/v1/channels/m.e/series", params={**day, "period": "day"})
            bad = await api.get("/v1/channels/m.e/series", params={**day, "period": "fortnight"})
    assert hours.status_code == days.status_code == 200
    assert len(hours.json()) == 25  # 02:00-03:00 happens twice
    assert [h["value"] for h in hours.json()] == pytest.approx([2.0] * 25)
    assert [h["start"][11:] for h in hours.json()[2:4]] == ["02:00:00+02:00", "02:00:00+01:00"]
    (d,) = days.json()
    assert (d["start"], d["end"]) == ("2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00")
    assert d["value"] == pytest.approx(50.0) and d["samples_expected"] == 25 * 60
    assert d["estimated"] == pytest.approx(50.0)  # 30-min intervals of a 1-min meter are gaps
    assert bad.status_code == 422 and "hour" in bad.text


async def test_idle_energy_is_consumption_while_the_line_stands_still(tmp_path: Path) -> None:
    counter = {"kind": "counter", "node_id": "ns=2;s=x"}
    energy = {
        **counter,
        "id": "e",
        "unit": "kWh",
        "utility": "electricity",
        "idle_with": "plc.made",
    }
    made = {**counter, "id": "made", "unit": "units", "utility": "production"}
    plant = one_site([
        meter("m", "opcua", "opc.tcp://h:4840", [energy]),
        meter("plc", "opcua", "opc.tcp://h:4840", [made]),
    ])  # fmt: skip
    rows = [("m.e", t * NS_PER_S, t / 60, Quality.GOOD) for t in range(0, 301, 20)]
    # the line makes a unit every 20 s for two minutes, then stands still, then goes silent
    rows += [("plc.made", t * NS_PER_S, min(t, 120) / 20, Quality.GOOD) for t in range(0, 221, 20)]
    async with SqliteStore(tmp_path / "s.sqlite3") as store:
        batch = ReadingBatch.from_rows(meter_id="m", receive_ts_ns=0, rows=rows)
        r = step([batch], channel_specs(plant), {}, 60 * NS_PER_S)
        await store.write(
            StoreWrite(readings=r.readings, buckets=r.buckets, state=r.state, events=r.events)
        )
        async with await _client(plant, store) as api:
            window = {"start": "1970-01-01T00:00Z", "end": "1970-01-01T00:05Z"}
            idle = (await api.get("/v1/channels/m.e/idle", params=window)).json()
            no_line = await api.get("/v1/channels/plc.made/idle", params=window)
    assert idle["idle_energy"] == pytest.approx(2.0)  # minutes 2 and 3, 1 kWh each
    assert (idle["idle_buckets"], idle["unknown_buckets"], idle["missing_buckets"]) == (2, 1, 0)
    assert no_line.status_code == 422 and "idle_with" in no_line.text


async def test_intensity_divides_by_recorded_period_values_or_production_counters(
    api: httpx.AsyncClient,
) -> None:
    period = {"start": "2026-11-23T12:00", "end": "2026-11-23T12:03"}
    query = {**period, "denominator": "units_produced"}
    from_counters = (await api.get("/v1/sites/suzhou/intensity", params=query)).json()
    assert from_counters["denominator_source"] == "production counters"
    assert from_counters["intensity"]["value"] is None  # nothing made: no value, and why
    assert from_counters["intensity"]["reason"] == "denominator is zero"

    made = {"kind": "units_produced", **period, "value": 8, "source": "MES batch report"}
    posted = await api.post("/v1/sites/suzhou/period-values", json=made)
    assert posted.status_code == 201 and posted.json()["unit"] == "unit"
    got = (await api.get("/v1/sites/suzhou/intensity", params=query)).json()
    assert got["denominator_source"] == "period values"
    assert got["numerator"]["value"] == pytest.approx(4.0)  # kWh on the incomer
    assert got["intensity"]["value"] == pytest.approx(0.5)
    assert got["intensity"]["unit"] == "kWh/unit (units_produced)"
    assert 0 < got["intensity"]["coverage"] < 1  # 5 good readings of 180 expected

    overlapping = {**made, "start": "2026-11-23T12:01", "end": "2026-11-23T12:05"}
    refused = await api.post("/v1/sites/suzhou/period-values", json=overlapping)
    assert refused.status_code == 422 and "overlaps the recorded period" in refused.text
    negative = await api.post("/v1/sites/suzhou/period-values", json={**made, "value": -1})
    assert negative.status_code == 422 and "value" in negative.text
    nowhere = await api.post("/v1/sites/atlantis/period-values", json=made)
    assert nowhere.status_code == 404
    listed = await api.get(
        "/v1/sites/suzhou/period-values", params={**period, "kind": "units_produced"}
    )
    assert [v["value"] for v in listed.json()] == [8.0]


async def test_totals_from_rollups_equal_the_buckets_across_a_dst_day(tmp_path: Path) -> None:
    energy = {"id": "e", "unit": "kWh", "kind": "counter", "utility": "electricity"}
    berlin = one_site(
        [meter("m", "opcua", "opc.tcp://h:4840", [{**energy, "node_id": "ns=2;s=e"}])],
        timezone="Europe/Berlin",
    )
    day_start_s = 1_792_879_200  # 2026-10-25 00:00 in Berlin: 25 hours long
    rows = [
        ("m.e", (day_start_s + t) * NS_PER_S, 100.0 + t / 360 + (t % 7) / 10, Quality.GOOD)
        for t in range(-3600, 27 * 3600, 600)
    ]
    batches = [
        ReadingBatch.from_rows(meter_id="m", receive_ts_ns=0, rows=rows[i : i + 6])
        for i in range(0, len(rows), 6)
    ]
    messages = [
        Message(topic="t", partition=0, offset=i, key=b"m", value=codec.encode(b))
        for i, b in enumerate(batches)
    ]
    async with SqliteStore(tmp_path / "s.sqlite3") as store:
        agg = Aggregator(berlin, MemoryBus(), store, group="g", clock_ns=lambda: 2**62)
        for m in messages:
            await agg.handle([m])
        async with await _client(berlin, store) as api:
            for start, end in (
                ("2026-10-25T00:00", "2026-10-26T00:00"),  # one day roll-up
                ("2026-10-24T23:30", "2026-10-26T00:30"),  # hours and buckets at both ends
                ("2026-10-25T02:10", "2026-10-25T03:20"),  # inside the repeated hour
            ):
                params = {"start": start, "end": end}
                total = (await api.get("/v1/sites/s/totals", params=params)).json()
                series = (await api.get("/v1/channels/m.e/series", params=params)).json()
                (elec,) = total["utilities"]
                assert elec["total"] == pytest.approx(sum(p["value"] for p in series)), start
                assert total["channels"][0]["samples"] == sum(p["samples"] for p in series)
        day = Part(source="day", start_ns=0, end_ns=2**62)
        assert await store.plan_totals(["m.e"], [day])  # the day roll-up served


async def test_metrics_count_requests_by_route_template_and_status(
    plant: Plant, tmp_path: Path
) -> None:
    registry = Registry()
    async with SqliteStore(tmp_path / "s.sqlite3") as store:
        headers = bearer(await token_for(store))
        app = create_app(plant, store, registry=registry)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/v1/live", headers=headers)).status_code == 200
            assert (await client.get("/v1/live")).status_code == 401
            for channel in ("main-incomer.energy-import", "nope"):
                await client.get(f"/v1/channels/{channel}/series", headers=headers)
            text = (await client.get("/metrics")).text
    requests = registry.counter  # the metric is declared once: declaring it again must fail
    with pytest.raises(MetricsError):
        requests("plantpulse_api_requests_total", "")
    assert 'route="/v1/live",status="200"} 1' in text
    assert 'route="/v1/live",status="401"} 1' in text
    # no start and end: 422 for both channels, counted under one route template
    assert 'route="/v1/channels/{channel_id}/series",status="422"} 2' in text
    assert "plantpulse_api_request_seconds_count 4" in text  # /metrics itself not yet counted

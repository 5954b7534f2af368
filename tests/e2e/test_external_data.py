"""External and manual data end to end, in the embedded pipeline (MemoryBus, aggregator, SQLite,
API): CSV imports and manual readings counted by the same kernels as live data, meter
replacements recorded after the fact, versioned emission factors, and refused input.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from compute.model import NS_PER_S
from tests.e2e.external_support import Pipeline, local_ns, minutes, pipeline, plant

D0, D1, D2 = "2026-03-10T00:00", "2026-03-11T00:00", "2026-03-12T00:00"
CSV = {"content-type": "text/csv"}


def hourly(channel_id: str, day: str, hours: int, base: float, per_h: float) -> str:
    return "".join(
        f"{channel_id},{day}T{h:02d}:00:00+08:00,{base + per_h * h:g}\n" for h in range(hours)
    )


async def test_a_csv_import_of_a_past_day_counts_in_its_totals_with_revisions(
    tmp_path: Path,
) -> None:
    async with pipeline(tmp_path, plant()) as pl:
        await pl.live("main", minutes("main.energy", D1, [996.0 + i for i in range(11)]))
        await pl.drained()
        assert await pl.total("main.energy", D0, D1) == 0.0
        text = "channel_id,ts,value\n" + hourly("main.energy", "2026-03-10", 24, 900.0, 4.0)
        r = await pl.api.post(
            "/v1/imports/readings", params={"reason": "logger L-7"}, content=text, headers=CSV
        )
        assert r.status_code == 202, r.text
        got = r.json()
        assert (got["readings"], got["already_stored"], got["batches"]) == (24, 0, 1)
        (ch,) = got["channels"]
        assert ch["first_ts"] == "2026-03-10T00:00:00+08:00"
        assert ch["last_ts"] == "2026-03-10T23:00:00+08:00"
        await pl.drained()
        # 23 hours between the imported readings, and 23:00 -> the live 00:00 reading
        assert await pl.total("main.energy", D0, D1) == pytest.approx(96.0)
        assert await pl.total("main.energy", D1, "2026-03-11T00:11") == pytest.approx(10.0)
        revised = await pl.store.revisions("main.energy", local_ns(D0), local_ns(D1))
        assert len(revised) >= 24 and sum(s for _, _, s in revised) == pytest.approx(96.0)
        (entry,) = [e for e in await pl.store.audit_log() if e.action == "readings imported"]
        assert entry.reason == "logger L-7" and "test engineer" in entry.actor
        assert entry.subject == f"import:{got['import_id']}"
        # the same file again: nothing new, nothing counted twice
        r = await pl.api.post(
            "/v1/imports/readings", params={"reason": "again"}, content=text, headers=CSV
        )
        assert (r.json()["readings"], r.json()["already_stored"], r.json()["batches"]) == (0, 24, 0)
        await pl.drained()
        assert await pl.total("main.energy", D0, D1) == pytest.approx(96.0)


async def test_manual_readings_reach_the_buckets(tmp_path: Path) -> None:
    async with pipeline(tmp_path, plant()) as pl:
        for ts, value in (("2026-03-10T08:00:00+08:00", 500.0), ("2026-03-10T20:00:00+08:00", 530)):
            r = await pl.api.post(
                "/v1/channels/gasm.volume/readings",
                json={"ts": ts, "value": value, "reason": "monthly round, M. Chen"},
            )
            assert r.status_code == 202, r.text
            assert r.json()["channels"][0]["readings"] == 1
        await pl.drained()
        assert await pl.total("gasm.volume", D0, D1) == pytest.approx(30.0)
        # spread over the 12 hours between the readings, estimated
        hours = await pl.series("gasm.volume", "2026-03-10T08:00", "2026-03-10T20:00")
        assert sum(hours) == pytest.approx(30.0) and len(hours) == 720
        actions = [e.action for e in await pl.store.audit_log()]
        assert actions.count("readings imported") == 2


AT = "2026-03-11T00:05:30+08:00"
SWAP = {"at": AT, "old_final": 1005.2, "new_initial": 0.1}
OLD_NEW = [1000.0, 1001, 1002, 1003, 1004, 1005, 0.4, 1.4, 2.4, 3.4, 4.4]


async def test_a_replacement_recorded_after_the_fact_counts_as_a_configured_one(
    tmp_path: Path,
) -> None:
    span = (D1, "2026-03-11T00:15")
    async with pipeline(tmp_path / "configured", plant([SWAP])) as pl:
        await pl.live("main", minutes("main.energy", D1, OLD_NEW))
        await pl.drained()
        expected = await pl.series("main.energy", *span)
        expected_total = await pl.total("main.energy", *span)
    assert expected_total == pytest.approx(5.2 + 0.3 + 4.0)
    async with pipeline(tmp_path / "after", plant()) as pl:
        await pl.live("main", minutes("main.energy", D1, OLD_NEW))
        await pl.drained()
        assert await pl.series("main.energy", *span) != expected
        r = await pl.api.post(
            "/v1/channels/main.energy/replacements", json={**SWAP, "reason": "WO-1187 swap"}
        )
        assert r.status_code == 202, r.text
        await pl.drained()
        assert await pl.series("main.energy", *span) == expected
        assert await pl.total("main.energy", *span) == pytest.approx(expected_total)
        (listed,) = (await pl.api.get("/v1/channels/main.energy/replacements")).json()
        assert listed["source"] == "api" and listed["at"] == "2026-03-11T00:05:30+08:00"
        assert listed["reason"] == "WO-1187 swap" and "test engineer" in listed["actor"]
        (entry,) = await pl.store.audit_log("main.energy")
        assert entry.action == "meter replacement recorded" and entry.reason == "WO-1187 swap"
        assert await pl.store.revisions("main.energy", local_ns(D1), local_ns(span[1]))
        # later readings of the new meter count from it, as with the configured replacement
        await pl.live("main", minutes("main.energy", "2026-03-11T00:11", [5.4, 6.4]))
        await pl.drained()
        assert await pl.total("main.energy", D1, "2026-03-11T00:15") == pytest.approx(11.5)
        r = await pl.api.post(
            "/v1/channels/main.energy/replacements", json={**SWAP, "reason": "again"}
        )
        assert r.status_code == 409 and "already" in r.text


async def _emissions(pl: Pipeline, start: str, end: str) -> dict[str, Any]:
    params = {"start": start, "end": end, "region": "CN"}
    r = await pl.api.get("/v1/sites/s/emissions", params=params)
    assert r.status_code == 200, r.text
    (scope2,) = [s for s in r.json()["scopes"] if s["scope"] == 2]
    return dict(scope2)


async def test_a_new_factor_version_changes_emissions_of_its_validity_only(tmp_path: Path) -> None:
    async with pipeline(tmp_path, plant()) as pl:
        text = "channel_id,ts,value\n" + hourly("main.energy", "2026-03-10", 24, 900.0, 4.0)
        text += hourly("main.energy", "2026-03-11", 24, 996.0, 4.0)
        r = await pl.api.post(
            "/v1/imports/readings", params={"reason": "bill"}, content=text, headers=CSV
        )
        assert r.status_code == 202, r.text
        await pl.drained()
        day0, day1 = await _emissions(pl, D0, D1), await _emissions(pl, D1, D2)
        assert day0["quantity"] == pytest.approx(0.096) and day1["quantity"] == pytest.approx(0.092)
        assert day1["emissions_tco2"] == pytest.approx(0.092 * 0.5703)
        params = {"start": D0, "end": D1, "region": "XX"}  # no factor for the region
        r = await pl.api.get("/v1/sites/s/emissions", params=params)
        (unfactored,) = [s for s in r.json()["scopes"] if s["scope"] == 2]
        assert unfactored["quantity"] == pytest.approx(0.096)
        assert unfactored["emissions_tco2"] is None and unfactored["factors"] == []
        assert "XX" in unfactored["reason"]
        factor = {
            "id": "cn-grid",
            "version": "2026-rev",
            "activity": "electricity_grid",
            "region": "CN",
            "valid_from": "2026-03-11T00:00:00+08:00",
            "valid_to": "2026-03-12T00:00:00+08:00",
            "value": 0.6,
            "source": "provincial notice (test)",
            "reason": "the province's factor for that day",
        }
        r = await pl.api.post("/v1/emission-factors", json=factor)
        assert r.status_code == 201, r.text
        assert await _emissions(pl, D0, D1) == day0
        changed = await _emissions(pl, D1, D2)
        assert changed["emissions_tco2"] == pytest.approx(0.092 * 0.6)
        both = await _emissions(pl, D0, D2)
        assert both["emissions_tco2"] == pytest.approx(0.096 * 0.5703 + 0.092 * 0.6)
        assert [f["ref"] for f in both["factors"]] == [
            "default-cn-grid@mee-2024",
            "cn-grid@2026-rev",
        ]
        revised = {**factor, "version": "2026-rev2", "value": 0.61, "reason": "errata"}
        r = await pl.api.post("/v1/emission-factors", json=revised)
        assert r.status_code == 409 and "name cn-grid@2026-rev in supersedes" in r.text
        r = await pl.api.post(
            "/v1/emission-factors", json={**revised, "supersedes": ["cn-grid@2026-rev"]}
        )
        assert r.status_code == 201, r.text
        assert (await _emissions(pl, D1, D2))["emissions_tco2"] == pytest.approx(0.092 * 0.61)
        assert await _emissions(pl, D0, D1) == day0
        listed = await pl.api.get(
            "/v1/emission-factors",
            params={"activity": "electricity_grid", "valid_at": "2026-03-11T12:00:00+08:00"},
        )
        assert [f["ref"] for f in listed.json()] == ["cn-grid@2026-rev2"]
        everything = (await pl.api.get("/v1/emission-factors")).json()
        first = next(f for f in everything if f["ref"] == "cn-grid@2026-rev")
        assert first["in_effect"] == [] and first["recorded_at"] is not None
        audit = await pl.store.audit_log("emission-factor:cn-grid")
        assert [e.reason for e in audit] == ["the province's factor for that day", "errata"]
        assert audit[1].old_value is not None and "cn-grid@2026-rev" in audit[1].old_value


ROW = "main.energy,2026-03-10T00:00:00+08:00,900"
REFUSED = [
    ("csv", "nope.x,2026-03-10T00:00:00+08:00,1", "row 3, channel_id: unknown channel 'nope.x'"),
    ("csv", "main.energy,2026-03-10T00:00:00,1", "row 3, ts: '2026-03-10T00:00:00' has no UTC"),
    ("csv", "main.energy,2030-01-01T00:00:00Z,1", "row 3, ts: '2030-01-01T00:00:00Z' is in the"),
    ("csv", f"{ROW}\n{ROW}", "row 3, ts: duplicate: channel 'main.energy'"),
    ("csv", f"{ROW}\nmain.energy,2026-03-10T01:00:00+08:00,899", "row 3, value: counter"),
    ("csv", f"{ROW}\nmain.energy,2026-03-10T01:00:00+08:00,abc", "row 3, value: 'abc' is not a"),
    ("csv", "main.energy,2026-03-11T00:00:00+08:00,995", "has a stored reading at this time, 996"),
    ("csv", "main.energy,2026-03-10T23:59:00+08:00,997", "goes back between this reading and"),
    ("manual", {"ts": "2026-03-10T00:00:00", "value": 1, "reason": "r"}, "timezone"),
    ("manual", {"ts": "2030-01-01T00:00:00Z", "value": 1, "reason": "r"}, "ts: '2030-01-01"),
    ("manual", {"ts": "2026-03-10T00:00:00Z", "value": "x", "reason": "r"}, "value"),
    ("swap", {**SWAP, "at": "2030-01-01T00:00:00Z", "reason": "r"}, "at is in the future"),
    ("swap", {**SWAP, "old_final": 990, "reason": "r"}, "old_final 990 is below"),
    ("swap", {**SWAP, "reason": ""}, "reason"),
    ("factor", {"value": 0.5, "unit": "kgCO2/kWh"}, "unit 'kgCO2/kWh' is not 'tCO2/MWh'"),
    ("factor", {"value": -1}, "greater than or equal to 0"),
    ("factor", {"value": 1, "valid_from": "0001-01-01T00:00:00Z"}, "between 1970 and 2262"),
    ("swap", {**SWAP, "at": "0001-01-01T00:00:00Z", "reason": "r"}, "at is before 1970"),
]


@pytest.mark.parametrize(("kind", "data", "reason"), REFUSED, ids=[r[2][:40] for r in REFUSED])
async def test_refused_input_gets_4xx_naming_the_row_or_field_and_publishes_nothing(
    tmp_path: Path, kind: str, data: object, reason: str
) -> None:
    async with pipeline(tmp_path, plant()) as pl:
        await pl.live("main", minutes("main.energy", D1, [996.0 + i for i in range(6)]))
        await pl.drained()
        before = pl.published()
        if kind == "csv":
            # a good row first: a file is refused whole
            body = f"channel_id,ts,value\n{ROW.replace('900', '899.5')}\n{data}\n"
            if str(data).startswith(ROW):
                body = f"channel_id,ts,value\n{data}\n"
            r = await pl.api.post(
                "/v1/imports/readings", params={"reason": "r"}, content=body, headers=CSV
            )
        elif kind == "manual":
            r = await pl.api.post("/v1/channels/main.energy/readings", json=data)
        elif kind == "swap":
            r = await pl.api.post("/v1/channels/main.energy/replacements", json=data)
        else:
            assert isinstance(data, dict)
            factor = {
                "id": "f",
                "version": "1",
                "activity": "electricity_grid",
                "region": "CN",
                "valid_from": "2026-01-01T00:00:00+08:00",
                "source": "s",
                "reason": "r",
                **data,
            }
            r = await pl.api.post("/v1/emission-factors", json=factor)
        assert r.status_code == 422 and reason in r.text, r.text
        assert pl.published() == before
        assert await pl.store.factor_versions() == []


async def test_refusals_that_are_not_about_the_rows(tmp_path: Path) -> None:
    async with pipeline(tmp_path, plant()) as pl:
        before = pl.published()
        text = f"channel_id,ts,value\n{ROW}\n"
        r = await pl.api.post(
            "/v1/imports/readings", params={"reason": "r"}, content=text, headers=pl.viewer
        )
        assert r.status_code == 403 and "needs the role engineer or admin" in r.text
        r = await pl.api.post("/v1/imports/readings", content=text)
        assert r.status_code == 422 and "reason" in r.text
        r = await pl.api.post("/v1/channels/main.temp/replacements", json={**SWAP, "reason": "r"})
        assert r.status_code == 422 and "is a gauge" in r.text
        r = await pl.api.post(
            "/v1/channels/nope.x/readings", json={"ts": AT, "value": 1, "reason": "r"}
        )
        assert r.status_code == 404
        period = {"kind": "units_produced", "start": D0, "end": D1, "value": 10, "source": "MES"}
        r = await pl.api.post("/v1/sites/s/period-values", json=period)
        assert r.status_code == 201, r.text
        r = await pl.api.post("/v1/sites/s/period-values", json={**period, "value": 11})
        assert r.status_code == 422 and "needs a reason" in r.text
        assert pl.published() == before
    async with pipeline(tmp_path / "no-bus", plant(), with_bus=False) as pl:
        r = await pl.api.post(
            "/v1/imports/readings", params={"reason": "r"}, content=text, headers=CSV
        )
        assert r.status_code == 503 and "PT_KAFKA_BOOTSTRAP" in r.text


async def test_a_large_file_is_streamed_and_published_in_batches_of_5000(tmp_path: Path) -> None:
    async with pipeline(tmp_path, plant()) as pl:
        await pl.live("main", minutes("main.energy", "2026-03-19T00:00", [20_000.0, 20_001.0]))
        await pl.drained()
        t0_s = local_ns(D0) // NS_PER_S
        lines = ["channel_id,ts,value\n"] + [
            f"main.energy,{datetime.fromtimestamp(t0_s + 60 * i, UTC).isoformat()},"
            f"{10_000 + 0.25 * i}\n"
            for i in range(12_000)
        ]
        raw = "".join(lines).encode()

        async def chunks() -> AsyncIterator[bytes]:  # lines split across chunks
            for i in range(0, len(raw), 4093):
                yield raw[i : i + 4093]

        r = await pl.api.post(
            "/v1/imports/readings", params={"reason": "logger dump"}, content=chunks(), headers=CSV
        )
        assert r.status_code == 202, r.text
        assert (r.json()["readings"], r.json()["batches"]) == (12_000, 3)
        await pl.drained(timeout_s=60)
        # 11,999 minutes of 0.25 kWh, then from the last imported reading to the live one
        total = await pl.total("main.energy", D0, "2026-03-19T00:00")
        assert total == pytest.approx(20_000.0 - 10_000.0)
        assert await pl.total("main.energy", D0, "2026-03-10T01:00") == pytest.approx(15.0)

"""Emission-factor versions: an overlap needs an explicit supersede, which cuts the superseded
version back; the defaults fill what no recorded version covers."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from compute.emissions import Activity, Basis, EmissionFactor, FactorKey, FactorTable
from compute.factor_versions import (
    DEFAULT_FACTORS,
    FactorConflict,
    FactorVersion,
    check_new,
    effective,
    with_defaults,
)
from compute.model import datetime_ns


def _ns(year: int, month: int = 1) -> int:
    return datetime_ns(datetime(year, month, 1, tzinfo=UTC))


def grid(
    version: str,
    value: float,
    start: int,
    end: int | None,
    *,
    at: int,
    supersedes: tuple[str, ...] = (),
    region: str = "CN",
    fid: str = "cn-grid",
) -> FactorVersion:
    return FactorVersion(
        factor=EmissionFactor(
            id=fid,
            version=version,
            activity=Activity.ELECTRICITY_GRID,
            region=region,
            valid_from_ns=start,
            valid_to_ns=end,
            value=value,
            unit="tCO2/MWh",
            source="MEE",
        ),
        supersedes=supersedes,
        recorded_at_ns=at,
    )


V2021 = grid("2021", 0.5810, _ns(2021), None, at=1)


def _spans(fs: list[EmissionFactor]) -> list[tuple[str, int, int | None]]:
    return [(f.ref, f.valid_from_ns, f.valid_to_ns) for f in fs]


def test_an_overlap_without_supersede_is_refused_naming_what_it_overlaps() -> None:
    new = grid("2022", 0.5703, _ns(2022), None, at=2)
    with pytest.raises(FactorConflict, match=r"overlaps cn-grid@2021 .* name cn-grid@2021 in"):
        check_new(new, [V2021])
    other_region = grid("js", 0.6, _ns(2022), None, at=2, region="CN/east", fid="east")
    check_new(other_region, [V2021])  # another key: no overlap


def test_a_supersede_cuts_the_old_version_back_from_a_date_on() -> None:
    new = grid("2022", 0.5703, _ns(2022), None, at=2, supersedes=("cn-grid@2021",))
    check_new(new, [V2021])
    assert _spans(effective([new, V2021])) == [
        ("cn-grid@2021", _ns(2021), _ns(2022)),
        ("cn-grid@2022", _ns(2022), None),
    ]
    # a revision of 2022 alone, recorded later, cuts the 2022 version's start
    fix = grid("2022r", 0.5720, _ns(2022), _ns(2023), at=3, supersedes=("cn-grid@2022",))
    check_new(fix, [V2021, new])
    table = FactorTable(effective([V2021, new, fix]))
    key = FactorKey(activity=Activity.ELECTRICITY_GRID, region="CN")
    assert [table.select(key, _ns(y, 6)).ref for y in (2021, 2022, 2023)] == [
        "cn-grid@2021",
        "cn-grid@2022r",
        "cn-grid@2022",
    ]


def test_what_cannot_be_superseded_is_refused() -> None:
    inside = grid("h1", 0.5, _ns(2022), _ns(2022, 7), at=2, supersedes=("cn-grid@2021",))
    with pytest.raises(FactorConflict, match=r"would split cn-grid@2021 .* in two"):
        check_new(inside, [V2021])
    with pytest.raises(FactorConflict, match=r"supersedes \['cn-grid@1999'\]: no such"):
        check_new(dataclasses.replace(inside, supersedes=("cn-grid@1999",)), [V2021])
    before = grid("2019", 0.6, _ns(2019), _ns(2020), at=2, supersedes=("cn-grid@2021",))
    with pytest.raises(FactorConflict, match="not in effect"):
        check_new(before, [V2021])
    with pytest.raises(FactorConflict, match="exists"):
        check_new(dataclasses.replace(V2021, recorded_at_ns=5), [V2021])
    gas = FactorVersion(
        factor=EmissionFactor(
            id="cn-grid",
            version="gas",
            activity=Activity.NATURAL_GAS,
            region="CN",
            valid_from_ns=0,
            value=2.16,
            unit="tCO2/1000m3",
            source="x",
        ),
        recorded_at_ns=2,
    )
    with pytest.raises(FactorConflict, match="is the id of the location-based electricity_grid"):
        check_new(gas, [V2021])


def test_defaults_fill_only_where_no_recorded_factor_of_their_key_is_valid() -> None:
    FactorTable(DEFAULT_FACTORS)  # a valid table on its own
    mid = grid("2023", 0.55, _ns(2023), _ns(2024), at=1).factor
    got = with_defaults([mid], DEFAULT_FACTORS)
    key = FactorKey(activity=Activity.ELECTRICITY_GRID, region="CN")
    table = FactorTable(got)
    assert [table.select(key, _ns(y, 6)).ref for y in (2021, 2022, 2023, 2025)] == [
        "default-cn-grid@mee-2023",
        "default-cn-grid@mee-2024",
        "cn-grid@2023",
        "default-cn-grid@mee-2024#2",
    ]
    market = FactorKey(activity=Activity.ELECTRICITY_GRID, region="CN", basis=Basis.MARKET)
    with pytest.raises(LookupError):  # no default for market-based Scope 2
        table.select(market, _ns(2023))
    gas = FactorKey(activity=Activity.NATURAL_GAS, region="CN/east")
    assert table.select(gas, _ns(2024)).value == pytest.approx(2.1622, abs=1e-4)

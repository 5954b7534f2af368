"""Emission factors: the IPCC gas chain, validity boundaries, revisions, market-based Scope 2."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from compute.emissions import (
    NATURAL_GAS_DEFAULT,
    Activity,
    Basis,
    EmissionFactor,
    EmissionsError,
    FactorKey,
    FactorTable,
    MissingFactorError,
    emissions,
    scope1_natural_gas,
    scope2_location,
    scope2_market,
)
from compute.indicators import round_half_up

SHANGHAI = ZoneInfo("Asia/Shanghai")
GRID = FactorKey(activity=Activity.ELECTRICITY_GRID, region="CN")


def _ns(year: int, month: int = 1, day: int = 1) -> int:
    return int(datetime(year, month, day, tzinfo=SHANGHAI).timestamp()) * 1_000_000_000


def _grid(
    version: str,
    value: float,
    start: int,
    end: int | None,
    region: str = "CN",
    basis: Basis = Basis.LOCATION,
) -> EmissionFactor:
    return EmissionFactor(
        id=f"grid-{region.lower()}",
        version=version,
        activity=Activity.ELECTRICITY_GRID,
        region=region,
        valid_from_ns=start,
        valid_to_ns=end,
        value=value,
        unit="tCO2/MWh",
        basis=basis,
        source=f"MEE notice ({version})",
    )


CN_2021 = _grid("mee-2022", 0.5810, _ns(2021), _ns(2022))
CN_2022 = _grid("mee-2024", 0.5703, _ns(2022), _ns(2023))
TABLE = FactorTable([CN_2021, CN_2022])
GAS = EmissionFactor(
    id="ng-default",
    version="gbt32150-2015",
    activity=Activity.NATURAL_GAS,
    region="CN",
    valid_from_ns=_ns(2015),
    value=NATURAL_GAS_DEFAULT.tco2_per_unit,
    unit="tCO2/1000m3",
    source=NATURAL_GAS_DEFAULT.source,
)


def test_natural_gas_factor_from_the_ipcc_chain() -> None:
    # 38.931 GJ/1000 m3 × 10^-3 TJ/GJ × 15.3 tC/TJ × 0.99 × 44/12
    expected = 38.931e-3 * 15.3 * 0.99 * 44 / 12
    assert NATURAL_GAS_DEFAULT.tco2_per_unit == pytest.approx(expected, rel=1e-15)
    assert NATURAL_GAS_DEFAULT.tco2_per_unit == pytest.approx(2.1621888, rel=1e-7)
    assert round_half_up(NATURAL_GAS_DEFAULT.tco2_per_unit, 2) == Decimal("2.16")


def test_scope1_of_a_thousand_m3_of_gas() -> None:
    result = scope1_natural_gas(
        FactorTable([GAS]), "CN/east/jiangsu", _ns(2024), _ns(2024, 2), volume_m3=1_000.0
    )
    assert round_half_up(result.emissions_tco2, 3) == Decimal("2.162")
    assert result.quantity == 1.0 and result.scope == 1
    assert result.factor_refs == ("ng-default@gbt32150-2015",)


def test_selection_at_validity_boundaries_is_half_open() -> None:
    assert TABLE.select(GRID, _ns(2021)).value == 0.5810
    assert TABLE.select(GRID, _ns(2022) - 1).value == 0.5810
    assert TABLE.select(GRID, _ns(2022)).value == 0.5703
    assert TABLE.select(GRID, _ns(2023) - 1).value == 0.5703
    with pytest.raises(MissingFactorError, match=r"electricity_grid.*'CN'.*2022-12-31T16:00"):
        TABLE.select(GRID, _ns(2023))
    with pytest.raises(MissingFactorError, match="market-based"):
        TABLE.select(
            FactorKey(activity=Activity.ELECTRICITY_GRID, region="CN", basis=Basis.MARKET),
            _ns(2022),
        )


def test_the_most_specific_region_that_covers_the_time_wins() -> None:
    east_h1 = _grid("test-1", 0.60, _ns(2022), _ns(2022, 7), region="CN/east")
    table = FactorTable([CN_2021, CN_2022, east_h1])
    jiangsu = FactorKey(activity=Activity.ELECTRICITY_GRID, region="CN/east/jiangsu")
    north = FactorKey(activity=Activity.ELECTRICITY_GRID, region="CN/north")
    assert table.select(jiangsu, _ns(2022, 3)) is east_h1
    assert table.select(jiangsu, _ns(2022, 8)) is CN_2022  # the region's factor has ended
    assert table.select(north, _ns(2022, 3)) is CN_2022
    segments = table.segments(jiangsu, _ns(2022), _ns(2023))
    assert [s.factor for s in segments] == [east_h1, CN_2022]
    assert segments[0].end_ns == _ns(2022, 7)


def test_a_period_spanning_a_revision_is_split_at_the_boundary() -> None:
    dec, jan = _ns(2021, 12), _ns(2022, 2)  # 31 + 31 days
    segments = TABLE.segments(GRID, dec, jan)
    assert [(s.start_ns, s.end_ns, s.weight) for s in segments] == [
        (dec, _ns(2022), 0.5),
        (_ns(2022), jan, 0.5),
    ]
    result = scope2_location(TABLE, "CN", dec, jan, purchased_mwh=100.0)
    assert result.emissions_tco2 == pytest.approx(50 * 0.5810 + 50 * 0.5703, rel=1e-12)  # 57.565
    assert round_half_up(result.emissions_tco2, 3) == Decimal("57.565")
    assert result.factor_refs == ("grid-cn@mee-2022", "grid-cn@mee-2024")
    assert [u.quantity for u in result.uses] == [50.0, 50.0]


def test_per_segment_activity_is_exact() -> None:
    result = emissions(TABLE, GRID, _ns(2021, 12), _ns(2022, 2), [30.0, 70.0])
    assert result.emissions_tco2 == pytest.approx(30 * 0.5810 + 70 * 0.5703, rel=1e-12)
    assert result.quantity == 100.0
    with pytest.raises(EmissionsError, match="1 quantities for 2 factor segments"):
        emissions(TABLE, GRID, _ns(2021, 12), _ns(2022, 2), [100.0])


def test_a_period_not_fully_covered_names_the_gap() -> None:
    with pytest.raises(MissingFactorError) as e:
        TABLE.segments(GRID, _ns(2022, 12), _ns(2023, 2))
    assert "location-based electricity_grid in region 'CN'" in str(e.value)
    assert "[2022-12-31T16:00:00+00:00, 2023-01-31T16:00:00+00:00)" in str(e.value)


def test_restating_under_a_revised_table_is_explicit_and_traceable() -> None:
    v1 = FactorTable([_grid("mee-2022", 0.5810, _ns(2021), _ns(2023))])  # both years at 0.5810
    year = (_ns(2022), _ns(2023))
    before = scope2_location(v1, "CN", *year, purchased_mwh=1_000.0)
    after = scope2_location(TABLE, "CN", *year, purchased_mwh=1_000.0)
    assert (before.emissions_tco2, after.emissions_tco2) == pytest.approx((581.0, 570.3))
    assert before.factor_refs == ("grid-cn@mee-2022",)
    assert after.factor_refs == ("grid-cn@mee-2024",)


def test_overlapping_validity_for_one_key_is_invalid() -> None:
    with pytest.raises(EmissionsError, match="grid-cn@mee-2022 and grid-cn@mee-2024 overlap"):
        FactorTable([_grid("mee-2022", 0.5810, _ns(2021), _ns(2023)), CN_2022])
    with pytest.raises(EmissionsError, match="overlap"):  # open-ended, then another
        FactorTable([_grid("a", 0.5, _ns(2020), None), _grid("b", 0.6, _ns(2024), None)])
    with pytest.raises(EmissionsError, match="appears twice"):
        FactorTable([CN_2021, CN_2021])
    market = _grid("contract", 0.45, _ns(2021), _ns(2023), basis=Basis.MARKET)
    east = _grid("east", 0.6, _ns(2021), _ns(2023), region="CN/east")
    assert len(FactorTable([CN_2021, CN_2022, market, east]).factors) == 4


def test_a_factor_is_validated() -> None:
    with pytest.raises(EmissionsError, match="unit 'tCO2/kWh'"):
        EmissionFactor(
            id="x",
            version="1",
            activity=Activity.ELECTRICITY_GRID,
            region="CN",
            valid_from_ns=0,
            value=0.5,
            unit="tCO2/kWh",
            source="s",
        )
    with pytest.raises(EmissionsError, match="no market basis"):
        EmissionFactor(
            id="x",
            version="1",
            activity=Activity.NATURAL_GAS,
            region="CN",
            valid_from_ns=0,
            value=2.16,
            unit="tCO2/1000m3",
            basis=Basis.MARKET,
            source="s",
        )
    with pytest.raises(EmissionsError, match="valid_to_ns"):
        _grid("x", 0.5, _ns(2022), _ns(2022))


def test_heat_is_scope_2() -> None:
    heat = EmissionFactor(
        id="heat",
        version="1",
        activity=Activity.HEAT,
        region="CN",
        valid_from_ns=_ns(2020),
        value=0.11,
        unit="tCO2/GJ",
        source="test",
    )
    key = FactorKey(activity=Activity.HEAT, region="CN")
    result = emissions(FactorTable([heat]), key, _ns(2024), _ns(2025), 1_000.0)  # GJ
    assert result.emissions_tco2 == pytest.approx(110.0) and result.scope == 2


CONTRACT = _grid("supplier-2024", 0.45, _ns(2024), _ns(2025), basis=Basis.MARKET)
MARKET = FactorTable([CN_2022, CONTRACT])


def test_market_based_nets_certificates_against_purchases() -> None:
    result = scope2_market(
        MARKET, "CN", _ns(2024), _ns(2024, 2), purchased_mwh=1_000.0, certificates_mwh=300.0
    )
    assert result.emissions_tco2 == pytest.approx(700 * 0.45, rel=1e-12)
    assert result.certificates_mwh == 300.0 and result.quantity == 700.0
    assert result.key.basis is Basis.MARKET
    assert result.factor_refs == ("grid-cn@supplier-2024",)


def test_certificates_above_purchases_give_zero_not_negative() -> None:
    result = scope2_market(
        MARKET, "CN", _ns(2024), _ns(2024, 2), purchased_mwh=1_000.0, certificates_mwh=1_500.0
    )
    assert result.emissions_tco2 == 0.0
    assert result.certificates_mwh == 1_000.0  # only what was purchased is covered


def test_market_based_never_falls_back_to_a_location_factor() -> None:
    with pytest.raises(MissingFactorError, match="market-based"):
        scope2_market(TABLE, "CN", _ns(2022), _ns(2022, 2), purchased_mwh=10.0)


@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_a_bad_activity_figure_is_refused(bad: float) -> None:
    with pytest.raises(EmissionsError):
        scope2_location(TABLE, "CN", _ns(2022), _ns(2022, 2), purchased_mwh=bad)
    with pytest.raises(EmissionsError):
        scope2_market(
            MARKET, "CN", _ns(2024), _ns(2024, 2), purchased_mwh=1.0, certificates_mwh=bad
        )

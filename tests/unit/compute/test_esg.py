"""ESG report: a synthetic plant-year whose every indicator is worked out by hand, rounding,
missing inputs, restatement and the content hash."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from math import floor
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from compute.denominators import PeriodValue, denominator_over
from compute.emissions import Activity, Basis, EmissionFactor, FactorTable
from compute.esg import build_report
from compute.esg_model import (
    EsgError,
    EsgInputs,
    EsgReport,
    Framework,
    ManualEmission,
    Measured,
    ReportSpec,
    WaterSource,
)
from compute.esg_output import (
    CSV_COLUMNS,
    HASH_KEY,
    content_hash,
    csv_rows,
    restatement_to_dict,
    restatements,
    to_dict,
)
from compute.indicators import Coverage, Denominator, Figure
from compute.model import datetime_ns

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _ns(year: int, month: int = 1, day: int = 1) -> int:
    return datetime_ns(datetime(year, month, day, tzinfo=SHANGHAI))


START, END = _ns(2022), _ns(2023)  # the plant-year 2022, in the site's calendar

# ---- the synthetic plant-year: raw inputs -------------------------------------------------------
GRID_KWH = 1_200_000  # purchased from the grid
CERT_KWH = 200_000  # of which green certificates cover
PV_KWH = 50_000  # on-site PV consumed on site
GAS_M3 = 80_000
PRODUCTION_KWH, OFFICE_KWH = 1_004_560, 183_420  # area meters (TECP, TECO)
MUNICIPAL_M3, GROUND_M3 = 62_350, 4_870  # withdrawal by source (FWV = their sum)
DISCHARGE_M3, RECYCLED_M3, PRODUCTION_WATER_M3 = 49_815, 15_430, 41_260
UNITS, OUTPUT_10K_CNY, REVENUE_10K_CNY, HEADCOUNT, FLOOR_M2 = 100_000, 52_380, 61_240, 437, 36_500

# ---- DOMAIN.md constants, as exact fractions for the hand arithmetic ----------------------------
D = Fraction  # Fraction("0.5703") is exactly 5703/10000
GJ_PER_KWH = D("3.6") / 1000  # 1 kWh = 3.6 MJ
GAS_LHV_GJ_PER_1000M3 = D("38.931")  # GB/T 32150 / IPCC default LHV
# tCO2 per 1000 m3 = 38.931 GJ ÷ 1000 × 15.3 tC/TJ × 0.99 × 44/12 = 2.162188809 exactly
GAS_TCO2_PER_1000M3 = D("38.931") / 1000 * D("15.3") * D("0.99") * D(44, 12)
GRID_TCO2_PER_MWH = D("0.5703")  # China national grid, 2022 data (published 2024)

GRID_2022 = EmissionFactor(
    id="grid-cn",
    version="mee-2024",
    activity=Activity.ELECTRICITY_GRID,
    region="CN",
    valid_from_ns=_ns(2022),
    valid_to_ns=_ns(2023),
    value=0.5703,
    unit="tCO2/MWh",
    source="MEE notice (2024): national grid average for 2022 data",
)
GAS_FACTOR = EmissionFactor(
    id="ng-cn",
    version="gbt32150-2015",
    activity=Activity.NATURAL_GAS,
    region="CN",
    valid_from_ns=_ns(2016),
    value=38.931 / 1000 * 15.3 * 0.99 * 44 / 12,
    unit="tCO2/1000m3",
    source="GB/T 32150-2015 / IPCC 2006: LHV 38.931 GJ/1000 m3, 15.3 tC/TJ, 99 % oxidised",
)
TABLE = FactorTable([GRID_2022, GAS_FACTOR])

# coverage (good / expected samples) and estimated shares of the inputs
GRID_COV = Coverage(expected=35_040, received=35_040, good=34_900)  # 15-min samples
PV_COV = Coverage(expected=35_040, received=35_000, good=35_000)
GAS_COV = Coverage(expected=8_760, received=8_760, good=8_700)  # hourly
GROUND_COV = Coverage(expected=8_760, received=8_000, good=8_000)
DISCHARGE_COV = Coverage(expected=8_760, received=8_760, good=8_500)
HOURLY = Coverage.complete(8_760)
QUARTER_HOURLY = Coverage.complete(35_040)
GRID_EST, PV_EST, MUNICIPAL_EST, GROUND_EST = 0.01, 0.02, 0.05, 0.10


def _m(value: float | None, coverage: Coverage, estimated_share: float = 0.0) -> Measured:
    return Measured(
        value=value,
        coverage=coverage,
        estimated_share=estimated_share,
        reason="" if value is not None else "meter offline all year",
    )


def _den(kind: Denominator, value: float) -> Figure:
    v = PeriodValue(
        site="suzhou",
        kind=kind,
        start_ns=START,
        end_ns=END,
        value=value,
        source="ERP",
        recorded_at_ns=END,
    )
    return denominator_over([v], kind, START, END)


DENOMINATORS = {
    Denominator.UNITS_PRODUCED: UNITS,
    Denominator.OUTPUT_VALUE_10K_CNY: OUTPUT_10K_CNY,
    Denominator.REVENUE_10K_CNY: REVENUE_10K_CNY,
    Denominator.HEADCOUNT: HEADCOUNT,
    Denominator.FLOOR_AREA_M2: FLOOR_M2,
}

INPUTS = EsgInputs(
    site="suzhou",
    region="CN/east/jiangsu",  # no provincial factor here: the national one applies
    start_ns=START,
    end_ns=END,
    grid_electricity_kwh=_m(GRID_KWH, GRID_COV, GRID_EST),
    certificate_electricity_kwh=_m(CERT_KWH, Coverage.complete()),
    pv_electricity_kwh=_m(PV_KWH, PV_COV, PV_EST),
    production_electricity_kwh=_m(PRODUCTION_KWH, QUARTER_HOURLY),
    office_electricity_kwh=_m(OFFICE_KWH, QUARTER_HOURLY),
    natural_gas_m3=_m(GAS_M3, GAS_COV),
    water_withdrawal_m3={
        WaterSource.THIRD_PARTY: _m(MUNICIPAL_M3, HOURLY, MUNICIPAL_EST),
        WaterSource.GROUND: _m(GROUND_M3, GROUND_COV, GROUND_EST),
    },
    water_discharge_m3=_m(DISCHARGE_M3, DISCHARGE_COV),
    water_recycled_m3=_m(RECYCLED_M3, HOURLY),
    production_water_m3=_m(PRODUCTION_WATER_M3, HOURLY),
    denominators={k: _den(k, v) for k, v in DENOMINATORS.items()},
)


def half_up(x: Fraction | int, places: int) -> str:
    """Exact half-up rounding of a rational, by hand (independent of the code under test)."""
    q = Fraction(x) * 10**places
    n = floor(abs(q) + Fraction(1, 2))
    digits = str(n).rjust(places + 1, "0")
    text = digits if places == 0 else f"{digits[:-places]}.{digits[-places:]}"
    return ("-" if q < 0 and n else "") + text


# ---- the hand-worked figures ---------------------------------------------------------------------
# 302-1: gas 80,000 m3 ÷ 1000 × 38.931 GJ = 3,114.48 GJ; grid 1,200,000 kWh × 0.0036 = 4,320 GJ;
# PV 50,000 × 0.0036 = 180 GJ; electricity 4,500 GJ; total 7,614.48 GJ
GAS_GJ = D(GAS_M3) / 1000 * GAS_LHV_GJ_PER_1000M3
ENERGY_GJ = GAS_GJ + (GRID_KWH + PV_KWH) * GJ_PER_KWH
# Scope 1: 80 × 2.162188809 = 172.97510472 t; Scope 2 location: 1,200 MWh × 0.5703 = 684.36 t;
# market (no market factor: grid average on the uncovered 1,000 MWh): 1,000 × 0.5703 = 570.30 t
SCOPE1_T = D(GAS_M3) / 1000 * GAS_TCO2_PER_1000M3
LOCATION_T = D(GRID_KWH) / 1000 * GRID_TCO2_PER_MWH
MARKET_T = D(GRID_KWH - CERT_KWH) / 1000 * GRID_TCO2_PER_MWH
GHG_T = SCOPE1_T + LOCATION_T  # 857.33510472 t (location basis, the default)
# A2.1 in '000 kWh (= MWh): gas 3,114.48 GJ ÷ 3.6 = 865.1333…, grid 1,200, PV 50 → 2,115.1333…
GAS_MWH = GAS_GJ / D("3.6")
ENERGY_MWH = GAS_MWH + D(GRID_KWH) / 1000 + D(PV_KWH) / 1000
WITHDRAWAL_M3 = MUNICIPAL_M3 + GROUND_M3  # 67,220 m3
CONSUMED_M3 = WITHDRAWAL_M3 - DISCHARGE_M3  # 67,220 − 49,815 = 17,405 m3

EXPECTED: list[tuple[str, str, Fraction | int, int]] = [
    # (key, published value, the hand arithmetic, decimals)
    ("GRI:302-1:natural_gas", "3114.48", GAS_GJ, 2),
    ("GRI:302-1:electricity/grid", "4320.00", GRID_KWH * GJ_PER_KWH, 2),
    ("GRI:302-1:electricity/onsite_pv", "180.00", PV_KWH * GJ_PER_KWH, 2),
    ("GRI:302-1:electricity", "4500.00", (GRID_KWH + PV_KWH) * GJ_PER_KWH, 2),
    ("GRI:302-1:renewable", "900.00", (PV_KWH + CERT_KWH) * GJ_PER_KWH, 2),  # 250,000 kWh
    ("GRI:302-1:non_renewable", "6714.48", GAS_GJ + (GRID_KWH - CERT_KWH) * GJ_PER_KWH, 2),
    ("GRI:302-1:total", "7614.48", ENERGY_GJ, 2),
    # 302-3: 7,614.48 GJ ÷ each denominator
    ("GRI:302-3:intensity/units_produced", "0.076145", ENERGY_GJ / UNITS, 6),  # 0.0761448
    ("GRI:302-3:intensity/output_value_10k_cny", "0.145370", ENERGY_GJ / OUTPUT_10K_CNY, 6),
    ("GRI:302-3:intensity/revenue_10k_cny", "0.124338", ENERGY_GJ / REVENUE_10K_CNY, 6),
    ("GRI:302-3:intensity/headcount", "17.424439", ENERGY_GJ / HEADCOUNT, 6),
    ("GRI:302-3:intensity/floor_area_m2", "0.208616", ENERGY_GJ / FLOOR_M2, 6),
    # 303-3 / 303-5 in megalitres (1 ML = 1000 m3)
    ("GRI:303-3:withdrawal/groundwater", "4.870", D(GROUND_M3, 1000), 3),
    ("GRI:303-3:withdrawal/third_party_water", "62.350", D(MUNICIPAL_M3, 1000), 3),
    ("GRI:303-3:total", "67.220", D(WITHDRAWAL_M3, 1000), 3),
    ("GRI:303-5", "17.405", D(CONSUMED_M3, 1000), 3),
    # 305-1 / 305-2 in tCO2e
    ("GRI:305-1:natural_gas", "172.98", SCOPE1_T, 2),
    ("GRI:305-1:total", "172.98", SCOPE1_T, 2),
    ("GRI:305-2:location", "684.36", LOCATION_T, 2),
    ("GRI:305-2:market", "570.30", MARKET_T, 2),
    # 305-4: 857.33510472 t ÷ each denominator (rounded once: not 857.34 ÷ …)
    ("GRI:305-4:intensity/units_produced", "0.008573", GHG_T / UNITS, 6),
    ("GRI:305-4:intensity/output_value_10k_cny", "0.016368", GHG_T / OUTPUT_10K_CNY, 6),
    ("GRI:305-4:intensity/revenue_10k_cny", "0.014000", GHG_T / REVENUE_10K_CNY, 6),
    ("GRI:305-4:intensity/headcount", "1.961865", GHG_T / HEADCOUNT, 6),
    ("GRI:305-4:intensity/floor_area_m2", "0.023489", GHG_T / FLOOR_M2, 6),
    # HKEX A1.2
    ("HKEX:A1.2:scope1", "172.98", SCOPE1_T, 2),
    ("HKEX:A1.2:scope2", "684.36", LOCATION_T, 2),
    ("HKEX:A1.2:total", "857.34", GHG_T, 2),
    ("HKEX:A1.2:intensity/units_produced", "0.008573", GHG_T / UNITS, 6),
    ("HKEX:A1.2:intensity/output_value_10k_cny", "0.016368", GHG_T / OUTPUT_10K_CNY, 6),
    ("HKEX:A1.2:intensity/revenue_10k_cny", "0.014000", GHG_T / REVENUE_10K_CNY, 6),
    ("HKEX:A1.2:intensity/headcount", "1.961865", GHG_T / HEADCOUNT, 6),
    ("HKEX:A1.2:intensity/floor_area_m2", "0.023489", GHG_T / FLOOR_M2, 6),
    # HKEX A2.1 in '000 kWh
    ("HKEX:A2.1:direct/natural_gas", "865.13", GAS_MWH, 2),
    ("HKEX:A2.1:indirect/purchased_electricity", "1200.00", D(GRID_KWH, 1000), 2),
    ("HKEX:A2.1:direct/onsite_pv", "50.00", D(PV_KWH, 1000), 2),
    ("HKEX:A2.1:total", "2115.13", ENERGY_MWH, 2),
    ("HKEX:A2.1:intensity/units_produced", "0.021151", ENERGY_MWH / UNITS, 6),
    ("HKEX:A2.1:intensity/output_value_10k_cny", "0.040381", ENERGY_MWH / OUTPUT_10K_CNY, 6),
    ("HKEX:A2.1:intensity/revenue_10k_cny", "0.034538", ENERGY_MWH / REVENUE_10K_CNY, 6),
    ("HKEX:A2.1:intensity/headcount", "4.840122", ENERGY_MWH / HEADCOUNT, 6),
    ("HKEX:A2.1:intensity/floor_area_m2", "0.057949", ENERGY_MWH / FLOOR_M2, 6),
    # HKEX A2.2 in m3: withdrawal − discharge = 17,405 m3
    ("HKEX:A2.2:total", "17405", CONSUMED_M3, 0),
    ("HKEX:A2.2:intensity/units_produced", "0.174050", D(CONSUMED_M3, UNITS), 6),
    ("HKEX:A2.2:intensity/output_value_10k_cny", "0.332283", D(CONSUMED_M3, OUTPUT_10K_CNY), 6),
    ("HKEX:A2.2:intensity/revenue_10k_cny", "0.284210", D(CONSUMED_M3, REVENUE_10K_CNY), 6),
    ("HKEX:A2.2:intensity/headcount", "39.828375", D(CONSUMED_M3, HEADCOUNT), 6),
    ("HKEX:A2.2:intensity/floor_area_m2", "0.476849", D(CONSUMED_M3, FLOOR_M2), 6),
    # T/LTIA 27-2024
    ("T/LTIA 27-2024:TECP", "1004560", PRODUCTION_KWH, 0),
    ("T/LTIA 27-2024:TECO", "183420", OFFICE_KWH, 0),
    ("T/LTIA 27-2024:TNGC", "80000", GAS_M3, 0),
    ("T/LTIA 27-2024:EPE", "684.36", LOCATION_T, 2),  # PE 1,200 MWh × CEFE 0.5703
    ("T/LTIA 27-2024:WC", "41260", PRODUCTION_WATER_M3, 0),
    # WRR = RWV / (FWV + RWV) × 100 = 15,430 / (67,220 + 15,430) × 100 = 18.669…
    ("T/LTIA 27-2024:WRR", "18.67", D(RECYCLED_M3, WITHDRAWAL_M3 + RECYCLED_M3) * 100, 2),
    # ECOVRP = TOV / TECP = 52,380 ×10^4 CNY ÷ 1,004,560 kWh = 0.0521422… ×10^4 CNY/kWh
    ("T/LTIA 27-2024:ECOVRP", "0.052142", D(OUTPUT_10K_CNY, PRODUCTION_KWH), 6),
]


@pytest.fixture(scope="module")
def report() -> EsgReport:
    return build_report(INPUTS, TABLE)


@pytest.mark.parametrize(
    ("key", "published", "hand", "places"), EXPECTED, ids=[e[0] for e in EXPECTED]
)
def test_worked_example(
    report: EsgReport, key: str, published: str, hand: Fraction | int, places: int
) -> None:
    assert half_up(hand, places) == published  # the hand arithmetic gives the published digits
    indicator = report.indicator(key)
    assert str(indicator.value) == published
    assert indicator.decimals == places and indicator.reason == ""
    assert indicator.unrounded == pytest.approx(float(hand), rel=1e-12)


def test_every_indicator_is_worked_out_and_every_framework_code_is_there(
    report: EsgReport,
) -> None:
    assert [i.key for i in report.indicators] == [e[0] for e in EXPECTED]
    codes = {(i.framework, i.code) for i in report.indicators}
    gri = {"302-1", "302-3", "303-3", "303-5", "305-1", "305-2", "305-4"}
    tltia = {"TECP", "TECO", "TNGC", "EPE", "WC", "WRR", "ECOVRP"}
    assert {c for f, c in codes if f is Framework.GRI} == gri
    assert {c for f, c in codes if f is Framework.HKEX} == {"A1.2", "A2.1", "A2.2"}
    assert {c for f, c in codes if f is Framework.TLTIA} == tltia


def test_units(report: EsgReport) -> None:
    unit = {i.key: i.unit for i in report.indicators}
    assert unit["GRI:302-1:total"] == "GJ" and unit["GRI:303-5"] == "ML"
    assert unit["GRI:305-2:market"] == "tCO2e" and unit["T/LTIA 27-2024:EPE"] == "tCO2"
    assert unit["HKEX:A2.1:total"] == "'000 kWh" and unit["HKEX:A2.2:total"] == "m3"
    assert unit["GRI:302-3:intensity/units_produced"] == "GJ/unit (units_produced)"
    assert unit["T/LTIA 27-2024:WRR"] == "%"
    assert unit["T/LTIA 27-2024:ECOVRP"] == "10^4 CNY/kWh"


def test_coverage_is_the_weakest_input_and_estimated_share_is_propagated(
    report: EsgReport,
) -> None:
    energy = report.indicator("GRI:302-1:total")
    # gas 8,700/8,760 = 0.9932 < grid 34,900/35,040 = 0.9960 < PV 35,000/35,040 = 0.9989
    assert energy.coverage == GAS_COV
    # a sum: estimated GJ ÷ total GJ = (4,320 × 0.01 + 180 × 0.02 + 3,114.48 × 0) ÷ 7,614.48
    assert energy.estimated_share == pytest.approx((4_320 * 0.01 + 180 * 0.02) / 7_614.48)
    per_unit = report.indicator("GRI:302-3:intensity/units_produced")
    assert per_unit.coverage == GAS_COV  # the denominator (ERP, the whole year) is complete
    assert per_unit.estimated_share == energy.estimated_share  # ratio: the largest part's
    assert {u.name for u in per_unit.inputs} == {
        "natural gas",
        "grid electricity",
        "on-site PV electricity",
        "units_produced",
    }
    withdrawal = report.indicator("GRI:303-3:total")
    assert withdrawal.coverage == GROUND_COV  # 8,000 / 8,760
    assert withdrawal.estimated_share == pytest.approx((62_350 * 0.05 + 4_870 * 0.10) / 67_220)
    consumption = report.indicator("GRI:303-5")  # a difference: the larger share, not weighted
    assert consumption.coverage == GROUND_COV
    assert consumption.estimated_share == pytest.approx(withdrawal.estimated_share)
    market = report.indicator("GRI:305-2:market")
    assert (market.coverage, market.estimated_share) == (GRID_COV, GRID_EST)
    grid_use = next(u for u in market.inputs if u.name == "grid electricity")
    assert (grid_use.value, grid_use.unit, grid_use.coverage) == (GRID_KWH, "kWh", GRID_COV)


def test_factor_versions_and_method_notes(report: EsgReport) -> None:
    assert report.indicator("GRI:305-2:location").factor_refs == ("grid-cn@mee-2024",)
    assert report.indicator("GRI:305-1:total").factor_refs == ("ng-cn@gbt32150-2015",)
    assert set(report.indicator("GRI:305-4:intensity/headcount").factor_refs) == {
        "grid-cn@mee-2024",
        "ng-cn@gbt32150-2015",
    }
    assert report.indicator("GRI:302-1:total").factor_refs == ()
    assert set(report.method.factors) == {GRID_2022, GAS_FACTOR}
    assert [k for k, _ in report.method.formulas] == [i.key for i in report.indicators]
    assert dict(report.method.formulas)["T/LTIA 27-2024:WRR"] == "RWV / (FWV + RWV) × 100"
    assert any("38.931 GJ/1000 m3" in c for c in report.method.conversions)
    assert any("grid-average factor" in n for n in report.method.notes)  # the market fallback
    data = to_dict(report)
    grid = next(f for f in data["method"]["factors"] if f["id"] == "grid-cn")
    assert grid["version"] == "mee-2024" and grid["source"].startswith("MEE notice")
    assert (grid["valid_from"], grid["valid_to"]) == (
        "2021-12-31T16:00:00+00:00",
        "2022-12-31T16:00:00+00:00",
    )


def test_market_based_scope2_with_a_supplier_factor_and_surplus_certificates() -> None:
    contract = dataclasses.replace(
        GRID_2022, id="supplier-x", version="2022", basis=Basis.MARKET, value=0.4, source="PPA"
    )
    table = FactorTable([GRID_2022, GAS_FACTOR, contract])
    r = build_report(INPUTS, table)
    assert str(r.indicator("GRI:305-2:market").value) == "400.00"  # (1,200 − 200) MWh × 0.4
    assert r.indicator("GRI:305-2:market").factor_refs == ("supplier-x@2022",)
    assert not any("grid-average factor" in n for n in r.method.notes)
    surplus = dataclasses.replace(INPUTS, certificate_electricity_kwh=_m(1_500_000, HOURLY))
    r = build_report(surplus, table)
    assert str(r.indicator("GRI:305-2:market").value) == "0.00"  # never negative
    # renewable: PV + min(1,500,000, 1,200,000) = 1,250,000 kWh × 0.0036 = 4,500 GJ
    assert str(r.indicator("GRI:302-1:renewable").value) == "4500.00"
    assert str(r.indicator("GRI:302-1:non_renewable").value) == "3114.48"  # the gas only
    spec = ReportSpec(ghg_total_basis=Basis.MARKET)
    r = build_report(INPUTS, table, spec)
    # A1.2 total on the market basis: 172.97510472 + 400 = 572.97510472 t
    assert str(r.indicator("HKEX:A1.2:total").value) == "572.98"
    assert str(r.indicator("HKEX:A1.2:scope2").value) == "400.00"


def test_a_year_across_two_factor_versions_names_both() -> None:
    grid_2021 = dataclasses.replace(
        GRID_2022, version="mee-2022", valid_from_ns=_ns(2021), valid_to_ns=_ns(2022), value=0.581
    )
    inputs = dataclasses.replace(
        INPUTS, start_ns=_ns(2021, 7), end_ns=_ns(2022, 7), denominators={}
    )
    r = build_report(inputs, FactorTable([grid_2021, GRID_2022, GAS_FACTOR]))
    location = r.indicator("GRI:305-2:location")
    assert location.factor_refs == ("grid-cn@mee-2022", "grid-cn@mee-2024")
    # 1,200 MWh split by time: 184 days (Jul-Dec 2021) at 0.5810, 181 days at 0.5703:
    # 604.93 MWh × 0.5810 + 595.07 MWh × 0.5703 = 351.47 + 339.37 = 690.83 t
    hand = D(1200 * 184, 365) * D("0.5810") + D(1200 * 181, 365) * D("0.5703")
    assert str(location.value) == half_up(hand, 2) == "690.83"


@pytest.mark.parametrize(
    ("grid_kwh", "published"),
    [
        (2_675_000, "2.68"),  # round(2.675, 2) == 2.67: the binary value is below the tie
        (1_345_000, "1.35"),  # likewise 1.345 → 1.34 with round() or Decimal(float)
        (125_000, "0.13"),  # 0.125 is exact in binary; round() goes to even: 0.12
        (2_345_000, "2.35"),  # 2.345's binary value lies above the tie: round() gets it too
    ],
)
def test_half_up_once_after_the_division(grid_kwh: int, published: str) -> None:
    # A2.1 total per person = grid kWh ÷ 1000 ÷ 1,000 people, published to 2 decimals
    key = "HKEX:A2.1:intensity/headcount"
    inputs = dataclasses.replace(
        INPUTS,
        grid_electricity_kwh=_m(grid_kwh, HOURLY),
        pv_electricity_kwh=None,
        natural_gas_m3=_m(0, HOURLY),
        denominators={Denominator.HEADCOUNT: _den(Denominator.HEADCOUNT, 1_000)},
    )
    indicator = build_report(inputs, TABLE, ReportSpec(decimals={key: 2})).indicator(key)
    assert indicator.unrounded == grid_kwh / 1_000_000
    assert str(indicator.value) == published == half_up(D(grid_kwh, 1_000_000), 2)
    exact = Decimal(indicator.unrounded).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    if published in ("2.68", "1.35"):  # half-up on the float's exact binary value falls short
        assert exact < Decimal(published) and round(indicator.unrounded, 2) < float(published)


def test_totals_add_unrounded_parts() -> None:
    # grid and PV 1,250 kWh each = 4.5 GJ each, published to 0 decimals: 5 and 5, but the
    # electricity total is 9 GJ (rounded once from 9.0), not 5 + 5
    keys = ("GRI:302-1:electricity/grid", "GRI:302-1:electricity/onsite_pv")
    spec = ReportSpec(decimals={k: 0 for k in (*keys, "GRI:302-1:electricity")})
    inputs = dataclasses.replace(
        INPUTS, grid_electricity_kwh=_m(1_250, HOURLY), pv_electricity_kwh=_m(1_250, HOURLY)
    )
    r = build_report(inputs, TABLE, spec)
    assert [str(r.indicator(k).value) for k in keys] == ["5", "5"]
    assert str(r.indicator("GRI:302-1:electricity").value) == "9"


def test_a_missing_denominator_gives_none_with_the_reason() -> None:
    denominators = dict(INPUTS.denominators)
    del denominators[Denominator.HEADCOUNT]
    r = build_report(dataclasses.replace(INPUTS, denominators=denominators), TABLE)
    for key in (
        "GRI:302-3:intensity/headcount",
        "GRI:305-4:intensity/headcount",
        "HKEX:A2.2:intensity/headcount",
    ):
        i = r.indicator(key)
        assert i.value is None and i.unrounded is None
        assert i.reason == "denominator missing: no headcount supplied for the period"
    assert r.indicator("GRI:302-3:intensity/units_produced").value is not None
    row = next(row for row in csv_rows(r) if row["key"] == "GRI:302-3:intensity/headcount")
    assert row["value"] == "" and "no headcount" in row["reason"]


def test_missing_inputs_and_factors_give_none_with_the_reason() -> None:
    inputs = dataclasses.replace(
        INPUTS,
        production_electricity_kwh=None,
        natural_gas_m3=_m(None, Coverage(expected=8_760, received=0, good=0)),
    )
    r = build_report(inputs, TABLE)
    assert r.indicator("T/LTIA 27-2024:TECP").reason == (
        "production electricity missing: no TECP reported"
    )
    assert r.indicator("T/LTIA 27-2024:ECOVRP").value is None  # TOV / a missing TECP
    assert r.indicator("GRI:305-1:total").reason == "natural gas missing: meter offline all year"
    assert r.indicator("HKEX:A1.2:intensity/units_produced").value is None
    assert r.indicator("GRI:305-2:location").value is not None  # no gas needed
    # a period no grid factor covers
    r = build_report(INPUTS, FactorTable([GAS_FACTOR]))
    location = r.indicator("GRI:305-2:location")
    assert location.value is None and location.reason.startswith(
        "no location-based electricity_grid"
    )
    assert r.indicator("T/LTIA 27-2024:EPE").value is None
    assert r.indicator("GRI:305-1:total").value is not None


def test_manual_scope1_entries_add_to_scope1() -> None:
    eo = ManualEmission(
        name="EO abatement",
        source="sterilisation log",
        emissions_tco2e=_m(3.125, Coverage.complete()),
    )
    r = build_report(dataclasses.replace(INPUTS, manual_scope1=(eo,)), TABLE)
    assert str(r.indicator("GRI:305-1:manual/EO abatement").value) == "3.13"
    assert str(r.indicator("GRI:305-1:total").value) == half_up(SCOPE1_T + D("3.125"), 2)


def test_inputs_are_validated() -> None:
    with pytest.raises(EsgError, match="finite and >= 0"):
        _m(-1.0, HOURLY)
    with pytest.raises(EsgError, match="estimated share"):
        _m(1.0, HOURLY, 1.5)
    other_year = denominator_over(
        [
            PeriodValue(
                site="suzhou",
                kind=Denominator.HEADCOUNT,
                start_ns=_ns(2021),
                end_ns=_ns(2022),
                value=400,
                source="HR",
                recorded_at_ns=0,
            )
        ],
        Denominator.HEADCOUNT,
        _ns(2021),
        _ns(2022),
    )
    with pytest.raises(EsgError, match="not the period"):
        dataclasses.replace(INPUTS, denominators={Denominator.HEADCOUNT: other_year})


def test_csv_rows(report: EsgReport) -> None:
    rows = csv_rows(report)
    assert len(rows) == len(report.indicators) == len(EXPECTED)
    assert all(tuple(row) == CSV_COLUMNS for row in rows)
    market = next(row for row in rows if row["key"] == "GRI:305-2:market")
    assert market["framework"] == "GRI" and market["code"] == "305-2"
    assert market["value"] == "570.30" and market["unit"] == "tCO2e"
    assert market["coverage"] == "0.9960"  # 34,900 / 35,040
    assert market["estimated_share"] == "0.0100"
    assert market["factor_versions"] == "grid-cn@mee-2024"
    assert market["formula"].startswith("max(0, grid − certificates)")


# ---- restatement and the content hash ------------------------------------------------------------
GAS_DEPENDENT = [
    "GRI:302-1:natural_gas",
    "GRI:302-1:non_renewable",
    "GRI:302-1:total",
    *(f"GRI:302-3:intensity/{k}" for k in DENOMINATORS),
    "GRI:305-1:natural_gas",
    "GRI:305-1:total",
    *(f"GRI:305-4:intensity/{k}" for k in DENOMINATORS),
    "HKEX:A1.2:scope1",
    "HKEX:A1.2:total",
    *(f"HKEX:A1.2:intensity/{k}" for k in DENOMINATORS),
    "HKEX:A2.1:direct/natural_gas",
    "HKEX:A2.1:total",
    *(f"HKEX:A2.1:intensity/{k}" for k in DENOMINATORS),
    "T/LTIA 27-2024:TNGC",
]


def test_restatement_after_late_gas_data_lists_exactly_what_depends_on_gas(
    report: EsgReport,
) -> None:
    late = dataclasses.replace(INPUTS, natural_gas_m3=_m(GAS_M3 + 500, GAS_COV))
    fresh = build_report(late, TABLE)
    closed = json.loads(json.dumps(to_dict(report)))  # the snapshot as stored
    restated = restatements(closed, fresh)
    assert [r.key for r in restated] == GAS_DEPENDENT
    by_key = {r.key: r for r in restated}
    tngc = by_key["T/LTIA 27-2024:TNGC"]
    assert (tngc.old_value, tngc.new_value, tngc.difference) == (
        Decimal("80000"),
        Decimal("80500"),
        Decimal("500"),
    )
    scope1 = by_key["GRI:305-1:total"]  # 80.5 × 2.162188809 = 174.0561991… → 174.06
    assert str(scope1.new_value) == half_up(D(80_500, 1000) * GAS_TCO2_PER_1000M3, 2) == "174.06"
    assert str(scope1.difference) == "1.08"  # 174.06 − 172.98
    assert scope1.old_factor_refs == scope1.new_factor_refs == ("ng-cn@gbt32150-2015",)
    assert restatement_to_dict(scope1)["difference"] == "1.08"
    assert restatements(report, build_report(INPUTS, TABLE)) == ()
    assert restatements(closed, report) == ()


def test_a_change_below_the_published_decimals_is_no_restatement(report: EsgReport) -> None:
    tiny = dataclasses.replace(INPUTS, natural_gas_m3=_m(GAS_M3 + 0.0001, GAS_COV))
    assert restatements(report, build_report(tiny, TABLE)) == ()


def test_an_indicator_that_loses_its_value_is_restated(report: EsgReport) -> None:
    lost = dataclasses.replace(INPUTS, production_electricity_kwh=None)
    restated = restatements(report, build_report(lost, TABLE))
    assert [r.key for r in restated] == ["T/LTIA 27-2024:TECP", "T/LTIA 27-2024:ECOVRP"]
    assert restated[0].old_value == Decimal("1004560") and restated[0].new_value is None
    assert restated[0].difference is None


def _reordered(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _reordered(x[k]) for k in reversed(list(x))}
    if isinstance(x, list):
        return [_reordered(v) for v in x]
    return x


def test_content_hash_is_stable_and_identifies_the_content(report: EsgReport) -> None:
    data = to_dict(report)
    h = data[HASH_KEY]
    assert len(h) == 64 and h == content_hash(report) == content_hash(data)
    assert list(_reordered(data)) != list(data)
    assert content_hash(_reordered(data)) == h  # key order does not matter
    assert content_hash(json.loads(json.dumps(data))) == h  # nor a JSON round trip
    assert to_dict(build_report(INPUTS, TABLE))[HASH_KEY] == h  # reproducible
    changed = dataclasses.replace(INPUTS, water_recycled_m3=_m(RECYCLED_M3 + 1, HOURLY))
    assert content_hash(build_report(changed, TABLE)) != h
    tampered = json.loads(json.dumps(data))
    tampered["indicators"][0]["value"] = "3114.49"
    assert content_hash(tampered) != h

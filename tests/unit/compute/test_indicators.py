"""Indicators: no division by zero, WRR, water balance, idle energy, coverage, rounding."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest

from compute.indicators import (
    Coverage,
    Denominator,
    Figure,
    IndicatorError,
    LineState,
    ecovrp,
    idle_energy,
    intensity,
    renewable_share,
    round_half_up,
    water_consumption,
    water_recycling_rate,
)

FULL = Coverage(expected=100, received=100, good=100)
GAPPY = Coverage(expected=100, received=90, good=80)
START, END = 1_700_000_000_000_000_000, 1_702_592_000_000_000_000


def _fig(value: float | None, unit: str, coverage: Coverage = FULL, **kw: int) -> Figure:
    reason = "" if value is not None else "not entered in ERP yet"
    return Figure(
        value=value,
        unit=unit,
        start_ns=kw.get("start_ns", START),
        end_ns=kw.get("end_ns", END),
        coverage=coverage,
        reason=reason,
    )


@pytest.mark.parametrize(
    ("x", "places", "expected"),
    [
        (2.675, 2, "2.68"),  # round(2.675, 2) == 2.67: the binary value is below the tie
        (0.125, 2, "0.13"),  # round(0.125, 2) == 0.12: ties to even
        (2.5, 0, "3"),  # round(2.5) == 2
        (1.005, 2, "1.01"),
        (-2.675, 2, "-2.68"),  # ties away from zero
        (2.1, 2, "2.10"),  # the published digits keep their trailing zero
        (7, 2, "7.00"),
        (Decimal("0.0005"), 3, "0.001"),
        (1e22, 6, "10000000000000000000000.000000"),
        (np.float64(2.675), 2, "2.68"),
    ],
)
def test_round_half_up(x: float | int | Decimal, places: int, expected: str) -> None:
    assert str(round_half_up(x, places)) == expected


def test_round_half_up_differs_from_builtin_round() -> None:
    assert round(2.675, 2) == 2.67 and round(0.125, 2) == 0.12
    assert float(round_half_up(2.675, 2)) == 2.68 and float(round_half_up(0.125, 2)) == 0.13


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_round_half_up_refuses_what_is_not_a_number(bad: float) -> None:
    with pytest.raises(IndicatorError):
        round_half_up(bad, 2)
    with pytest.raises(IndicatorError):
        round_half_up(1.0, -1)


def test_coverage_fractions_and_combination() -> None:
    assert (GAPPY.received_fraction, GAPPY.good_fraction) == (0.9, 0.8)
    assert Coverage(expected=0, received=0, good=0).good_fraction == 1.0
    assert Coverage(expected=10, received=12, good=12).good_fraction == 1.0  # capped
    assert Coverage(expected=200, received=190, good=180) == GAPPY + FULL
    assert Coverage.combine(FULL, GAPPY) is GAPPY  # the weakest input's good fraction
    worse = Coverage(expected=10, received=5, good=5)
    assert Coverage.combine(FULL, GAPPY, worse).good_fraction == 0.5
    assert Coverage.complete() == Coverage(expected=1, received=1, good=1)
    with pytest.raises(IndicatorError):
        Coverage(expected=10, received=5, good=6)


def test_intensity_per_unit_produced_names_its_denominator() -> None:
    result = intensity(
        _fig(500_000.0, "kWh", GAPPY),
        _fig(2_000.0, "unit", Coverage.complete()),
        Denominator.UNITS_PRODUCED,
    )
    assert result.value == 250.0
    assert result.unit == "kWh/unit (units_produced)"
    assert result.coverage == GAPPY and (result.start_ns, result.end_ns) == (START, END)


@pytest.mark.parametrize(
    ("kind", "unit", "value", "expected"),
    [
        (Denominator.OUTPUT_VALUE_10K_CNY, "10^4 CNY", 12_500.0, 0.0328),
        (Denominator.REVENUE_1M_CNY, "10^6 CNY", 125.0, 3.28),
        (Denominator.HEADCOUNT, "person", 820.0, 0.5),
        (Denominator.FLOOR_AREA_M2, "m2", 41_000.0, 0.01),
    ],
)
def test_intensity_denominators(
    kind: Denominator, unit: str, value: float, expected: float
) -> None:
    result = intensity(_fig(410.0, "tCO2"), _fig(value, unit), kind)
    assert result.value == pytest.approx(expected, rel=1e-12)
    assert result.unit == f"tCO2/{unit} ({kind})"


def test_a_zero_or_missing_denominator_gives_none_with_a_reason() -> None:
    zero = intensity(_fig(1.0, "tCO2"), _fig(0.0, "unit"), Denominator.UNITS_PRODUCED)
    assert zero.value is None and zero.reason == "denominator is zero"
    missing = intensity(_fig(1.0, "tCO2"), _fig(None, "unit"), Denominator.UNITS_PRODUCED)
    assert missing.value is None
    assert missing.reason == "denominator missing: not entered in ERP yet"
    tiny = intensity(_fig(1e300, "tCO2"), _fig(1e-300, "unit"), Denominator.UNITS_PRODUCED)
    assert tiny.value is None and tiny.reason == "ratio overflows"  # never inf


def test_intensity_needs_the_same_period_and_the_denominators_unit() -> None:
    other = _fig(10.0, "unit", end_ns=END + 1)
    with pytest.raises(IndicatorError, match="different periods"):
        intensity(_fig(1.0, "tCO2"), other, Denominator.UNITS_PRODUCED)
    with pytest.raises(IndicatorError, match="10\\^4 CNY"):
        intensity(_fig(1.0, "tCO2"), _fig(10.0, "CNY"), Denominator.OUTPUT_VALUE_10K_CNY)


def test_renewable_share() -> None:
    share = renewable_share(_fig(250.0, "MWh"), _fig(1_000.0, "MWh", GAPPY))
    assert (share.value, share.unit, share.coverage) == (25.0, "%", GAPPY)
    assert renewable_share(_fig(0.0, "MWh"), _fig(0.0, "MWh")).value is None
    with pytest.raises(IndicatorError, match="exceeds"):
        renewable_share(_fig(1_001.0, "MWh"), _fig(1_000.0, "MWh"))
    with pytest.raises(IndicatorError, match="different units"):
        renewable_share(_fig(1.0, "GJ"), _fig(1_000.0, "MWh"))


def test_water_recycling_rate() -> None:
    wrr = water_recycling_rate(fresh=_fig(800.0, "m3"), recycled=_fig(200.0, "m3", GAPPY))
    assert (wrr.value, wrr.unit, wrr.coverage) == (20.0, "%", GAPPY)  # 200 / (800 + 200)
    assert water_recycling_rate(_fig(0.0, "m3"), _fig(0.0, "m3")).reason == "denominator is zero"
    missing = water_recycling_rate(_fig(800.0, "m3"), _fig(None, "m3"))
    assert missing.value is None and "not entered" in missing.reason
    with pytest.raises(IndicatorError, match="negative"):
        water_recycling_rate(_fig(-1.0, "m3"), _fig(10.0, "m3"))


def test_water_consumption_is_withdrawal_minus_discharge() -> None:
    consumed = water_consumption(_fig(1_200.0, "m3"), _fig(900.0, "m3", GAPPY))
    assert (consumed.value, consumed.unit, consumed.coverage) == (300.0, "m3", GAPPY)
    assert water_consumption(_fig(900.0, "m3"), _fig(950.0, "m3")).value == -50.0  # shown
    assert water_consumption(_fig(900.0, "m3"), _fig(None, "m3")).value is None
    with pytest.raises(IndicatorError, match="different units"):
        water_consumption(_fig(1.2, "ML"), _fig(900.0, "m3"))


def test_ecovrp_is_output_value_per_kwh() -> None:
    result = ecovrp(_fig(1_500.0, "10^4 CNY"), _fig(300_000.0, "kWh"))
    assert result.value == pytest.approx(0.005, rel=1e-12)
    assert result.unit == "10^4 CNY/kWh"
    assert ecovrp(_fig(1_500.0, "10^4 CNY"), _fig(0.0, "kWh")).value is None


def test_idle_energy_sums_idle_and_off_buckets() -> None:
    kwh = np.array([1.0, 2.0, 3.0, 4.0, np.nan, 6.0, np.nan])
    state = np.array([0, 1, 2, 0, 1, 1, 0], dtype=np.int8)
    result = idle_energy(kwh, state)
    assert (result.energy_kwh, result.buckets, result.missing_buckets) == (11.0, 4, 1)
    by_flag = idle_energy(kwh, state != LineState.RUN)
    assert by_flag == result
    assert idle_energy(np.array([]), np.array([], dtype=bool)).energy_kwh == 0.0


def test_idle_energy_is_vectorised_over_many_buckets() -> None:
    rng = np.random.default_rng(7)
    kwh = rng.uniform(0.0, 5.0, 20_000)
    state = rng.integers(0, 3, 20_000)
    expected = math.fsum(k for k, s in zip(kwh, state, strict=True) if s != LineState.RUN)
    assert idle_energy(kwh, state).energy_kwh == pytest.approx(expected, rel=1e-12)


def test_idle_energy_refuses_bad_inputs() -> None:
    with pytest.raises(IndicatorError, match="1-D alike"):
        idle_energy(np.ones(3), np.zeros(2, dtype=bool))
    with pytest.raises(IndicatorError, match="codes"):
        idle_energy(np.ones(2), np.array([0, 5]))
    with pytest.raises(IndicatorError, match="negative"):
        idle_energy(np.array([-1.0]), np.array([True]))


def test_a_figure_is_finite_or_explained() -> None:
    with pytest.raises(IndicatorError, match="reason"):
        Figure(value=None, unit="kWh", start_ns=START, end_ns=END, coverage=FULL)
    with pytest.raises(IndicatorError, match="finite"):
        Figure(value=math.inf, unit="kWh", start_ns=START, end_ns=END, coverage=FULL)

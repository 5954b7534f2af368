"""Energy conversions and comprehensive energy consumption: GB/T 2589-2020 numbers, exactly."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from compute.energy import (
    GB_T_2589_2020,
    EnergyCarrier,
    EnergyError,
    TceCoefficients,
    comprehensive_energy_tce,
    gj_to_mwh,
    kgce_to_mj,
    kwh_to_gj,
    kwh_to_mj,
    kwh_to_mwh,
    m3_to_ml,
    tce_to_gj,
    to_tce,
)
from compute.indicators import round_half_up


def test_unit_conversions() -> None:
    assert kwh_to_mj(1.0) == pytest.approx(3.6, rel=1e-15)
    assert kwh_to_gj(1_000.0) == pytest.approx(3.6, rel=1e-15)  # 1 MWh = 3.6 GJ
    assert kwh_to_mwh(1_500.0) == 1.5
    assert gj_to_mwh(3.6) == pytest.approx(1.0, rel=1e-15)
    assert m3_to_ml(2_500.0) == 2.5
    assert kgce_to_mj(1.0) == 29.3076
    assert tce_to_gj(1.0) == 29.3076


def test_thousand_kwh_of_electricity_is_0_1229_tce() -> None:
    tce = to_tce(EnergyCarrier.ELECTRICITY, 1_000.0)
    assert tce == pytest.approx(0.1229, rel=1e-12)
    assert round_half_up(tce, 4) == Decimal("0.1229")


@pytest.mark.parametrize(
    ("carrier", "quantity", "tce"),
    [
        (EnergyCarrier.NATURAL_GAS, 1_000.0, 1.2143),  # m3
        (EnergyCarrier.DIESEL, 1_000.0, 1.4571),  # kg
        (EnergyCarrier.GASOLINE, 1_000.0, 1.4714),  # kg
        (EnergyCarrier.HEAT, 29.3076, 1.0),  # GJ at its calorific equivalent
    ],
)
def test_default_coefficients(carrier: EnergyCarrier, quantity: float, tce: float) -> None:
    assert to_tce(carrier, quantity) == pytest.approx(tce, rel=1e-12)


def test_carriers_name_their_units() -> None:
    assert [c.unit for c in EnergyCarrier] == ["kWh", "m3", "kg", "kg", "GJ"]


def test_comprehensive_energy_is_the_sum_in_tce() -> None:
    total = comprehensive_energy_tce(
        {
            EnergyCarrier.ELECTRICITY: 1_000_000.0,  # 122.9 tce
            EnergyCarrier.NATURAL_GAS: 100_000.0,  # 121.43 tce
            EnergyCarrier.DIESEL: 2_000.0,  # 2.9142 tce
        }
    )
    assert total == pytest.approx(247.2442, rel=1e-12)
    assert round_half_up(total, 2) == Decimal("247.24")
    assert comprehensive_energy_tce({}) == 0.0


def test_coefficients_are_configurable() -> None:
    measured = TceCoefficients(natural_gas_kgce_per_m3=1.33, source="supplier LHV, 2024")
    assert to_tce(EnergyCarrier.NATURAL_GAS, 1_000.0, measured) == pytest.approx(1.33)
    assert measured.electricity_kgce_per_kwh == GB_T_2589_2020.electricity_kgce_per_kwh
    total = comprehensive_energy_tce({EnergyCarrier.NATURAL_GAS: 1_000.0}, measured)
    assert total == pytest.approx(1.33)


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_a_quantity_that_cannot_be_consumption_is_refused(bad: float) -> None:
    with pytest.raises(EnergyError, match="electricity"):
        to_tce(EnergyCarrier.ELECTRICITY, bad)
    with pytest.raises(EnergyError):
        comprehensive_energy_tce({EnergyCarrier.ELECTRICITY: 10.0, EnergyCarrier.DIESEL: bad})


def test_a_bad_coefficient_is_refused() -> None:
    with pytest.raises(EnergyError, match="diesel"):
        TceCoefficients(diesel_kgce_per_kg=-1.0)

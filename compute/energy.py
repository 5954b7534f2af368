"""Energy unit conversions and comprehensive energy consumption in tonnes of standard coal (tce).

Pure arithmetic on measured quantities: no I/O, no clock, and no rounding (that happens once, last).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass

from compute.errors import PlantPulseError

MJ_PER_KWH = 3.6  # exact, by the definition of the watt-hour
MJ_PER_KGCE = 29.3076  # GB/T 2589-2020: 1 kgce = 29 307.6 kJ (7 000 kcal_IT)
M3_PER_ML = 1_000.0  # 1 megalitre = 10^6 L = 1 000 m3
KG_PER_T = 1_000.0


class EnergyError(PlantPulseError, ValueError):
    """A quantity or coefficient cannot enter an energy total (negative, NaN or infinite)."""


class EnergyCarrier(enum.StrEnum):
    """Carriers that enter comprehensive energy consumption, each metered in `unit`."""

    ELECTRICITY = "electricity"
    NATURAL_GAS = "natural_gas"
    DIESEL = "diesel"
    GASOLINE = "gasoline"
    HEAT = "heat"

    @property
    def unit(self) -> str:
        return _CARRIER_UNITS[self]


_CARRIER_UNITS = {
    EnergyCarrier.ELECTRICITY: "kWh",
    EnergyCarrier.NATURAL_GAS: "m3",
    EnergyCarrier.DIESEL: "kg",
    EnergyCarrier.GASOLINE: "kg",
    EnergyCarrier.HEAT: "GJ",
}


def kwh_to_mj(energy_kwh: float) -> float:
    """Megajoules in `energy_kwh`: 1 kWh = 3.6 MJ (SI definition: 1 W·h = 3 600 J)."""
    return energy_kwh * MJ_PER_KWH


def kwh_to_gj(energy_kwh: float) -> float:
    """Gigajoules in `energy_kwh`: 1 kWh = 0.0036 GJ, i.e. 1 MWh = 3.6 GJ (SI; GRI 302-1 unit)."""
    return energy_kwh * MJ_PER_KWH / 1_000.0


def kwh_to_mwh(energy_kwh: float) -> float:
    """Megawatt-hours in `energy_kwh`: 1 MWh = 1 000 kWh (SI prefix; GRI 302-1, Scope 2 unit)."""
    return energy_kwh / 1_000.0


def gj_to_mwh(energy_gj: float) -> float:
    """Megawatt-hours in `energy_gj`: 1 MWh = 3.6 GJ (SI), for heat metered in GJ."""
    return energy_gj / MJ_PER_KWH


def m3_to_ml(volume_m3: float) -> float:
    """Megalitres in `volume_m3`: 1 ML = 1 000 m3 (SI prefix; the unit of GRI 303-3/4/5)."""
    return volume_m3 / M3_PER_ML


def kgce_to_mj(kgce: float) -> float:
    """Megajoules in `kgce` kg of standard coal equivalent: 1 kgce = 29.3076 MJ (GB/T 2589-2020)."""
    return kgce * MJ_PER_KGCE


def tce_to_gj(tce: float) -> float:
    """Gigajoules in `tce` tonnes of coal equivalent: 1 tce = 29.3076 GJ (GB/T 2589-2020)."""
    return tce * MJ_PER_KGCE


@dataclass(frozen=True, slots=True, kw_only=True)
class TceCoefficients:
    """Standard-coal conversion coefficients per carrier, each in kgce per metered unit.

    Defaults are GB/T 2589-2020 (General principles for calculation of the comprehensive energy
    consumption), Appendix A: electricity at its calorific equivalent 0.1229 kgce/kWh
    (860 kcal/kWh ÷ 7 000 kcal/kgce), natural gas 1.2143 kgce/m3 (the common value in its
    1.1000-1.3300 range), diesel 1.4571 kgce/kg, gasoline 1.4714 kgce/kg, and heat at its
    calorific equivalent 1 000 / 29.3076 = 34.1208... kgce/GJ. Replace any of them with a plant's
    measured values and name that source in `source`.
    """

    electricity_kgce_per_kwh: float = 0.1229
    natural_gas_kgce_per_m3: float = 1.2143
    diesel_kgce_per_kg: float = 1.4571
    gasoline_kgce_per_kg: float = 1.4714
    heat_kgce_per_gj: float = 1_000.0 / MJ_PER_KGCE
    source: str = "GB/T 2589-2020 Appendix A (calorific equivalent for electricity and heat)"

    def __post_init__(self) -> None:
        for carrier in EnergyCarrier:
            coefficient = self.kgce_per_unit(carrier)
            if not (math.isfinite(coefficient) and coefficient >= 0.0):
                raise EnergyError(
                    f"tce coefficient for {carrier} must be finite and >= 0, got {coefficient!r}"
                )

    def kgce_per_unit(self, carrier: EnergyCarrier) -> float:
        """The coefficient for `carrier`, in kgce per `carrier.unit`."""
        match carrier:
            case EnergyCarrier.ELECTRICITY:
                return self.electricity_kgce_per_kwh
            case EnergyCarrier.NATURAL_GAS:
                return self.natural_gas_kgce_per_m3
            case EnergyCarrier.DIESEL:
                return self.diesel_kgce_per_kg
            case EnergyCarrier.GASOLINE:
                return self.gasoline_kgce_per_kg
            case EnergyCarrier.HEAT:
                return self.heat_kgce_per_gj


GB_T_2589_2020 = TceCoefficients()


def to_tce(
    carrier: EnergyCarrier, quantity: float, coefficients: TceCoefficients = GB_T_2589_2020
) -> float:
    """Tonnes of standard coal equivalent in `quantity` of `carrier`, given in `carrier.unit`.

    tce = quantity × coefficient [kgce/unit] ÷ 1 000 (GB/T 2589-2020). A negative or
    non-finite quantity is refused rather than netted into a total.
    """
    if not (math.isfinite(quantity) and quantity >= 0.0):
        raise EnergyError(
            f"{carrier} quantity must be finite and >= 0 {carrier.unit}: {quantity!r}"
        )
    return quantity * coefficients.kgce_per_unit(carrier) / KG_PER_T


def comprehensive_energy_tce(
    quantities: Mapping[EnergyCarrier, float],
    coefficients: TceCoefficients = GB_T_2589_2020,
) -> float:
    """Comprehensive energy consumption: the sum over carriers of `to_tce`, in tce.

    Definition of GB/T 2589-2020 ("综合能耗"), with each carrier in its `unit`
    (electricity kWh, natural gas m3, diesel and gasoline kg, heat GJ). Callers pass consumption
    within one boundary and period; on-site PV self-consumption is not a purchased carrier.
    """
    return math.fsum(to_tce(c, q, coefficients) for c, q in quantities.items())

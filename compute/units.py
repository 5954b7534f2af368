"""Units a total can be asked in (kWh, MWh, GJ, tce; m3, ML; tCO2e) and the scale from a channel's
metered unit to each. Pure arithmetic on compute.energy's conversions; no I/O, no rounding.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from compute.emissions import NATURAL_GAS_DEFAULT, Activity, FuelCombustion
from compute.energy import GB_T_2589_2020, KG_PER_T, M3_PER_ML, MJ_PER_KWH, TceCoefficients
from compute.errors import PlantPulseError
from compute.plant import Utility


class UnitError(PlantPulseError, ValueError):
    """A unit does not fit a utility, or a metered unit cannot be converted; says which."""


class Unit(enum.StrEnum):
    """What a total may be asked in; tCO2e goes through emission factors, not a fixed scale."""

    KWH = "kWh"
    MWH = "MWh"
    GJ = "GJ"
    TCE = "tce"
    M3 = "m3"
    ML = "ML"
    TCO2E = "tCO2e"


# Metered units plantpulse converts from, as amounts of the utility's base unit (kWh or m3).
_KWH_PER = {"Wh": 0.001, "kWh": 1.0, "MWh": 1_000.0, "MJ": 1.0 / MJ_PER_KWH, "GJ": 1e3 / MJ_PER_KWH}
_M3_PER = {"L": 0.001, "m3": 1.0, "Nm3": 1.0, "ML": M3_PER_ML}
_BASE = {  # utility -> the metered units it converts from, in kWh or m3
    Utility.ELECTRICITY: _KWH_PER,
    Utility.NATURAL_GAS: _M3_PER,
    Utility.WATER: _M3_PER,
    Utility.RECYCLED_WATER: _M3_PER,
}
_ENERGY = (Unit.KWH, Unit.MWH, Unit.GJ, Unit.TCE, Unit.TCO2E)
FITS: dict[Utility, tuple[Unit, ...]] = {
    Utility.ELECTRICITY: _ENERGY,
    Utility.NATURAL_GAS: (Unit.M3, *_ENERGY),
    Utility.WATER: (Unit.M3, Unit.ML),
    Utility.RECYCLED_WATER: (Unit.M3, Unit.ML),
}
ACTIVITY = {
    Utility.ELECTRICITY: Activity.ELECTRICITY_GRID,
    Utility.NATURAL_GAS: Activity.NATURAL_GAS,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Scale:
    """Multiply a total in the metered unit by `factor` to get it in `unit`; `formula` says how."""

    factor: float
    unit: str
    formula: str


def fits(utility: Utility, unit: Unit) -> bool:
    return unit in FITS.get(utility, ())


def check_fit(utility: Utility, unit: Unit) -> None:
    """UnitError with the units that would fit, unless `unit` fits the utility."""
    if not fits(utility, unit):
        allowed = ", ".join(FITS.get(utility, ()))
        hint = f"use {allowed}" if allowed else "its totals are in the metered unit only"
        raise UnitError(f"unit {unit.value!r} does not fit {utility}: {hint}")


def base_scale(utility: Utility, metered: str) -> float:
    """The amount of the utility's base unit (kWh, or m3) in one metered unit."""
    known = _BASE.get(utility, {})
    if metered not in known:
        raise UnitError(
            f"{utility} metered in {metered!r} cannot be converted"
            + (f": plantpulse converts from {', '.join(known)}" if known else "")
        )
    return known[metered]


def scale(
    utility: Utility,
    metered: str,
    unit: Unit,
    *,
    coefficients: TceCoefficients = GB_T_2589_2020,
    gas: FuelCombustion = NATURAL_GAS_DEFAULT,
) -> Scale:
    """The scale from `metered` to `unit` (not tCO2e: see activity_scale). Natural gas becomes
    energy through its lower heating value (GJ, kWh, MWh) or its GB/T 2589 coefficient (tce)."""
    check_fit(utility, unit)
    if unit is Unit.TCO2E:
        raise UnitError("tCO2e is computed with emission factors, not a fixed scale")
    to_base = base_scale(utility, metered)
    base = "kWh" if utility is Utility.ELECTRICITY else "m3"
    lead = "" if metered == base else f"{metered} × {to_base:g} {base}/{metered}; "
    if utility is Utility.NATURAL_GAS and unit not in (Unit.M3, Unit.TCE):
        gj_per_m3 = gas.lhv_gj_per_unit / 1_000.0
        per_gj = {Unit.GJ: 1.0, Unit.KWH: 1e3 / MJ_PER_KWH, Unit.MWH: 1.0 / MJ_PER_KWH}[unit]
        return Scale(
            factor=to_base * gj_per_m3 * per_gj,
            unit=unit,
            formula=f"{lead}m3 ÷ 1000 × LHV {gas.lhv_gj_per_unit} GJ/1000 m3 ({gas.source})"
            + ("" if unit is Unit.GJ else f"; 1 kWh = {MJ_PER_KWH} MJ"),
        )
    factor, formula = _linear(utility, unit, coefficients)
    return Scale(factor=to_base * factor, unit=unit, formula=lead + formula)


def _linear(utility: Utility, unit: Unit, c: TceCoefficients) -> tuple[float, str]:
    """From the base unit (kWh or m3) to `unit`."""
    if unit is Unit.TCE:
        if utility is Utility.ELECTRICITY:
            k = c.electricity_kgce_per_kwh
            return k / KG_PER_T, f"kWh × {k} kgce/kWh ÷ 1000 ({c.source})"
        k = c.natural_gas_kgce_per_m3
        return k / KG_PER_T, f"m3 × {k} kgce/m3 ÷ 1000 ({c.source})"
    return {
        Unit.KWH: (1.0, "kWh"),
        Unit.MWH: (1e-3, "kWh ÷ 1000"),
        Unit.GJ: (MJ_PER_KWH / 1e3, f"kWh × {MJ_PER_KWH} MJ/kWh ÷ 1000"),
        Unit.M3: (1.0, "m3"),
        Unit.ML: (1.0 / M3_PER_ML, f"m3 ÷ {M3_PER_ML:g}"),
    }[unit]


def activity_scale(utility: Utility, metered: str) -> tuple[Activity, float]:
    """The emission activity of a utility and the amount of its unit (MWh, 1000 m3) in one
    metered unit: tCO2e = metered total × that amount × factor [tCO2/activity unit]."""
    activity = ACTIVITY.get(utility)
    if activity is None:
        raise UnitError(f"{utility} has no emission factor: tCO2e does not fit it")
    return activity, base_scale(utility, metered) / 1_000.0  # kWh -> MWh, m3 -> 1000 m3

"""Records of an ESG report: a site's period inputs, the report spec, indicators and method notes.

Pure data with validation: no I/O, no clock. The arithmetic lives in compute.esg.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from compute.emissions import NATURAL_GAS_DEFAULT, Basis, EmissionFactor, FuelCombustion
from compute.errors import PlantPulseError
from compute.indicators import Coverage, Denominator, Figure


class EsgError(PlantPulseError, ValueError):
    """ESG inputs are impossible or inconsistent (negative volumes, periods that differ)."""


class Framework(enum.StrEnum):
    """Disclosure frameworks whose templates a report fills."""

    GRI = "GRI"
    HKEX = "HKEX"
    TLTIA = "T/LTIA 27-2024"


class Rounding(enum.StrEnum):
    """How a published value was rounded; one rule today, named so a report states it."""

    HALF_UP = "half_up"


class WaterSource(enum.StrEnum):
    """Withdrawal sources of GRI 303-3; municipal supply is third-party water."""

    SURFACE = "surface_water"
    GROUND = "groundwater"
    SEAWATER = "seawater"
    PRODUCED = "produced_water"
    THIRD_PARTY = "third_party_water"


@dataclass(frozen=True, slots=True, kw_only=True)
class Measured:
    """A period total in the unit its field name carries, with its coverage and estimated share.

    `estimated_share` is the fraction of `value` from estimated (gap-filled) buckets, in [0, 1].
    `value` None means unknown, and `reason` says why; a utility the site does not have is 0.
    """

    value: float | None
    coverage: Coverage
    estimated_share: float = 0.0
    reason: str = ""

    def __post_init__(self) -> None:
        if self.value is None and not self.reason:
            raise EsgError("a measured total without a value needs the reason")
        if self.value is not None and not (math.isfinite(self.value) and self.value >= 0.0):
            raise EsgError(f"a measured total is finite and >= 0, got {self.value!r}")
        if not (0.0 <= self.estimated_share <= 1.0):
            raise EsgError(f"estimated share must be in [0, 1], got {self.estimated_share!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ManualEmission:
    """Scope 1 emissions entered by hand (EO sterilisation by-products, refrigerant leaks)."""

    name: str
    source: str
    emissions_tco2e: Measured


@dataclass(frozen=True, slots=True, kw_only=True)
class EsgInputs:
    """Everything one site's report over [start_ns, end_ns) is computed from.

    Electricity in kWh: `grid_electricity_kwh` is all purchased grid electricity (PE), including
    the part green certificates cover (`certificate_electricity_kwh`); `pv_electricity_kwh` is
    on-site PV consumed on site; production / office are the area meters behind TECP / TECO.
    Water in m3: withdrawal per source (fresh water, FWV), discharge, recycled (RWV) and the
    production area's water (WC). Natural gas in m3 (normal). Denominators are figures over the
    same period (compute.denominators.denominator_over); a kind absent here is missing.
    """

    site: str
    region: str  # factor region path, e.g. "CN" or "CN/east/jiangsu"
    start_ns: int
    end_ns: int
    grid_electricity_kwh: Measured
    certificate_electricity_kwh: Measured | None = None  # None: no certificates retired
    pv_electricity_kwh: Measured | None = None  # None: no on-site PV
    production_electricity_kwh: Measured | None = None
    office_electricity_kwh: Measured | None = None
    natural_gas_m3: Measured
    water_withdrawal_m3: Mapping[WaterSource, Measured]
    water_discharge_m3: Measured
    water_recycled_m3: Measured
    production_water_m3: Measured | None = None
    denominators: Mapping[Denominator, Figure] = field(default_factory=dict)
    manual_scope1: tuple[ManualEmission, ...] = ()

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.end_ns <= self.start_ns:
            problems.append(f"empty period [{self.start_ns}, {self.end_ns})")
        if not self.water_withdrawal_m3:
            problems.append("water withdrawal needs at least one source (0 m3 if none)")
        for kind, fig in self.denominators.items():
            if fig.unit != kind.unit:
                problems.append(f"{kind} is in {kind.unit!r}, got {fig.unit!r}")
            if (fig.start_ns, fig.end_ns) != (self.start_ns, self.end_ns):
                problems.append(f"{kind} covers [{fig.start_ns}, {fig.end_ns}), not the period")
        if problems:
            raise EsgError(f"ESG inputs for {self.site!r}: " + "; ".join(problems))


DEFAULT_INTENSITY_PER = (
    Denominator.UNITS_PRODUCED,
    Denominator.OUTPUT_VALUE_10K_CNY,
    Denominator.REVENUE_10K_CNY,
    Denominator.HEADCOUNT,
    Denominator.FLOOR_AREA_M2,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportSpec:
    """Choices a report states: intensity denominators, the Scope 2 basis of GHG totals, the gas
    calorific value, and published decimals per indicator key (overriding the defaults)."""

    intensity_per: tuple[Denominator, ...] = DEFAULT_INTENSITY_PER
    ghg_total_basis: Basis = Basis.LOCATION  # Scope 2 basis inside 305-4 and A1.2 totals
    natural_gas: FuelCombustion = NATURAL_GAS_DEFAULT  # its LHV gives gas energy in GJ
    decimals: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = {k: d for k, d in self.decimals.items() if d < 0}
        if bad:
            raise EsgError(f"decimals must be >= 0: {bad}")


@dataclass(frozen=True, slots=True, kw_only=True)
class InputUse:
    """One raw input behind an indicator, as it entered (unrounded) with its data quality."""

    name: str
    value: float | None
    unit: str
    coverage: Coverage
    estimated_share: float
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Indicator:
    """One published figure of one framework; `value` is rounded once, from `unrounded`.

    `key` identifies it across reports ("GRI:305-2:market"). None values carry the reason.
    """

    framework: Framework
    code: str
    item: str
    name: str
    value: Decimal | None
    unrounded: float | None
    unit: str
    decimals: int
    rounding: Rounding
    formula: str
    inputs: tuple[InputUse, ...]
    coverage: Coverage
    estimated_share: float
    factor_refs: tuple[str, ...]
    reason: str = ""

    @property
    def key(self) -> str:
        return f"{self.framework}:{self.code}" + (f":{self.item}" if self.item else "")


@dataclass(frozen=True, slots=True, kw_only=True)
class MethodNotes:
    """How the figures were made: each factor used, the conversions, the formulas, decisions."""

    factors: tuple[EmissionFactor, ...]
    conversions: tuple[str, ...]
    formulas: tuple[tuple[str, str], ...]  # (indicator key, formula)
    notes: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class EsgReport:
    """A site's indicators over [start_ns, end_ns), in framework order, with method notes."""

    site: str
    region: str
    start_ns: int
    end_ns: int
    ghg_total_basis: Basis
    indicators: tuple[Indicator, ...]
    method: MethodNotes

    def indicator(self, key: str) -> Indicator:
        """The indicator with `key`, e.g. "T/LTIA 27-2024:WRR"; KeyError names the known keys."""
        for i in self.indicators:
            if i.key == key:
                return i
        raise KeyError(f"no indicator {key!r}; known: {[i.key for i in self.indicators]}")

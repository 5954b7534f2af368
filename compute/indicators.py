"""Derived indicators over one period: intensities, shares, water balance, idle energy, coverage.

Pure: inputs are period totals computed elsewhere; no I/O, no clock. Rounding happens once, last.
"""

from __future__ import annotations

import dataclasses
import decimal
import enum
import math
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from compute.errors import PlantPulseError

_WIDE = decimal.Context(prec=200)  # quantize must never run out of digits for large figures


class IndicatorError(PlantPulseError, ValueError):
    """Inputs cannot form the indicator: different periods or units, or impossible values."""


def round_half_up(x: float | int | Decimal, places: int) -> Decimal:
    """`x` rounded to `places` decimals, ties away from zero (2.675 → 2.68, -0.125 → -0.13).

    Python's round() rounds ties to even and sees the binary value (round(2.675, 2) == 2.67);
    here a float enters as its shortest repr, the decimal number it prints as. Returns a Decimal
    so the published digits, trailing zeros included, survive: str() it to publish.
    """
    if places < 0:
        raise IndicatorError(f"places must be >= 0, got {places}")
    # a float enters through str(), not repr(): repr(np.float64(2.5)) is "np.float64(2.5)"
    d = Decimal(x) if isinstance(x, Decimal | int) else Decimal(str(float(x)))
    if not d.is_finite():
        raise IndicatorError(f"cannot round {x!r}")
    return d.quantize(Decimal(1).scaleb(-places), rounding=decimal.ROUND_HALF_UP, context=_WIDE)


@dataclass(frozen=True, slots=True, kw_only=True)
class Coverage:
    """The samples behind a figure: expected, received, and good among those received.

    Fractions are of `expected`, capped at 1; nothing expected is vacuously complete (1.0).
    Two rules combine coverage: `+` adds counts, for one series summed over buckets or meters of
    the same kind; `combine` takes the weakest input, for a figure derived from different
    series (a ratio, a share), so its good fraction is the minimum of the inputs' good fractions.
    """

    expected: int
    received: int
    good: int

    def __post_init__(self) -> None:
        if not (self.expected >= 0 and 0 <= self.good <= self.received):
            raise IndicatorError(f"impossible coverage {self}")

    @classmethod
    def complete(cls, samples: int = 1) -> Coverage:
        """All present and good: a figure entered by hand or taken from ERP / MES."""
        return cls(expected=samples, received=samples, good=samples)

    @property
    def received_fraction(self) -> float:
        return min(1.0, self.received / self.expected) if self.expected else 1.0

    @property
    def good_fraction(self) -> float:
        return min(1.0, self.good / self.expected) if self.expected else 1.0

    def __add__(self, other: Coverage) -> Coverage:
        return Coverage(
            expected=self.expected + other.expected,
            received=self.received + other.received,
            good=self.good + other.good,
        )

    @staticmethod
    def combine(first: Coverage, *more: Coverage) -> Coverage:
        """The weakest input: lowest good fraction, then lowest received fraction, then first."""
        return min((first, *more), key=lambda c: (c.good_fraction, c.received_fraction))


@dataclass(frozen=True, slots=True, kw_only=True)
class Figure:
    """A total over [start_ns, end_ns) in `unit` with its coverage; None says why in `reason`."""

    value: float | None
    unit: str
    start_ns: int
    end_ns: int
    coverage: Coverage
    reason: str = ""

    def __post_init__(self) -> None:
        if self.value is None and not self.reason:
            raise IndicatorError("a figure without a value needs the reason")
        if self.value is not None and not math.isfinite(self.value):
            raise IndicatorError(f"a figure is finite or None, got {self.value!r}")


class Denominator(enum.StrEnum):
    """What an intensity divides by; `unit` is the unit its figure must be in."""

    UNITS_PRODUCED = "units_produced"
    OUTPUT_VALUE_10K_CNY = "output_value_10k_cny"
    OUTPUT_VALUE_1M_CNY = "output_value_1m_cny"
    REVENUE_10K_CNY = "revenue_10k_cny"
    REVENUE_1M_CNY = "revenue_1m_cny"
    HEADCOUNT = "headcount"
    FLOOR_AREA_M2 = "floor_area_m2"

    @property
    def unit(self) -> str:
        return _DENOMINATOR_UNITS[self]


_DENOMINATOR_UNITS = {
    Denominator.UNITS_PRODUCED: "unit",
    Denominator.OUTPUT_VALUE_10K_CNY: "10^4 CNY",
    Denominator.OUTPUT_VALUE_1M_CNY: "10^6 CNY",
    Denominator.REVENUE_10K_CNY: "10^4 CNY",
    Denominator.REVENUE_1M_CNY: "10^6 CNY",
    Denominator.HEADCOUNT: "person",
    Denominator.FLOOR_AREA_M2: "m2",
}


def _same_period(*figures: Figure) -> None:
    periods = {(f.start_ns, f.end_ns) for f in figures}
    if len(periods) > 1:
        raise IndicatorError(f"figures cover different periods: {sorted(periods)}")


def _same_unit(*figures: Figure) -> str:
    units = {f.unit for f in figures}
    if len(units) > 1:
        raise IndicatorError(f"figures are in different units: {sorted(units)}")
    return figures[0].unit


def _non_negative(*figures: Figure) -> None:
    for f in figures:
        if f.value is not None and f.value < 0.0:
            raise IndicatorError(f"a negative {f.unit} figure ({f.value}) cannot enter this ratio")


def _ratio(num: Figure, den: Figure, unit: str, scale: float = 1.0) -> Figure:
    """num ÷ den × scale for the same period; undefined (None, with the reason) instead of inf."""
    _same_period(num, den)
    coverage = Coverage.combine(num.coverage, den.coverage)
    value, reason = None, ""
    if num.value is None:
        reason = f"numerator missing: {num.reason}"
    elif den.value is None:
        reason = f"denominator missing: {den.reason}"
    elif den.value == 0.0:
        reason = "denominator is zero"
    elif not math.isfinite(ratio := num.value / den.value * scale):
        reason = "ratio overflows"
    else:
        value = ratio
    return dataclasses.replace(num, value=value, unit=unit, coverage=coverage, reason=reason)


def intensity(total: Figure, denominator: Figure, kind: Denominator) -> Figure:
    """Intensity = total ÷ denominator of the same period (GRI 302-3 / 305-4, HKEX A1.2 / A2.1).

    The unit names the denominator, e.g. "tCO2/10^4 CNY (output_value_10k_cny)"; `denominator`
    must be in `kind.unit`. A zero or missing denominator gives None with the reason.
    """
    if denominator.unit != kind.unit:
        raise IndicatorError(f"{kind} is in {kind.unit!r}, got {denominator.unit!r}")
    return _ratio(total, denominator, f"{total.unit}/{kind.unit} ({kind})")


def ecovrp(output_value: Figure, energy: Figure) -> Figure:
    """Output value per unit of energy: T/LTIA 27-2024 ECOVRP = TOV / TECP.

    An inverted intensity, so higher is better. Pass production natural gas (TNGC) as `energy`
    for the matching gas ratio.
    """
    return _ratio(output_value, energy, f"{output_value.unit}/{energy.unit}")


def renewable_share(renewable: Figure, total: Figure) -> Figure:
    """Renewable share [%] = renewable ÷ total energy × 100 (GRI 302-1 split), same unit."""
    _same_unit(renewable, total)
    _non_negative(renewable, total)
    part, whole = renewable.value, total.value
    if part is not None and whole is not None and part > whole:
        raise IndicatorError(f"renewable {part} exceeds total {whole} {total.unit}")
    return _ratio(renewable, total, "%", 100.0)


def _sum(a: Figure, b: Figure) -> Figure:
    _same_period(a, b)
    missing = [f.reason for f in (a, b) if f.value is None]
    value = None if missing else (a.value or 0.0) + (b.value or 0.0)
    coverage = Coverage.combine(a.coverage, b.coverage)
    return dataclasses.replace(
        a, value=value, unit=_same_unit(a, b), coverage=coverage, reason="; ".join(missing)
    )


def water_recycling_rate(fresh: Figure, recycled: Figure) -> Figure:
    """T/LTIA 27-2024 WRR [%] = RWV / (FWV + RWV) × 100: recycled share of total water use."""
    _non_negative(fresh, recycled)
    return _ratio(recycled, _sum(fresh, recycled), "%", 100.0)


def water_consumption(withdrawal: Figure, discharge: Figure) -> Figure:
    """GRI 303-5 water consumption = withdrawal − discharge, same unit (ML in GRI).

    Not clamped: a negative figure (discharge above withdrawal, e.g. rainwater or a storage change)
    is shown, not hidden.
    """
    _same_period(withdrawal, discharge)
    value = None if discharge.value is None else -discharge.value
    return _sum(withdrawal, dataclasses.replace(discharge, value=value))


class LineState(enum.IntEnum):
    """Production line state per bucket, as its codes are stored."""

    RUN = 0
    IDLE = 1
    OFF = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class IdleEnergy:
    """Energy metered while the line was idle or off; missing buckets had no consumption value."""

    energy_kwh: float
    buckets: int
    missing_buckets: int


def idle_energy(consumption_kwh: npt.ArrayLike, state: npt.ArrayLike) -> IdleEnergy:
    """Σ consumption over buckets whose line is idle or off (Jiangsu 2025 idle / no-load energy).

    `state` per bucket is boolean (True: idle or off) or LineState codes; NaN consumption in such
    a bucket is counted in `missing_buckets`, never as zero energy silently.
    """
    kwh = np.asarray(consumption_kwh, dtype=np.float64)
    codes = np.asarray(state)
    if kwh.ndim != 1 or kwh.shape != codes.shape:
        raise IndicatorError(f"consumption {kwh.shape} and state {codes.shape} must be 1-D alike")
    if codes.dtype != np.bool_ and not np.isin(codes, np.array(list(LineState))).all():
        raise IndicatorError(f"line states must be booleans or codes {[int(s) for s in LineState]}")
    idle = codes if codes.dtype == np.bool_ else codes != LineState.RUN
    if (kwh[idle] < 0.0).any():
        raise IndicatorError("negative consumption in an idle bucket")
    missing = idle & np.isnan(kwh)
    return IdleEnergy(
        energy_kwh=float(kwh[idle & ~missing].sum()),
        buckets=int(idle.sum()),
        missing_buckets=int(missing.sum()),
    )

"""Cleanroom limits (ISO 14644-1 particle classes, GMP temperature, humidity and pressure) and the
green / amber / red status of a value against them. Pure: no I/O, no clock.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass


class Signal(enum.StrEnum):
    TEMPERATURE = "temperature"
    HUMIDITY = "humidity"
    PRESSURE_DIFF = "pressure_diff"
    PARTICLES = "particles"


class Status(enum.StrEnum):
    """Green inside the alert limits, amber at or past them, red at or past the action
    (regulatory) limit; unknown without a good, fresh value."""

    GREEN = "green"
    AMBER = "amber"
    RED = "red"
    UNKNOWN = "unknown"


_RANK = {Status.GREEN: 0, Status.UNKNOWN: 1, Status.AMBER: 2, Status.RED: 3}

# DOMAIN.md "Cleanroom limits": China's GMP appendix for sterile medical devices.
GMP_SOURCE = "China GMP appendix for sterile medical devices"
TEMPERATURE_RANGE_DEGC = (18.0, 28.0)
HUMIDITY_RANGE_PCT_RH = (45.0, 65.0)
DP_MIN_BETWEEN_CLASSES_PA = 5.0  # "more than 5 Pa" between clean rooms of different classes
DP_MIN_TO_NON_CLEAN_PA = 10.0  # "more than 10 Pa" to non-clean areas or outdoors

# Plant defaults, not DOMAIN.md's: the alert limit sits at this share of the class limit (or of
# a GMP range's half-width from its middle), and this far above a pressure minimum.
ALERT_FRACTION = 0.8
DP_ALERT_MARGIN_PA = 2.0

# Where ISO 14644-1:2015 Table 1 leaves a class limit blank, counts are too low to sample
# reliably: below class 3 at >=0.5 um, class 4 at >=1 um, class 6 at >=5 um (DOMAIN.md's "(none)"
# for ISO 5).
_FIRST_CLASS = {0.5: 3, 1.0: 4, 5.0: 6}
_PARTICLE_SIZE = re.compile(r"(\d+)(?:p(\d+))?\s*um")


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Bounds of one signal; None where a side has no limit. Alert limits sit inside the action
    limits, so a drift shows before it is an excursion."""

    signal: Signal
    unit: str
    action_low: float | None
    action_high: float | None
    alert_low: float | None
    alert_high: float | None
    source: str


def iso_class_limit(iso_class: int, size_um: float) -> float | None:
    """ISO 14644-1:2015 class limit Cn = 10^N x (0.1 / D)^2.08 in particles/m3 (DOMAIN.md),
    rounded as the standard's Table 1 prints it: three significant figures, whole particles
    (35 for ISO 3 at 0.5 um). None where the table leaves it blank.
    """
    if size_um in _FIRST_CLASS and iso_class < _FIRST_CLASS[size_um]:
        return None
    c = 10.0**iso_class * (0.1 / size_um) ** 2.08
    digits = min(2 - math.floor(math.log10(c)), 0)
    return float(round(round(c, digits)))


def band(lo: float, hi: float, fraction: float) -> tuple[float, float]:
    """The (low, high) levels at `fraction` of a range's half-width from its middle."""
    mid, half = (lo + hi) / 2, (hi - lo) / 2
    return mid - half * fraction, mid + half * fraction


def particle_size_um(channel_id: str) -> float | None:
    """The particle size a channel counts, from its id: "particles-0p5um" → 0.5, "pc-5um" → 5."""
    m = _PARTICLE_SIZE.search(channel_id)
    if m is None:
        return None
    return float(f"{m.group(1)}.{m.group(2) or 0}")


def signal_of(channel_id: str, unit: str) -> Signal | None:
    """Which cleanroom signal a channel carries, by its unit (and id for particle sizes)."""
    u = unit.strip().lower()
    if u in ("degc", "°c", "c"):
        return Signal.TEMPERATURE
    if u in ("%rh", "%"):
        return Signal.HUMIDITY
    if u == "pa":
        return Signal.PRESSURE_DIFF
    if u.startswith("particles") and particle_size_um(channel_id) is not None:
        return Signal.PARTICLES
    return None


def label(signal: Signal, channel_id: str) -> str:
    """How a dashboard names the signal: "Temperature", "Particles ≥0.5 µm"."""
    if signal is Signal.PARTICLES:
        return f"Particles ≥{particle_size_um(channel_id) or 0:g} µm"
    return {
        Signal.TEMPERATURE: "Temperature",
        Signal.HUMIDITY: "Humidity",
        Signal.PRESSURE_DIFF: "Pressure differential",
    }[signal]


def default_limits(channel_id: str, unit: str, iso_class: int | None) -> Limits | None:
    """The default limits of a cleanroom channel (DOMAIN.md), or None for other channels. The
    alert presets (compute.alert_presets) put their default levels on the same numbers."""
    signal = signal_of(channel_id, unit)
    ranges = {Signal.TEMPERATURE: TEMPERATURE_RANGE_DEGC, Signal.HUMIDITY: HUMIDITY_RANGE_PCT_RH}
    if signal in ranges:
        lo, hi = ranges[signal]
        (action_low, action_high), (alert_low, alert_high) = (
            band(lo, hi, 1.0),
            band(lo, hi, ALERT_FRACTION),
        )
        return Limits(
            signal=signal,
            unit=unit,
            action_low=action_low,
            action_high=action_high,
            alert_low=alert_low,
            alert_high=alert_high,
            source=GMP_SOURCE,
        )
    if signal is Signal.PRESSURE_DIFF:
        return Limits(
            signal=signal,
            unit=unit,
            action_low=DP_MIN_TO_NON_CLEAN_PA,
            action_high=None,
            alert_low=DP_MIN_TO_NON_CLEAN_PA + DP_ALERT_MARGIN_PA,
            alert_high=None,
            source=f"{GMP_SOURCE}: > {DP_MIN_TO_NON_CLEAN_PA:g} Pa to non-clean areas",
        )
    size_um = particle_size_um(channel_id)
    if signal is Signal.PARTICLES and iso_class is not None and size_um is not None:
        limit = iso_class_limit(iso_class, size_um)
        if limit is None:
            return None
        return Limits(
            signal=signal,
            unit=unit,
            action_low=None,
            action_high=limit,
            alert_low=None,
            alert_high=limit * ALERT_FRACTION,
            source=f"ISO 14644-1:2015 class {iso_class}, ≥{size_um:g} µm",
        )
    return None


def status_of(value: float | None, limits: Limits, *, usable: bool = True) -> Status:
    """The status of a value against its limits; unknown when not usable (bad, stale, missing)."""
    if value is None or not usable or math.isnan(value):
        return Status.UNKNOWN
    if _outside(value, limits.action_low, limits.action_high):
        return Status.RED
    if _outside(value, limits.alert_low, limits.alert_high):
        return Status.AMBER
    return Status.GREEN


def worst(statuses: list[Status]) -> Status:
    """A room's status: the worst of its signals'; unknown for a room without any."""
    return max(statuses, key=_RANK.__getitem__, default=Status.UNKNOWN)


def _outside(value: float, low: float | None, high: float | None) -> bool:
    """At or beyond a limit, as the alert rules count it (a value exactly on it is out)."""
    return (low is not None and value <= low) or (high is not None and value >= high)

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
    """Green inside the alert limits, amber past them, red past the action (regulatory) limit;
    unknown without a good, fresh value."""

    GREEN = "green"
    AMBER = "amber"
    RED = "red"
    UNKNOWN = "unknown"


_RANK = {Status.GREEN: 0, Status.UNKNOWN: 1, Status.AMBER: 2, Status.RED: 3}

# Share of the ISO class limit at which a particle count is worth an alert (plant default).
PARTICLE_ALERT_SHARE = 0.8
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
    """ISO 14644-1:2015 concentration limit Cn = 10^N × (0.1 / D)^2.08 in particles/m3, to three
    significant figures as the standard's table; None where the table gives none (≥5 µm below
    class 6)."""
    if size_um >= 5.0 and iso_class < 6:
        return None
    c = 10.0**iso_class * (0.1 / size_um) ** 2.08
    digits = 2 - math.floor(math.log10(c))
    return float(round(c, digits))


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
    """The default limits of a cleanroom channel (DOMAIN.md), or None for other channels."""
    signal = signal_of(channel_id, unit)
    gmp = "China GMP appendix for sterile medical devices"
    if signal is Signal.TEMPERATURE:
        return Limits(
            signal=signal,
            unit=unit,
            action_low=18.0,
            action_high=28.0,
            alert_low=19.0,
            alert_high=27.0,
            source=gmp,
        )
    if signal is Signal.HUMIDITY:
        return Limits(
            signal=signal,
            unit=unit,
            action_low=45.0,
            action_high=65.0,
            alert_low=47.0,
            alert_high=63.0,
            source=gmp,
        )
    if signal is Signal.PRESSURE_DIFF:
        return Limits(
            signal=signal,
            unit=unit,
            action_low=10.0,
            action_high=None,
            alert_low=12.0,
            alert_high=None,
            source=f"{gmp}: > 10 Pa to non-clean areas",
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
            alert_high=limit * PARTICLE_ALERT_SHARE,
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
    return (low is not None and value < low) or (high is not None and value > high)

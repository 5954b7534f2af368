"""Cleanroom alert presets from a room's ISO class and the GMP defaults of DOMAIN.md, whose
numbers compute.cleanroom owns (the dashboard's status uses the same).

Pure: builds AlertRule records; compute.alert_config reads them from YAML and resolve() binds them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from compute.alert_rules import (
    AlertRule,
    Limit,
    LimitDirection,
    Scope,
    Severity,
)
from compute.cleanroom import (
    ALERT_FRACTION,
    DP_ALERT_MARGIN_PA,
    DP_MIN_BETWEEN_CLASSES_PA,
    DP_MIN_TO_NON_CLEAN_PA,
    HUMIDITY_RANGE_PCT_RH,
    TEMPERATURE_RANGE_DEGC,
    band,
    iso_class_limit,
)


class PressureReference(enum.StrEnum):
    """What a room's pressure differential is measured against (the plant model does not say)."""

    NON_CLEAN = "non_clean"  # a non-clean area or outdoors: more than 10 Pa
    OTHER_CLASS = "other_class"  # a clean room of another class: more than 5 Pa

    @property
    def min_pa(self) -> float:
        if self is PressureReference.NON_CLEAN:
            return DP_MIN_TO_NON_CLEAN_PA
        return DP_MIN_BETWEEN_CLASSES_PA


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelNames:
    """The channel ids (within their meter) that carry each cleanroom signal. The plant model
    has no "measurand" field, so presets find channels by these names.
    """

    temperature: str = "temperature"
    humidity: str = "humidity"
    pressure_diff: str = "pressure-diff"
    particles_0p5um: str = "particles-0p5um"
    particles_5um: str = "particles-5um"


@dataclass(frozen=True, slots=True, kw_only=True)
class CleanroomPreset:
    """The rules for every room of one ISO class (optionally one site or area).

    The regulatory limit is the ACTION level (reached at or beyond it, so a reading exactly on
    a limit counts). The ALERT level sits inside it: for particles at alert_fraction of the
    class limit, for temperature and RH at alert_fraction of the half-range from the range's
    middle; clear levels likewise at clear_fraction. Pressure differentials use margins in Pa
    above the minimum. Set action_fraction < 1 to put the action level inside the limit too.
    The fractions, margins, delays and severities are this project's defaults, not DOMAIN.md's.
    """

    iso_class: int
    site: str | None = None
    area: str | None = None
    id_prefix: str | None = None  # default "iso<N>-"
    alert_fraction: float = ALERT_FRACTION
    action_fraction: float = 1.0
    clear_fraction: float = 0.7
    dp_reference: PressureReference = PressureReference.NON_CLEAN
    dp_alert_margin_pa: float = DP_ALERT_MARGIN_PA
    dp_clear_margin_pa: float = 3.0
    on_delay_s: float = 60.0  # door openings last seconds; an excursion counts after a minute
    off_delay_s: float = 0.0
    severity: Severity = Severity.HIGH
    action_severity: Severity = Severity.CRITICAL
    escalate_after_s: float | None = 900.0
    channels: ChannelNames = field(default_factory=ChannelNames)


def preset_issues(p: CleanroomPreset) -> list[tuple[str, str]]:
    """Problems of a preset as (field, message)."""
    issues: list[tuple[str, str]] = []
    if not 1 <= p.iso_class <= 9:
        issues.append(("iso_class", "must be an ISO 14644-1 class, 1-9"))
    if not 0 < p.clear_fraction < p.alert_fraction <= p.action_fraction <= 1:
        issues.append(
            (
                "clear_fraction",
                "must satisfy 0 < clear_fraction < alert_fraction <= action_fraction <= 1",
            )
        )
    if not 0 <= p.dp_alert_margin_pa < p.dp_clear_margin_pa:
        issues.append(("dp_clear_margin_pa", "must exceed dp_alert_margin_pa (>= 0)"))
    return issues


def _range_limits(p: CleanroomPreset, lo: float, hi: float) -> list[tuple[str, Limit]]:
    """High and low limits of a GMP range, their levels placed from the range's middle."""
    (alert_lo, alert_hi), (action_lo, action_hi), (clear_lo, clear_hi) = (
        band(lo, hi, f) for f in (p.alert_fraction, p.action_fraction, p.clear_fraction)
    )
    return [
        (
            f"{LimitDirection.HIGH}",
            Limit(direction=LimitDirection.HIGH, alert=alert_hi, action=action_hi, clear=clear_hi),
        ),
        (
            f"{LimitDirection.LOW}",
            Limit(direction=LimitDirection.LOW, alert=alert_lo, action=action_lo, clear=clear_lo),
        ),
    ]


def cleanroom_rules(p: CleanroomPreset) -> tuple[AlertRule, ...]:
    """Rules for temperature, RH and pressure differential (GMP defaults) and for particles at
    >=0.5 um and >=5 um (ISO class limits, where the class has one), per DOMAIN.md.
    """
    prefix = p.id_prefix if p.id_prefix is not None else f"iso{p.iso_class}-"
    n = p.channels
    specs: list[tuple[str, str, Limit, str]] = []
    particles = (
        (0.5, "particles-0p5um", n.particles_0p5um),
        (5.0, "particles-5um", n.particles_5um),
    )
    for size, name, channel in particles:
        limit = iso_class_limit(p.iso_class, size)
        if limit is None:
            continue
        specs.append(
            (
                f"{name}-high",
                channel,
                Limit(
                    direction=LimitDirection.HIGH,
                    alert=limit * p.alert_fraction,
                    action=limit * p.action_fraction,
                    clear=limit * p.clear_fraction,
                ),
                f"particles >={size:g} um: ISO {p.iso_class} limit {limit:g}/m3 (ISO 14644-1)",
            )
        )
    for name, channel, (lo, hi), unit in (
        ("temperature", n.temperature, TEMPERATURE_RANGE_DEGC, "degC"),
        ("humidity", n.humidity, HUMIDITY_RANGE_PCT_RH, "%RH"),
    ):
        for side, lim in _range_limits(p, lo, hi):
            why = f"{name}: GMP range {lo:g}-{hi:g} {unit} (DOMAIN.md)"
            specs.append((f"{name}-{side}", channel, lim, why))
    dp = p.dp_reference.min_pa
    specs.append(
        (
            "pressure-diff-low",
            n.pressure_diff,
            Limit(
                direction=LimitDirection.LOW,
                alert=dp + p.dp_alert_margin_pa,
                action=dp,
                clear=dp + p.dp_clear_margin_pa,
            ),
            f"pressure differential: more than {dp:g} Pa to {p.dp_reference} (GMP, DOMAIN.md)",
        )
    )
    return tuple(
        AlertRule(
            id=f"{prefix}{rid}",
            scope=Scope(site=p.site, area=p.area, iso_class=p.iso_class, channel_name=channel),
            condition=limit,
            severity=p.severity,
            action_severity=p.action_severity,
            on_delay_s=p.on_delay_s,
            off_delay_s=p.off_delay_s,
            escalate_after_s=p.escalate_after_s,
            description=why,
        )
        for rid, channel, limit, why in specs
    )

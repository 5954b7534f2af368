"""Alert rule specs: what a rule watches, where, and how it is timed. Pure data and its checks.

Rules are built by compute.alert_config (YAML) and compute.alert_presets; evaluation lives in
compute.alert_detect (conditions), compute.alert_state (lifecycle) and compute.alert_eval.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from compute.errors import PlantPulseError
from compute.model import NS_PER_S
from compute.plant import AreaKind, Utility

MINUTE_NS = 60 * NS_PER_S
HOUR_NS = 60 * MINUTE_NS
DAY_NS = 24 * HOUR_NS
ALL_WEEKDAYS = frozenset(range(7))  # 0 is Monday, as in datetime.weekday()


class AlertError(PlantPulseError):
    """Root of the alerting errors."""


class Severity(enum.IntEnum):
    """How urgent an alert is (ISA-18.2 priority); ordered, so CRITICAL > HIGH."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4


class AlertLevel(enum.IntEnum):
    """Which of a rule's two thresholds an excursion reached; ACTION is the more severe."""

    ALERT = 1
    ACTION = 2


class LimitDirection(enum.StrEnum):
    HIGH = "high"  # raise at or above the levels
    LOW = "low"  # raise at or below the levels


class RateDirection(enum.StrEnum):
    RISE = "rise"
    FALL = "fall"
    EITHER = "either"


class RatePer(enum.StrEnum):
    """The time unit of a rate threshold: value units per minute or per hour."""

    MINUTE = "minute"
    HOUR = "hour"

    @property
    def ns(self) -> int:
        return MINUTE_NS if self is RatePer.MINUTE else HOUR_NS


class DeviationMode(enum.StrEnum):
    PERCENT = "percent"  # (value - mean) / |mean| x 100
    ZSCORE = "zscore"  # (value - mean) / standard deviation


class DeviationSide(enum.StrEnum):
    ABOVE = "above"
    BELOW = "below"
    EITHER = "either"


@dataclass(frozen=True, slots=True, kw_only=True)
class Limit:
    """A high or low limit on the value, in the channel's unit.

    The condition is raised at or beyond `alert` (ACTION at or beyond `action`) and clears only
    at or inside `clear`, so a signal wandering between clear and alert neither raises nor clears
    (hysteresis). For HIGH: clear < alert <= action; for LOW the reverse.
    """

    direction: LimitDirection
    alert: float
    action: float | None = None
    clear: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RateOfChange:
    """Rate of change in value units per `per`, measured over the last window_s.

    The rate of a sample is (value - value then) / elapsed, against the newest sample at least
    window_s older. Thresholds are positive; `direction` says which way counts.
    """

    direction: RateDirection
    per: RatePer
    alert: float
    action: float | None = None
    clear: float
    window_s: float = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Stale:
    """No usable (good or uncertain) reading for max_age_s: a meter offline or only bad data."""

    max_age_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Stuck:
    """The value has not moved for duration_s: no step between consecutive usable readings
    exceeded `tolerance` (a frozen sensor often repeats within one quantisation step).
    """

    duration_s: float
    tolerance: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class IdleSchedule:
    """Local times when the site is idle: [start, end) minutes of the local day, wrapping past
    midnight when end <= start (start == end: the whole day). A window belongs to the weekday
    on which it starts, so Friday 22:00-06:00 covers Saturday 02:00.
    """

    start_minute: int
    end_minute: int
    weekdays: frozenset[int] = ALL_WEEKDAYS


@dataclass(frozen=True, slots=True, kw_only=True)
class IdleConsumption:
    """Consumption per hour (kWh/h = kW, m3/h) at or above alert_per_h while the line is idle.

    For a counter the rate comes from consecutive readings; for a gauge (kW, m3/h) it is the
    value. Idle means: the reference channel is at or below reference_off_at_or_below (its rate
    per hour if it is a counter: a production counter standing still), or the local time lies in
    `schedule`. With neither `reference` nor `schedule`, the channel's plant `idle_with` is used.
    """

    alert_per_h: float
    action_per_h: float | None = None
    clear_per_h: float
    reference: str | None = None  # plant key "meter.channel"
    reference_off_at_or_below: float = 0.0
    schedule: IdleSchedule | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BaselineDeviation:
    """Deviation from the channel's hour-of-week profile (site-local time), as a percentage of
    the slot's mean or as a z-score. Slots learnt from fewer than min_samples readings (and
    zero means / zero deviations) give no verdict.
    """

    mode: DeviationMode
    side: DeviationSide = DeviationSide.EITHER
    alert: float
    action: float | None = None
    clear: float
    min_samples: int = 10


Condition = Limit | RateOfChange | Stale | Stuck | IdleConsumption | BaselineDeviation


@dataclass(frozen=True, slots=True, kw_only=True)
class Scope:
    """Which channels a rule watches: one channel by its key, or every channel in the matching
    areas (site, area, area kind, ISO class) that passes all the given channel filters.
    """

    channel: str | None = None  # "meter.channel"
    site: str | None = None
    area: str | None = None
    area_kind: AreaKind | None = None
    iso_class: int | None = None  # implies cleanrooms: every room of this ISO class
    channel_name: str | None = None  # a channel's own id within its meter, e.g. "pressure-diff"
    unit: str | None = None
    utility: Utility | None = None

    @property
    def filters(self) -> bool:
        return any(x is not None for x in (self.channel_name, self.unit, self.utility))


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertRule:
    """One rule: a condition over a scope, its delays, severities and escalation.

    on_delay_s: a condition must hold this long before it raises (door openings); off_delay_s:
    it must be gone this long before it clears. A latching alert that returns to normal while
    unacknowledged stays open until acknowledged (ISA-18.2); a non-latching one closes.
    """

    id: str
    scope: Scope
    condition: Condition
    severity: Severity = Severity.MEDIUM
    action_severity: Severity | None = None  # None: one step above severity
    on_delay_s: float = 0.0
    off_delay_s: float = 0.0
    escalate_after_s: float | None = None  # re-notify once if still active and unacknowledged
    latching: bool = True
    description: str = ""

    def severity_of(self, level: AlertLevel) -> Severity:
        if level is AlertLevel.ALERT:
            return self.severity
        if self.action_severity is not None:
            return self.action_severity
        return Severity(min(self.severity + 1, Severity.CRITICAL))

    @property
    def on_delay_ns(self) -> int:
        return round(self.on_delay_s * NS_PER_S)

    @property
    def off_delay_ns(self) -> int:
        return round(self.off_delay_s * NS_PER_S)

    @property
    def escalate_after_ns(self) -> int | None:
        s = self.escalate_after_s
        return None if s is None else round(s * NS_PER_S)


@dataclass(frozen=True, slots=True, kw_only=True)
class Binding:
    """A rule resolved onto one channel, with what evaluation needs to know of the plant."""

    rule: AlertRule
    channel_id: str  # "meter.channel"
    tz: str = "UTC"  # the site's IANA zone: schedules and hour-of-week slots are local
    unit: str = ""
    is_counter: bool = False
    reference_id: str | None = None  # idle rules: the line signal
    reference_is_counter: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.rule.id, self.channel_id)


def describe(rule: AlertRule, level: AlertLevel, unit: str = "") -> str:
    """The condition at a level in words, e.g. "at or below 10 Pa (low limit)"."""
    u = f" {unit}" if unit else ""
    act = level is AlertLevel.ACTION
    match rule.condition:
        case Limit(direction=d, alert=a, action=x):
            thr = x if act and x is not None else a
            return (
                f"at or {'above' if d is LimitDirection.HIGH else 'below'} {thr:g}{u} ({d} limit)"
            )
        case RateOfChange(direction=d, per=p, alert=a, action=x):
            thr = x if act and x is not None else a
            return f"changing ({d}) by {thr:g}{u} per {p} or more"
        case Stale(max_age_s=t):
            return f"no usable reading for {t:g} s"
        case Stuck(duration_s=t):
            return f"unchanged for {t:g} s"
        case IdleConsumption(alert_per_h=a, action_per_h=x):
            thr = x if act and x is not None else a
            return f"consuming {thr:g}{u}/h or more while idle"
        case BaselineDeviation(mode=m, side=sd, alert=a, action=x):
            thr = x if act and x is not None else a
            what = f"{thr:g} %" if m is DeviationMode.PERCENT else f"{thr:g} sigma"
            return f"{what} {sd} the hour-of-week baseline"
    raise AssertionError(rule.condition)  # pragma: no cover - closed union


def _bands(
    alert: float, action: float | None, clear: float, *, high: bool, names: tuple[str, str, str]
) -> list[tuple[str, str]]:
    """Issues of an (alert, action, clear) triple that raises upward (high) or downward."""
    a_name, x_name, c_name = names
    issues = [
        (n, "must be a finite number")
        for n, v in zip(names, (alert, action, clear), strict=True)
        if v is not None and not math.isfinite(v)
    ]
    if issues:
        return issues
    word, other = ("below", "above") if high else ("above", "below")
    if (clear >= alert) if high else (clear <= alert):
        issues.append((c_name, f"must lie {word} {a_name} ({alert:g}) for the hysteresis"))
    if action is not None and ((action < alert) if high else (action > alert)):
        issues.append((x_name, f"must not lie {word} {a_name} ({alert:g}), {other} it or equal"))
    return issues


def _positive(name: str, v: float, *, zero_ok: bool = False) -> list[tuple[str, str]]:
    if not math.isfinite(v) or v < 0 or (v == 0 and not zero_ok):
        return [(name, "must be a finite number >= 0" if zero_ok else "must be positive")]
    return []


def condition_issues(c: Condition) -> list[tuple[str, str]]:
    """Problems of a condition as (field name, message); empty when it is valid."""
    match c:
        case Limit():
            return _bands(
                c.alert,
                c.action,
                c.clear,
                high=c.direction is LimitDirection.HIGH,
                names=("alert", "action", "clear"),
            )
        case RateOfChange():
            return (
                _positive("window_s", c.window_s)
                + _positive("alert", c.alert)
                + _positive("clear", c.clear, zero_ok=True)
                + _bands(c.alert, c.action, c.clear, high=True, names=("alert", "action", "clear"))
            )
        case Stale():
            return _positive("max_age_s", c.max_age_s)
        case Stuck():
            return _positive("duration_s", c.duration_s) + _positive(
                "tolerance", c.tolerance, zero_ok=True
            )
        case IdleConsumption():
            issues = _bands(
                c.alert_per_h,
                c.action_per_h,
                c.clear_per_h,
                high=True,
                names=("alert_per_h", "action_per_h", "clear_per_h"),
            )
            if not math.isfinite(c.reference_off_at_or_below):
                issues.append(("reference_off_at_or_below", "must be a finite number"))
            if (s := c.schedule) is not None:
                for name, m in (("start", s.start_minute), ("end", s.end_minute)):
                    if not 0 <= m < 1440:
                        issues.append((f"schedule.{name}", "must be a time of day, 00:00-23:59"))
                if not s.weekdays or not s.weekdays <= ALL_WEEKDAYS:
                    issues.append(("schedule.weekdays", "must name at least one weekday"))
            return issues
        case BaselineDeviation():
            issues = _bands(
                c.alert, c.action, c.clear, high=True, names=("alert", "action", "clear")
            )
            if c.side is DeviationSide.EITHER and c.clear < 0:
                issues.append(("clear", "must be >= 0 when either side counts"))
            if c.min_samples < 1:
                issues.append(("min_samples", "must be at least 1"))
            return issues
    raise AssertionError(f"unknown condition {c!r}")  # pragma: no cover - closed union


def rule_issues(rule: AlertRule) -> list[tuple[str, str]]:
    """Problems of a whole rule as (field path, message); condition fields are bare names."""
    issues = condition_issues(rule.condition)
    for name in ("on_delay_s", "off_delay_s"):
        issues += _positive(name, getattr(rule, name), zero_ok=True)
    if rule.escalate_after_s is not None:
        issues += _positive("escalate_after_s", rule.escalate_after_s)
    if rule.action_severity is not None and rule.action_severity < rule.severity:
        issues.append(("action_severity", f"must not be below severity ({rule.severity.name})"))
    s = rule.scope
    if s.channel is not None:
        others = [n for n in ("site", "area", "area_kind", "iso_class") if getattr(s, n)]
        if others or s.filters:
            issues.append(("scope", "a single-channel scope takes no other selector"))
    elif not s.filters:
        issues.append(("scope", "needs a channel, or a filter: channel_name, unit or utility"))
    if s.iso_class is not None and not 1 <= s.iso_class <= 9:
        issues.append(("scope.iso_class", "must be an ISO 14644-1 class, 1-9"))
    return issues

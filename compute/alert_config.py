"""The alert-rule YAML schema: a loaded mapping -> AlertRule records, and rules -> channel bindings.

Pure: parses what yaml.safe_load returned (pydantic is for settings and API schemas only) and
reports every problem with its key path, e.g. "rules[3].clear: must lie below alert (30)".
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any

from compute.alert_presets import (
    ChannelNames,
    CleanroomPreset,
    PressureReference,
    cleanroom_rules,
    preset_issues,
)
from compute.alert_reader import Reader, time_of_day
from compute.alert_rules import (
    AlertError,
    AlertRule,
    BaselineDeviation,
    Binding,
    Condition,
    DeviationMode,
    DeviationSide,
    IdleConsumption,
    IdleSchedule,
    Limit,
    LimitDirection,
    RateDirection,
    RateOfChange,
    RatePer,
    Scope,
    Severity,
    Stale,
    Stuck,
    rule_issues,
)
from compute.plant import AreaKind, ChannelKind, ChannelRef, ConfigIssue, Plant, Utility

_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_BANDS = ("alert", "action", "clear")
# The keys of each rule type besides the common ones, in YAML order.
TYPES: dict[str, tuple[str, ...]] = {
    "high_limit": _BANDS,
    "low_limit": _BANDS,
    "rate_of_change": ("direction", "per", *_BANDS, "window_s"),
    "stale": ("max_age_s",),
    "stuck": ("duration_s", "tolerance"),
    "idle_consumption": (
        "alert_per_h",
        "action_per_h",
        "clear_per_h",
        "reference",
        "reference_off_at_or_below",
        "schedule",
    ),
    "baseline_deviation": ("mode", "side", *_BANDS, "min_samples"),
}
_COMMON = (
    "severity",
    "action_severity",
    "on_delay_s",
    "off_delay_s",
    "escalate_after_s",
    "latching",
    "description",
)


class AlertConfigError(AlertError, ValueError):
    """Alert rules are invalid; `issues` holds every problem with its key path."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


def _schedule(o: Reader) -> IdleSchedule | None:
    if o.raw("schedule", False) is None:
        return None
    s = Reader(o.data["schedule"], f"{o.path}.schedule", o.issues)
    start, end = time_of_day(s, "start"), time_of_day(s, "end")
    days = s.raw("weekdays", False)
    weekdays = frozenset(range(7))
    if days is not None:
        if not isinstance(days, list) or not days or any(d not in _DAYS for d in days):
            s.bad("weekdays", f"must be a list of {', '.join(_DAYS)}")
        else:
            weekdays = frozenset(_DAYS.index(d) for d in days)
    s.done()
    return IdleSchedule(start_minute=start, end_minute=end, weekdays=weekdays)


def _or(v: float | int | None, default: float) -> float:
    return default if v is None else v


def _bands(o: Reader, names: tuple[str, str, str] = _BANDS) -> dict[str, Any]:
    """Alert, action and clear levels; a missing required one reads as 0 (already reported)."""
    alert, action, clear = names
    return {
        alert: _or(o.number(alert, required=True), 0.0),
        action: o.number(action),
        clear: _or(o.number(clear, required=True), 0.0),
    }


def _condition(kind: str, o: Reader) -> Condition:
    n = o.number
    if kind in ("high_limit", "low_limit"):
        direction = LimitDirection.HIGH if kind == "high_limit" else LimitDirection.LOW
        return Limit(direction=direction, **_bands(o))
    if kind == "rate_of_change":
        return RateOfChange(
            direction=o.choice("direction", RateDirection) or RateDirection.EITHER,
            per=o.choice("per", RatePer, required=True) or RatePer.MINUTE,
            window_s=_or(n("window_s"), 60.0),
            **_bands(o),
        )
    if kind == "baseline_deviation":
        return BaselineDeviation(
            mode=o.choice("mode", DeviationMode, required=True) or DeviationMode.PERCENT,
            side=o.choice("side", DeviationSide) or DeviationSide.EITHER,
            min_samples=int(_or(o.integer("min_samples"), 10)),
            **_bands(o),
        )
    if kind == "stale":
        return Stale(max_age_s=_or(n("max_age_s", required=True), 0.0))
    if kind == "stuck":
        return Stuck(
            duration_s=_or(n("duration_s", required=True), 0.0),
            tolerance=_or(n("tolerance"), 0.0),
        )
    return IdleConsumption(
        **_bands(o, ("alert_per_h", "action_per_h", "clear_per_h")),
        reference=o.text("reference"),
        reference_off_at_or_below=_or(n("reference_off_at_or_below"), 0.0),
        schedule=_schedule(o),
    )


def _scope(o: Reader) -> Scope:
    s = Reader(o.raw("scope", True) or {}, f"{o.path}.scope", o.issues)
    scope = Scope(
        channel=s.text("channel"),
        site=s.text("site"),
        area=s.text("area"),
        area_kind=s.choice("area_kind", AreaKind),
        iso_class=s.integer("iso_class"),
        channel_name=s.text("channel_name"),
        unit=s.text("unit"),
        utility=s.choice("utility", Utility),
    )
    s.done()
    return scope


def _rule(data: object, at: str, issues: list[ConfigIssue]) -> AlertRule | None:
    mark = len(issues)
    o = Reader(data, at, issues)
    if len(issues) > mark:
        return None  # not a mapping: its keys would only repeat it
    rule_id = o.text("id", required=True) or ""
    if rule_id and not _ID.match(rule_id):
        o.bad("id", "must be lower-case letters, digits, '_', '-' or '.', up to 63")
    kind = o.text("type", required=True)
    if kind is not None and kind not in TYPES:
        o.bad("type", f"must be one of {', '.join(TYPES)}, not {kind!r}")
    if kind not in TYPES:
        return None
    rule = AlertRule(
        id=rule_id,
        scope=_scope(o),
        condition=_condition(kind, o),
        severity=o.choice("severity", Severity) or Severity.MEDIUM,
        action_severity=o.choice("action_severity", Severity),
        on_delay_s=_or(o.number("on_delay_s"), 0.0),
        off_delay_s=_or(o.number("off_delay_s"), 0.0),
        escalate_after_s=o.number("escalate_after_s"),
        latching=o.flag("latching") is not False,
        description=o.text("description") or "",
    )
    o.done()
    if len(issues) > mark:
        return None  # the semantic checks would only echo the field errors
    issues += [ConfigIssue(path=f"{at}.{k}", message=m) for k, m in rule_issues(rule)]
    return rule if len(issues) == mark else None


def _preset(data: object, at: str, issues: list[ConfigIssue]) -> CleanroomPreset | None:
    mark = len(issues)
    o = Reader(data, at, issues)
    if len(issues) > mark:
        return None
    given: dict[str, Any] = {}
    for f in fields(CleanroomPreset):
        if f.name == "channels":
            continue
        if f.name in ("severity", "action_severity"):
            v: Any = o.choice(f.name, Severity)
        elif f.name == "dp_reference":
            v = o.choice(f.name, PressureReference)
        elif f.name == "iso_class":
            v = o.integer(f.name)
            if v is None and f.name not in o.data:
                o.bad(f.name, "is required")
        elif f.name in ("site", "area", "id_prefix"):
            v = o.text(f.name)
        else:
            v = o.number(f.name)
        if v is not None:
            given[f.name] = v
    if o.raw("channels", False) is not None:
        c = Reader(o.data["channels"], f"{at}.channels", issues)
        names = {f.name: c.text(f.name) for f in fields(ChannelNames)}
        c.done()
        given["channels"] = ChannelNames(**{k: v for k, v in names.items() if v is not None})
    o.done()
    if len(issues) > mark or "iso_class" not in given:
        return None
    preset = CleanroomPreset(**given)
    issues += [ConfigIssue(path=f"{at}.{k}", message=m) for k, m in preset_issues(preset)]
    return preset if len(issues) == mark else None


def parse_rules(data: Mapping[str, Any] | None) -> tuple[AlertRule, ...]:
    """Validate a loaded rules file ({rules: [...], cleanroom_presets: [...]}); raise
    AlertConfigError listing every issue by key path. Presets expand into plain rules.
    """
    issues: list[ConfigIssue] = []
    top = Reader(data or {}, "", issues)
    rules: list[tuple[str, AlertRule]] = []
    for key, parse in (("rules", _rule), ("cleanroom_presets", _preset)):
        items = top.raw(key, False) or []
        if not isinstance(items, list):
            top.bad(key, "must be a list")
            continue
        for i, item in enumerate(items):
            got = parse(item, f"{key}[{i}]", issues)
            if isinstance(got, AlertRule):
                rules.append((f"{key}[{i}]", got))
            elif isinstance(got, CleanroomPreset):
                rules += [(f"{key}[{i}]", r) for r in cleanroom_rules(got)]
    top.done()
    first: dict[str, str] = {}
    for at, r in rules:
        if r.id in first:
            issues.append(ConfigIssue(path=at, message=f"rule id {r.id!r} repeats {first[r.id]}"))
        first.setdefault(r.id, at)
    if issues:
        raise AlertConfigError(issues)
    return tuple(r for _, r in rules)


def _matches(s: Scope, ref: ChannelRef) -> bool:
    area = ref.area
    return (
        (s.site is None or ref.site.id == s.site)
        and (s.area is None or area.id == s.area)
        and (s.area_kind is None or area.kind is s.area_kind)
        and (
            s.iso_class is None
            or (area.kind is AreaKind.CLEANROOM and area.iso_class == s.iso_class)
        )
        and (s.channel_name is None or ref.channel.id == s.channel_name)
        and (s.unit is None or ref.channel.unit == s.unit)
        and (s.utility is None or ref.channel.utility is s.utility)
    )


def _scope_issues(s: Scope, plant: Plant) -> list[tuple[str, str]]:
    sites = {x.id for x in plant.sites}
    areas = {a.id for x in plant.sites if s.site in (None, x.id) for a in x.areas}
    issues = []
    if s.channel is not None and s.channel not in plant.channels:
        issues.append(("scope.channel", f"no channel {s.channel!r} in the plant (meter.channel)"))
    if s.site is not None and s.site not in sites:
        issues.append(("scope.site", f"no site {s.site!r} in the plant"))
    elif s.area is not None and s.area not in areas:
        issues.append(("scope.area", f"no area {s.area!r} in the plant"))
    return issues


def _binding(r: AlertRule, ref: ChannelRef, plant: Plant) -> tuple[Binding | None, str]:
    c = r.condition
    reference = None
    if isinstance(c, BaselineDeviation) and ref.channel.kind is ChannelKind.COUNTER:
        return None, f"{ref.key} is a counter: a baseline watches a gauge (its power or flow)"
    if isinstance(c, IdleConsumption):
        reference = c.reference if c.reference or c.schedule else ref.channel.idle_with
        if reference is None and c.schedule is None:
            return None, f"{ref.key} has no idle_with: give a reference or a schedule"
        if reference is not None and reference not in plant.channels:
            return None, f"no reference channel {reference!r} in the plant (meter.channel)"
    target = plant.channels[reference] if reference is not None else None
    return Binding(
        rule=r,
        channel_id=ref.key,
        tz=ref.site.timezone,
        unit=ref.channel.unit,
        is_counter=ref.channel.kind is ChannelKind.COUNTER,
        reference_id=reference,
        reference_is_counter=target is not None and target.channel.kind is ChannelKind.COUNTER,
    ), ""


def resolve(rules: Sequence[AlertRule], plant: Plant) -> list[Binding]:
    """Bind each rule to the channels its scope selects in the plant, in rule then plant order.

    Raises AlertConfigError (paths index `rules`) for unknown channels, sites, areas and
    references, and for a rule that matches no channel: a rule watching nothing is a silent gap.
    """
    issues: list[ConfigIssue] = []
    out: list[Binding] = []
    for i, r in enumerate(rules):
        at = f"rules[{i}]"
        found = [(f"{at}.{k}", f"rule {r.id!r}: {m}") for k, m in _scope_issues(r.scope, plant)]
        if r.scope.channel is not None:
            refs = [plant.channels[r.scope.channel]] if not found else []
        else:
            refs = [ref for ref in plant.channels.values() if _matches(r.scope, ref)]
            if not refs and not found:
                found.append((f"{at}.scope", f"rule {r.id!r} matches no channel of the plant"))
        for ref in refs:
            b, why = _binding(r, ref, plant)
            if b is None:
                found.append((at, f"rule {r.id!r}: {why}"))
            else:
                out.append(b)
        issues += [ConfigIssue(path=p, message=m) for p, m in found]
    if issues:
        raise AlertConfigError(issues)
    return out


def _value(v: object) -> Any:
    if isinstance(v, Severity):
        return v.name.lower()
    return str(v) if isinstance(v, enum.Enum) else v


def rule_to_dict(r: AlertRule) -> dict[str, Any]:
    """The YAML form of a rule (parse_rules reads it back to an equal rule): for the API and
    for the audit log's old and new values.
    """
    c = r.condition
    kind = {
        Limit: "high_limit",
        RateOfChange: "rate_of_change",
        Stale: "stale",
        Stuck: "stuck",
        IdleConsumption: "idle_consumption",
        BaselineDeviation: "baseline_deviation",
    }[type(c)]
    if isinstance(c, Limit) and c.direction is LimitDirection.LOW:
        kind = "low_limit"
    out: dict[str, Any] = {"id": r.id, "type": kind}
    out["scope"] = {f.name: _value(getattr(r.scope, f.name)) for f in fields(Scope)}
    out["scope"] = {k: v for k, v in out["scope"].items() if v is not None}
    for name in TYPES[kind]:
        v = getattr(c, name)
        if isinstance(v, IdleSchedule):
            v = {
                "start": f"{v.start_minute // 60:02d}:{v.start_minute % 60:02d}",
                "end": f"{v.end_minute // 60:02d}:{v.end_minute % 60:02d}",
                "weekdays": [_DAYS[d] for d in sorted(v.weekdays)],
            }
        if v is not None:
            out[name] = _value(v)
    for name in _COMMON:
        v = getattr(r, name)
        if v is not None and v != "":
            out[name] = _value(v)
    return out

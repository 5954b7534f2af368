"""The alert-rule YAML: parsing, errors that name their key, scope resolution, round trips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from compute.alert_config import AlertConfigError, parse_rules, resolve, rule_to_dict
from compute.alert_rules import (
    IdleConsumption,
    IdleSchedule,
    Limit,
    LimitDirection,
    RateOfChange,
    RatePer,
    Scope,
    Severity,
)
from compute.errors import PlantPulseError
from compute.plant import AreaKind, Utility, parse_plant

EXAMPLE = Path(__file__).parents[3] / "deploy" / "examples" / "medtech-plant.yaml"

RULES = """
rules:
  - id: cr-a-dp-low
    type: low_limit
    scope: {channel: cleanroom-a-env.pressure-diff}
    alert: 12
    action: 10
    clear: 13
    on_delay_s: 30
    severity: high
    action_severity: critical
    escalate_after_s: 900
    description: Aseptic assembly must stay above corridor pressure
  - id: gas-at-night
    type: idle_consumption
    scope: {utility: natural_gas}
    alert_per_h: 5
    clear_per_h: 3
    schedule: {start: 22:00, end: "06:00", weekdays: [mon, tue, wed, thu, fri]}
  - id: line-1-idle
    type: idle_consumption
    scope: {channel: line-1-meter.energy-import}
    alert_per_h: 20
    clear_per_h: 15
  - id: power-ramp
    type: rate_of_change
    scope: {channel: line-1-meter.power}
    direction: rise
    per: minute
    alert: 200
    clear: 50
  - id: meters-offline
    type: stale
    scope: {unit: kWh}
    max_age_s: 120
    latching: false
  - id: frozen-sensors
    type: stuck
    scope: {area_kind: cleanroom, utility: environment}
    duration_s: 1800
  - id: power-baseline
    type: baseline_deviation
    scope: {channel: line-1-meter.power}
    mode: zscore
    alert: 4
    clear: 2
cleanroom_presets:
  - iso_class: 7
  - iso_class: 8
    dp_reference: other_class
    on_delay_s: 120
"""


@pytest.fixture(scope="module")
def plant() -> Any:
    return parse_plant(yaml.safe_load(EXAMPLE.read_text()))


def test_a_rules_file_parses_into_rule_records() -> None:
    rules = {r.id: r for r in parse_rules(yaml.safe_load(RULES))}
    assert len(rules) == 7 + 7 + 7
    dp = rules["cr-a-dp-low"]
    assert dp.condition == Limit(direction=LimitDirection.LOW, alert=12, action=10, clear=13)
    assert (dp.severity, dp.action_severity, dp.on_delay_s, dp.escalate_after_s) == (
        Severity.HIGH,
        Severity.CRITICAL,
        30.0,
        900.0,
    )
    assert dp.scope == Scope(channel="cleanroom-a-env.pressure-diff")
    gas = rules["gas-at-night"].condition
    assert isinstance(gas, IdleConsumption)
    # Unquoted 22:00 is YAML 1.1 sexagesimal (1320): minutes since midnight, as intended.
    assert gas.schedule == IdleSchedule(
        start_minute=1320, end_minute=360, weekdays=frozenset(range(5))
    )
    ramp = rules["power-ramp"].condition
    assert isinstance(ramp, RateOfChange) and ramp.per is RatePer.MINUTE and ramp.window_s == 60
    assert rules["meters-offline"].latching is False
    assert rules["iso8-pressure-diff-low"].condition == Limit(
        direction=LimitDirection.LOW, alert=7.0, action=5.0, clear=8.0
    )
    assert rules["iso8-temperature-high"].on_delay_s == 120


def errors(doc: object) -> list[str]:
    with pytest.raises(AlertConfigError) as e:
        parse_rules(doc)  # type: ignore[arg-type]
    assert isinstance(e.value, PlantPulseError)
    return [str(i) for i in e.value.issues]


def limit(**kw: Any) -> dict[str, Any]:
    base = {"id": "t", "type": "high_limit", "scope": {"channel": "m.c"}, "alert": 30, "clear": 28}
    return base | kw


def test_config_errors_name_the_offending_key() -> None:
    doc = {
        "rules": [
            limit(),
            limit(id="a", clear=31),
            limit(id="b", action=29),
            limit(id="c", alert="hot"),
            limit(id="d", colour="red"),
            limit(id="e", type="high"),
            {
                "id": "f",
                "type": "rate_of_change",
                "scope": {"channel": "m.c"},
                "alert": 1,
                "clear": 0,
            },
            limit(id="g", scope={"area": "cleanroom-a"}),
            limit(id="h", scope={"channel": "m.c", "unit": "Pa"}),
            limit(id="t"),
            limit(id="i", severity="urgent", on_delay_s=-5),
            {
                "id": "j",
                "type": "idle_consumption",
                "scope": {"utility": "natural_gas"},
                "alert_per_h": 5,
                "clear_per_h": 3,
                "schedule": {"start": "25:00", "end": "6"},
            },
            "not a mapping",
        ],
        "cleanroom_presets": [{"iso_class": 7, "clear_fraction": 0.95}, {"site": "x"}],
        "extra": 1,
    }
    assert errors(doc) == [
        "rules[1].clear: must lie below alert (30) for the hysteresis",
        "rules[2].action: must not lie below alert (30), above it or equal",
        "rules[3].alert: must be a finite number, not 'hot'",
        "rules[4].colour: unknown key",
        "rules[5].type: must be one of high_limit, low_limit, rate_of_change, stale, stuck,"
        " idle_consumption, baseline_deviation, not 'high'",
        "rules[6].per: is required",
        "rules[7].scope: needs a channel, or a filter: channel_name, unit or utility",
        "rules[8].scope: a single-channel scope takes no other selector",
        "rules[10].severity: must be one of low, medium, high, critical, not 'urgent'",
        "rules[11].schedule.start: must be a local time of day \"HH:MM\", not '25:00'",
        "rules[11].schedule.end: must be a local time of day \"HH:MM\", not '6'",
        "rules[12]: must be a mapping",
        "cleanroom_presets[0].clear_fraction: must satisfy 0 < clear_fraction < alert_fraction"
        " <= action_fraction <= 1",
        "cleanroom_presets[1].iso_class: is required",
        "extra: unknown key",
        "rules[9]: rule id 't' repeats rules[0]",
    ]


def test_semantic_errors_are_reported_once_fields_are_well_formed() -> None:
    assert errors({"rules": [limit(on_delay_s=-5)]}) == [
        "rules[0].on_delay_s: must be a finite number >= 0"
    ]
    stale = {"id": "s", "type": "stale", "scope": {"unit": "kWh"}, "max_age_s": 0}
    assert errors({"rules": [stale]}) == ["rules[0].max_age_s: must be positive"]
    assert errors({"rules": {"id": "x"}}) == ["rules: must be a list"]


def test_resolve_binds_scopes_to_plant_channels(plant: Any) -> None:
    bindings = resolve(parse_rules(yaml.safe_load(RULES)), plant)
    by_rule: dict[str, list[str]] = {}
    for b in bindings:
        by_rule.setdefault(b.rule.id, []).append(b.channel_id)
    assert by_rule["gas-at-night"] == ["steam-gas.volume"]
    assert len(by_rule["meters-offline"]) == 4  # every kWh channel
    assert len(by_rule["frozen-sensors"]) == 10  # every gauge in both cleanrooms
    (idle,) = [b for b in bindings if b.rule.id == "line-1-idle"]
    # No reference given: the channel's idle_with in the plant model is the line signal.
    assert (idle.reference_id, idle.reference_is_counter, idle.is_counter) == (
        "line-1-plc.units-made",
        True,
        True,
    )
    assert idle.tz == "Asia/Shanghai" and idle.unit == "kWh"
    assert {b.channel_id for b in bindings if b.rule.id.startswith("iso8-")} <= {
        f"cleanroom-b-env.{c}"
        for c in ("temperature", "humidity", "pressure-diff", "particles-0p5um", "particles-5um")
    }


def test_resolve_errors_name_the_rule(plant: Any) -> None:
    rules = parse_rules(
        {
            "rules": [
                limit(id="a", scope={"channel": "nowhere.x"}),
                limit(id="b", scope={"area": "attic", "unit": "Pa"}),
                limit(id="c", scope={"iso_class": 5, "unit": "Pa"}),
                {
                    "id": "d",
                    "type": "idle_consumption",
                    "scope": {"channel": "office-meter.energy-import"},
                    "alert_per_h": 5,
                    "clear_per_h": 3,
                },
                {
                    "id": "e",
                    "type": "idle_consumption",
                    "scope": {"channel": "steam-gas.volume"},
                    "alert_per_h": 5,
                    "clear_per_h": 3,
                    "reference": "line-9.units",
                },
                {
                    "id": "f",
                    "type": "baseline_deviation",
                    "scope": {"channel": "steam-gas.volume"},
                    "mode": "percent",
                    "alert": 30,
                    "clear": 10,
                },
            ]
        }
    )
    with pytest.raises(AlertConfigError) as e:
        resolve(rules, plant)
    assert [str(i) for i in e.value.issues] == [
        "rules[0].scope.channel: rule 'a': no channel 'nowhere.x' in the plant (meter.channel)",
        "rules[1].scope.area: rule 'b': no area 'attic' in the plant",
        "rules[2].scope: rule 'c' matches no channel of the plant",
        "rules[3]: rule 'd': office-meter.energy-import has no idle_with:"
        " give a reference or a schedule",
        "rules[4]: rule 'e': no reference channel 'line-9.units' in the plant (meter.channel)",
        "rules[5]: rule 'f': steam-gas.volume is a counter: a baseline watches a gauge"
        " (its power or flow)",
    ]


def test_rules_round_trip_through_their_yaml_form() -> None:
    rules = parse_rules(yaml.safe_load(RULES))
    dumped = [rule_to_dict(r) for r in rules]
    again = parse_rules(yaml.safe_load(yaml.safe_dump({"rules": dumped})))
    assert again == rules
    assert [r.description for r in again] == [r.description for r in rules]
    assert dumped[0]["scope"] == {"channel": "cleanroom-a-env.pressure-diff"}
    assert dumped[0]["severity"] == "high"


def test_scope_enums_parse() -> None:
    (r,) = parse_rules(
        {
            "rules": [
                limit(scope={"area_kind": "cleanroom", "iso_class": 7, "utility": "environment"})
            ]
        }
    )
    assert (r.scope.area_kind, r.scope.iso_class, r.scope.utility) == (
        AreaKind.CLEANROOM,
        7,
        Utility.ENVIRONMENT,
    )

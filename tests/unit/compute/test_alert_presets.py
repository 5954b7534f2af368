"""Cleanroom presets against DOMAIN.md's limits, written out by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from compute.alert_config import resolve
from compute.alert_eval import replay
from compute.alert_presets import (
    CleanroomPreset,
    PressureReference,
    cleanroom_rules,
    preset_issues,
)
from compute.alert_rules import AlertLevel, Limit, LimitDirection, Severity, rule_issues
from compute.cleanroom import Status, default_limits, iso_class_limit, status_of
from compute.plant import parse_plant
from tests.unit.compute.alert_helpers import T0, series

EXAMPLE = Path(__file__).parents[3] / "deploy" / "examples" / "medtech-plant.yaml"
HI, LO = LimitDirection.HIGH, LimitDirection.LOW

# DOMAIN.md, "Cleanroom limits": ISO 14644-1:2015 class limits in particles/m3.
DOMAIN_TABLE = {
    5: (3_520, 832, None),
    6: (35_200, 8_320, 293),
    7: (352_000, 83_200, 2_930),
    8: (3_520_000, 832_000, 29_300),
}


@pytest.mark.parametrize("iso_class", sorted(DOMAIN_TABLE))
def test_particle_limits_match_domain_md(iso_class: int) -> None:
    got = tuple(iso_class_limit(iso_class, d) for d in (0.5, 1.0, 5.0))
    assert got == DOMAIN_TABLE[iso_class]


def limits(p: CleanroomPreset) -> dict[str, Limit]:
    out = {}
    for r in cleanroom_rules(p):
        assert isinstance(r.condition, Limit)
        out[r.id] = r.condition
    return out


def approx_limit(x: Limit) -> Limit:
    """The levels rounded to 9 significant digits (0.7 x 352000 is 246399.99999999997)."""

    def r(v: float) -> float:
        return float(f"{v:.9g}")

    return Limit(
        direction=x.direction,
        alert=r(x.alert),
        action=None if x.action is None else r(x.action),
        clear=r(x.clear),
    )


# The dashboard's channels (compute.cleanroom.default_limits) by the preset rule that watches them.
DASHBOARD_CHANNELS = {
    "particles-0p5um-high": ("particles-0p5um", "particles/m3"),
    "particles-5um-high": ("particles-5um", "particles/m3"),
    "temperature-high": ("temperature", "degC"),
    "temperature-low": ("temperature", "degC"),
    "humidity-high": ("humidity", "%RH"),
    "humidity-low": ("humidity", "%RH"),
    "pressure-diff-low": ("pressure-diff", "Pa"),
}


@pytest.mark.parametrize("iso_class", [5, 6, 7, 8])
def test_the_dashboard_status_limits_are_the_preset_limits(iso_class: int) -> None:
    rules = limits(CleanroomPreset(iso_class=iso_class, id_prefix=""))
    assert set(rules) <= set(DASHBOARD_CHANNELS)
    for rid, (channel, unit) in DASHBOARD_CHANNELS.items():
        d = default_limits(channel, unit, iso_class)
        if rid not in rules:  # no ISO 5 limit at >=5 um: neither has one
            assert d is None and rid == "particles-5um-high" and iso_class == 5
            continue
        r = rules[rid]
        assert d is not None
        if r.direction is HI:
            assert (d.action_high, d.alert_high) == (r.action, r.alert), rid
        else:
            assert (d.action_low, d.alert_low) == (r.action, r.alert), rid
        # a value exactly on a level counts as beyond it on both
        assert status_of(r.action, d) is Status.RED and status_of(r.alert, d) is Status.AMBER


def test_iso_7_presets_match_domain_md() -> None:
    got = {k: approx_limit(v) for k, v in limits(CleanroomPreset(iso_class=7)).items()}
    # action = the regulatory limit; alert at 80 % of it (or of the half-range from the
    # middle of a GMP range); clear at 70 %.
    assert got == {
        "iso7-particles-0p5um-high": Limit(
            direction=HI, alert=281_600, action=352_000, clear=246_400
        ),
        "iso7-particles-5um-high": Limit(direction=HI, alert=2_344, action=2_930, clear=2_051),
        "iso7-temperature-high": Limit(direction=HI, alert=27.0, action=28.0, clear=26.5),
        "iso7-temperature-low": Limit(direction=LO, alert=19.0, action=18.0, clear=19.5),
        "iso7-humidity-high": Limit(direction=HI, alert=63.0, action=65.0, clear=62.0),
        "iso7-humidity-low": Limit(direction=LO, alert=47.0, action=45.0, clear=48.0),
        # "more than 10 Pa" to non-clean areas: 10 Pa itself is the action level.
        "iso7-pressure-diff-low": Limit(direction=LO, alert=12.0, action=10.0, clear=13.0),
    }


def test_iso_8_particle_action_levels_and_iso_5_has_no_5um_rule() -> None:
    got = limits(CleanroomPreset(iso_class=8))
    assert got["iso8-particles-0p5um-high"].action == 3_520_000
    assert got["iso8-particles-5um-high"].action == 29_300
    iso5 = limits(CleanroomPreset(iso_class=5))
    assert iso5["iso5-particles-0p5um-high"].action == 3_520
    assert "iso5-particles-5um-high" not in iso5  # DOMAIN.md: "(none)"
    assert len(iso5) == 6


def test_pressure_between_clean_rooms_of_different_classes_is_5_pa() -> None:
    p = CleanroomPreset(iso_class=8, dp_reference=PressureReference.OTHER_CLASS, id_prefix="b-")
    dp = limits(p)["b-pressure-diff-low"]
    assert (dp.action, dp.alert, dp.clear) == (5.0, 7.0, 8.0)


def test_action_levels_can_sit_inside_the_limit() -> None:
    p = CleanroomPreset(iso_class=7, alert_fraction=0.6, action_fraction=0.9, clear_fraction=0.5)
    t = limits(p)["iso7-temperature-high"]
    assert (t.alert, t.action, t.clear) == pytest.approx((26.0, 27.5, 25.5))
    assert preset_issues(CleanroomPreset(iso_class=7, clear_fraction=0.9)) != []


@pytest.mark.parametrize("iso_class", range(1, 10))
def test_every_preset_rule_is_valid(iso_class: int) -> None:
    for r in cleanroom_rules(CleanroomPreset(iso_class=iso_class)):
        assert rule_issues(r) == []
        assert r.severity is Severity.HIGH and r.action_severity is Severity.CRITICAL
        assert r.on_delay_s == 60 and r.scope.iso_class == iso_class and r.description


def test_presets_bind_to_the_rooms_of_their_class_and_fire_at_the_class_limit() -> None:
    plant = parse_plant(yaml.safe_load(EXAMPLE.read_text()))
    bindings = resolve(cleanroom_rules(CleanroomPreset(iso_class=7)), plant)
    assert {b.channel_id.split(".")[0] for b in bindings} == {"cleanroom-a-env"}  # the ISO 7 room
    assert len(bindings) == 7
    (b,) = [x for x in bindings if x.rule.id == "iso7-particles-0p5um-high"]
    counts = [60_000.0] * 60 + [360_000.0] * 90 + [60_000.0] * 30  # one reading per 10 s
    s = series(counts, step_s=10)
    dry = replay([b], {b.channel_id: s}, start_ns=T0, end_ns=int(s.ts_ns[-1]))
    (alert,) = dry.alerts
    assert alert.level is AlertLevel.ACTION and alert.severity is Severity.CRITICAL
    assert alert.raised_ts_ns == T0 + (600 + 60) * 10**9  # after the 60 s on-delay

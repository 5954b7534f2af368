"""The plant model validates and names every problem by its path."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from compute.plant import PlantConfigError, parse_plant


@pytest.fixture
def plant_data(example_plant_file: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(example_plant_file.read_text())
    return data


def _issues(data: dict[str, Any]) -> list[str]:
    with pytest.raises(PlantConfigError) as e:
        parse_plant(data)
    return [str(i) for i in e.value.issues]


def test_the_example_plant_is_valid_and_complete(plant_data: dict[str, Any]) -> None:
    plant = parse_plant(plant_data)
    protocols = {m.protocol for m in plant.meters}
    assert protocols == {"opcua", "modbus_tcp"}
    iso = sorted(a.iso_class for s in plant.sites for a in s.areas if a.kind == "cleanroom")
    assert iso == [7, 8]
    utilities = {r.channel.utility for r in plant.channels.values()}
    assert {"electricity", "natural_gas", "water", "recycled_water", "production"} <= utilities


def test_a_bad_register_type_names_its_path(plant_data: dict[str, Any]) -> None:
    data = copy.deepcopy(plant_data)
    data["meters"][7]["channels"][0]["register"]["type"] = "uint33"
    (issue,) = _issues(data)
    assert issue.startswith("meters[7].channels[0].register.type: ")


def test_every_problem_is_reported_at_once(plant_data: dict[str, Any]) -> None:
    data = copy.deepcopy(plant_data)
    data["meters"][0]["area"] = "nowhere"
    data["meters"][8]["channels"][0].pop("register")
    data["meters"][1]["parent"] = "ghost"
    issues = _issues(data)
    assert any(i.startswith("meters[0].area: unknown area 'nowhere'") for i in issues)
    assert any(i.startswith("meters[8].channels[0].register: ") for i in issues)
    assert any(i.startswith("meters[1].parent: ") for i in issues)


def test_unknown_timezone_and_extra_keys_are_rejected(plant_data: dict[str, Any]) -> None:
    data = copy.deepcopy(plant_data)
    data["sites"][0]["timezone"] = "Mars/Olympus"
    data["meters"][0]["colour"] = "red"
    issues = _issues(data)
    assert any(i.startswith("sites[0].timezone: ") and "Mars/Olympus" in i for i in issues)
    assert any(i.startswith("meters[0].colour: ") for i in issues)


def test_wrap_modulus_follows_register_width_and_scale(plant_data: dict[str, Any]) -> None:
    plant = parse_plant(plant_data)
    assert plant.channels["office-meter.energy-import"].wrap_modulus == pytest.approx(2**32 * 0.01)
    assert plant.channels["line-1-meter.power"].wrap_modulus == 0.0


def test_counter_rules_are_configured_on_counters_only(plant_data: dict[str, Any]) -> None:
    data = copy.deepcopy(plant_data)
    incomer = data["meters"][0]["channels"][0]
    incomer["max_rate_per_h"] = 4000
    incomer["replacements"] = [
        {"at": "2026-03-01T10:00:00+08:00", "old_final": 81234.5, "new_initial": 0.0}
    ]
    plant = parse_plant(data)
    (swap,) = plant.channels["main-incomer.energy-import"].channel.replacements
    assert swap.at.utcoffset() is not None and swap.old_final == 81234.5
    data["meters"][4]["channels"][0]["max_rate_per_h"] = 30  # a cleanroom temperature gauge
    (issue,) = _issues(data)
    assert issue.startswith("meters[4].channels[0].max_rate_per_h: only counters")
    del data["meters"][4]["channels"][0]["max_rate_per_h"]
    incomer["replacements"][0]["at"] = "2026-03-01T10:00:00"  # no UTC offset: ambiguous
    (issue,) = _issues(data)
    assert issue.startswith("meters[0].channels[0].replacements[0].at: ")


def test_idle_with_names_a_production_counter(plant_data: dict[str, Any]) -> None:
    data = copy.deepcopy(plant_data)
    data["meters"][6]["channels"][0]["idle_with"] = "line-1-plc.units-made"
    assert parse_plant(data).channels  # a line's meter against its production counter
    data["meters"][6]["channels"][0]["idle_with"] = "main-incomer.energy-import"
    (issue,) = _issues(data)
    assert issue.startswith("meters[6].channels[0].idle_with: ") and "production counter" in issue

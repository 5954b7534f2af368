"""Register-map profiles: fields are valid registers, decode golden words, and expand by name."""

from __future__ import annotations

from typing import Any

import pytest

from compute.modbus_config import Register, Table, register_issues
from compute.modbus_profiles import PROFILES
from compute.plant import ChannelKind, PlantConfigError, Utility
from ingest.registers import decode
from tests.plants import gauge, meter, one_site


def _plant(profile: str, channels: list[dict[str, Any]], **extra: Any) -> Any:
    return one_site([meter("m", "modbus_tcp", "127.0.0.1:502", channels, profile=profile, **extra)])


def _issues(profile: str, channels: list[dict[str, Any]], **extra: Any) -> list[str]:
    with pytest.raises(PlantConfigError) as e:
        _plant(profile, channels, **extra)
    return [str(i) for i in e.value.issues]


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_every_field_is_a_valid_register_in_either_numbering(name: str) -> None:
    profile = PROFILES[name]
    assert profile.name == name and profile.description and profile.fields
    for field, spec in profile.fields.items():
        ChannelKind(spec.kind)
        assert spec.utility is None or Utility(spec.utility)
        for base in (0, 1):
            reg = Register.model_validate(profile.register(field, base))
            assert register_issues(reg, base) == [], (name, field)
            assert reg.address - base == spec.address - profile.address_base


# Words as the meter returns them, in address order, and the engineering value they mean.
GOLDEN = [
    ("eastron-sdm630", "l1_voltage", [0x4366, 0x8000], 230.5),
    ("eastron-sdm630", "total_power_factor", [0xBF00, 0x0000], -0.5),
    ("eastron-sdm630", "frequency", [0x4248, 0x0000], 50.0),
    ("eastron-sdm630", "import_active_energy", [0x4640, 0xE600], 12345.5),
    ("schneider-pm5000", "current_a", [0x4144, 0x0000], 12.25),
    ("schneider-pm5000", "active_energy_delivered", [0x447A, 0x0000], 1000.0),
    ("siemens-pac3200", "voltage_an", [0x4366, 0x0000], 230.0),
    ("siemens-pac3200", "active_energy_import_t1", [0x419D, 0x6F34, 0x5400, 0x0000], 123456789.0),
    ("pulse-counter", "count", [0x0001, 0x1170], 70000.0),
    ("cleanroom-thp", "temperature", [0x00D7], 21.5),
    ("cleanroom-thp", "humidity", [0x01C2], 45.0),
    ("cleanroom-thp", "differential_pressure", [0xFF83], -12.5),
    ("particle-counter", "particles_0_5um", [0x0001, 0x86A0], 100000.0),
    ("particle-counter", "particles_5um", [0x0000, 0x0DC0], 3520.0),
]


@pytest.mark.parametrize(("profile", "field", "words", "value"), GOLDEN)
def test_golden_words_decode_through_the_expanded_channel(
    profile: str, field: str, words: list[int], value: float
) -> None:
    channel = {"id": "c", "field": field, "utility": "electricity"}
    reg = _plant(profile, [channel]).channels["m.c"].channel.modbus
    assert reg is not None
    assert decode(words, reg) == pytest.approx(value, rel=1e-9)


def test_addresses_convert_to_the_meters_own_numbering() -> None:
    ch = [
        {"id": "i", "field": "current_a"},
        gauge("raw", register={"address": 1, "type": "uint16"}),
    ]
    zero = _plant("schneider-pm5000", ch).meters[0].channels[0].modbus
    one = _plant("schneider-pm5000", ch, modbus={"address_base": 1}).meters[0].channels[0].modbus
    assert zero is not None and zero.address == 2999 and zero.table is Table.HOLDING
    assert one is not None and one.address == 3000
    sdm = _plant("eastron-sdm630", [{"id": "e", "field": "total_active_energy"}])
    reg = sdm.channels["m.e"].channel.modbus
    assert reg is not None and reg.address == 0x156 and reg.table is Table.INPUT


def test_a_profile_fills_unit_kind_and_utility_and_the_channel_may_override() -> None:
    channels = [
        {"id": "energy", "field": "import_active_energy"},
        {"id": "volts", "field": "l1_voltage", "unit": "volt", "utility": "production"},
    ]
    plant = _plant("eastron-sdm630", channels)
    energy, volts = (plant.channels[f"m.{c}"].channel for c in ("energy", "volts"))
    assert (energy.unit, energy.kind, energy.utility) == ("kWh", "counter", "electricity")
    assert energy.field == "import_active_energy" and plant.meters[0].profile == "eastron-sdm630"
    assert (volts.unit, volts.kind, volts.utility) == ("volt", "gauge", "production")


def test_register_keys_beside_a_field_override_it() -> None:
    ch = {
        "id": "water",
        "field": "count",
        "unit": "m3",
        "utility": "water",
        "register": {"scale": 0.01},
    }
    ref = _plant("pulse-counter", [ch]).channels["m.water"]
    reg = ref.channel.modbus
    assert reg is not None and reg.scale == 0.01 and reg.address == 0
    assert decode([0x0001, 0x1170], reg) == pytest.approx(700.0)
    assert ref.wrap_modulus == pytest.approx(2.0**32 * 0.01)


def _first_then_unfilled(issues: list[str], channel: str) -> str:
    """The expansion's issue; then the keys the field would have filled, reported missing."""
    rest = sorted(i.split(":")[0] for i in issues[1:])
    assert rest == [f"{channel}.{k}" for k in ("kind", "unit", "utility")], issues
    return issues[0]


def test_an_unknown_profile_lists_the_known_ones() -> None:
    issues = _issues("eastron-sdm999", [{"id": "c", "field": "frequency"}])
    issue = _first_then_unfilled(issues, "meters[0].channels[0]")
    assert issue.startswith("meters[0].profile: unknown profile 'eastron-sdm999'; known: ")
    assert all(name in issue for name in PROFILES)


def test_an_unknown_field_lists_the_profiles_fields() -> None:
    channels = [{"id": "a", "field": "frequency"}, {"id": "b", "field": "kvarh"}]
    issue = _first_then_unfilled(_issues("eastron-sdm630", channels), "meters[0].channels[1]")
    assert issue.startswith("meters[0].channels[1].field: unknown field 'kvarh' of profile")
    assert "import_active_energy" in issue


def test_a_field_needs_a_profile_and_a_pulse_counter_its_utility() -> None:
    m = meter("m", "modbus_tcp", "127.0.0.1:502", [{"id": "c", "field": "count"}])
    with pytest.raises(PlantConfigError) as e:
        one_site([m])
    issue = _first_then_unfilled([str(i) for i in e.value.issues], "meters[0].channels[0]")
    assert issue == "meters[0].channels[0].field: the meter names no profile"
    (issue,) = _issues("pulse-counter", [{"id": "c", "field": "count"}])
    assert issue.startswith("meters[0].channels[0].utility: ")


def test_an_override_is_validated_at_the_register_path() -> None:
    (issue,) = _issues(
        "pulse-counter",
        [{"id": "c", "field": "count", "utility": "water", "register": {"scale": 0}}],
    )
    assert issue.startswith("meters[0].channels[0].register.scale: ")


def test_only_modbus_meters_take_a_profile() -> None:
    ch = gauge("c", node_id="ns=2;s=c")
    m = meter("o", "opcua", "opc.tcp://127.0.0.1:4840/", [ch], profile="eastron-sdm630")
    with pytest.raises(PlantConfigError) as e:
        one_site([m])
    assert [str(i) for i in e.value.issues] == ["meters[0].profile: only Modbus meters"]

"""Modbus configuration: register fields and per-meter options validate, naming each path."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from compute.modbus_config import ByteOrder, Parity, RegisterType, Table
from compute.plant import PlantConfigError, Protocol, parse_plant
from tests.plants import gauge, meter


def _meter(mid: str, protocol: str, endpoint: str, regs: list[dict[str, Any]], **kw: Any) -> Any:
    return meter(
        mid, protocol, endpoint, [gauge(f"c{i}", register=r) for i, r in enumerate(regs)], **kw
    )


def _plant(*meters: dict[str, Any]) -> dict[str, Any]:
    return {
        "sites": [
            {"id": "s", "name": "S", "timezone": "UTC", "areas": [{"id": "u", "kind": "utility"}]}
        ],
        "meters": list(meters),
    }


def _issues(data: dict[str, Any]) -> list[str]:
    with pytest.raises(PlantConfigError) as e:
        parse_plant(data)
    return [str(i) for i in e.value.issues]


def test_every_type_order_and_table_parses_with_defaults() -> None:
    regs: list[dict[str, Any]] = [
        {"address": 2 * i, "type": t, "order": o}
        for i, (t, o) in enumerate(
            (t, o)
            for t in RegisterType
            if t not in (RegisterType.BIT, RegisterType.STRING)
            for o in ByteOrder
        )
    ]
    regs += [
        {"address": 200, "type": "bit", "bit": 3, "table": "input", "scale": 2, "offset": -1},
        {"address": 0, "type": "bit", "table": "coil"},
        {"address": 0, "type": "bit", "table": "discrete"},
    ]
    plant = parse_plant(_plant(_meter("m", "modbus_rtu_tcp", "127.0.0.1:502", regs)))
    meter = plant.meters[0]
    assert meter.protocol is Protocol.MODBUS_RTU_TCP
    assert meter.modbus.max_registers_per_read == 125 and meter.modbus.max_bits_per_read == 2000
    assert meter.modbus.timeout_s > 0 and meter.modbus.address_base == 0
    first = meter.channels[0].modbus
    assert first is not None and first.table is Table.HOLDING and first.offset == 0.0
    assert [c.modbus.words for c in meter.channels[-3:] if c.modbus] == [1, 1, 1]


def test_a_serial_meter_takes_its_device_path_and_line_settings() -> None:
    line = {"baudrate": 9600, "parity": "even", "stopbits": 1, "bytesize": 8}
    plant = parse_plant(
        _plant(
            _meter(
                "a", "modbus_rtu", "/dev/ttyUSB0", [{"address": 0, "type": "uint16"}], modbus=line
            ),
            _meter(
                "b",
                "modbus_rtu",
                "/dev/ttyUSB0",
                [{"address": 0, "type": "uint16"}],
                unit_id=2,
                modbus=line,
            ),
        )
    )
    assert plant.meters[1].modbus.parity is Parity.EVEN and Parity.EVEN.letter == "E"


def test_meters_on_one_bus_must_agree_on_its_line_settings() -> None:
    reg = [{"address": 0, "type": "uint16"}]
    issues = _issues(
        _plant(
            _meter("a", "modbus_rtu", "/dev/ttyS1", reg, modbus={"baudrate": 9600}),
            _meter("b", "modbus_rtu", "/dev/ttyS1", reg, modbus={"baudrate": 19200}, unit_id=2),
        )
    )
    assert issues == ["meters[1].modbus: serial settings differ from meters[0] on the same bus"]


@pytest.mark.parametrize(
    ("reg", "path"),
    [
        ({"address": 0, "type": "uint32", "word_order": "big"}, "register.word_order"),
        ({"address": 0, "type": "uint32", "order": "ADCB"}, "register.order"),
        ({"address": 0, "type": "uint128"}, "register.type"),
        ({"address": 0, "type": "uint16", "table": "eeprom"}, "register.table"),
        ({"address": 0, "type": "uint16", "table": "coil"}, "register.type"),
        ({"address": 0, "type": "bit", "table": "coil", "bit": 2}, "register.bit"),
        ({"address": 0, "type": "bit"}, "register.bit"),
        ({"address": 0, "type": "bit", "bit": 16}, "register.bit"),
        ({"address": 0, "type": "int16", "bit": 1}, "register.bit"),
        ({"address": 0, "type": "uint16", "length": 4}, "register.length"),
        ({"address": 0, "type": "string", "length": 4}, "register.type"),
        ({"address": 65535, "type": "uint32"}, "register.address"),
        ({"address": 0, "type": "uint16", "scale": 0}, "register.scale"),
    ],
)
def test_a_bad_register_names_its_path(reg: dict[str, Any], path: str) -> None:
    issues = _issues(_plant(_meter("m", "modbus_tcp", "127.0.0.1:502", [reg])))
    assert any(i.startswith(f"meters[0].channels[0].{path}: ") for i in issues), issues


def test_strings_are_rejected_as_channels_with_the_reason() -> None:
    reg = {"address": 0, "type": "string", "length": 8}
    (issue,) = _issues(_plant(_meter("m", "modbus_tcp", "127.0.0.1:502", [reg])))
    assert "readings carry numbers only" in issue


def test_addresses_count_from_the_address_base() -> None:
    reg = [{"address": 0, "type": "uint16"}]
    (issue,) = _issues(
        _plant(_meter("m", "modbus_tcp", "127.0.0.1:502", reg, modbus={"address_base": 1}))
    )
    assert issue.startswith("meters[0].channels[0].register.address: below the meter's")


@pytest.mark.parametrize(
    ("options", "path"),
    [
        ({"timeout_s": 0}, "modbus.timeout_s"),
        ({"max_registers_per_read": 126}, "modbus.max_registers_per_read"),
        ({"max_bits_per_read": 2001}, "modbus.max_bits_per_read"),
        ({"address_base": 2}, "modbus.address_base"),
        ({"parity": "mark"}, "modbus.parity"),
        ({"stopbits": 3}, "modbus.stopbits"),
        ({"retries": -1}, "modbus.retries"),
        ({"word_swap": True}, "modbus.word_swap"),
    ],
)
def test_bad_meter_options_name_their_path(options: dict[str, Any], path: str) -> None:
    meter = _meter("m", "modbus_tcp", "127.0.0.1:502", [{"address": 0, "type": "uint16"}])
    issues = _issues(_plant({**meter, "modbus": options}))
    assert any(i.startswith(f"meters[0].{path}: ") for i in issues), issues


def test_endpoints_follow_the_transport() -> None:
    reg = [{"address": 0, "type": "uint16"}]
    issues = _issues(_plant(_meter("m", "modbus_rtu_tcp", "/dev/ttyS0", reg)))
    assert issues == ["meters[0].endpoint: a Modbus TCP endpoint is host:port"]


def test_modbus_options_belong_to_modbus_meters_only() -> None:
    meter = {
        "id": "o",
        "site": "s",
        "area": "u",
        "protocol": "opcua",
        "endpoint": "opc.tcp://127.0.0.1:4840/",
        "modbus": {"timeout_s": 1},
        "channels": [
            {
                "id": "c",
                "node_id": "ns=2;s=c",
                "unit": "x",
                "kind": "gauge",
                "utility": "environment",
            }
        ],
    }
    assert _issues(_plant(meter)) == ["meters[0].modbus: only Modbus meters"]


def test_a_64_bit_counter_wraps_at_its_width_and_a_float_counter_never() -> None:
    data = _plant(
        _meter("m", "modbus_tcp", "127.0.0.1:502", [{"address": 0, "type": "uint64", "scale": 0.5}])
    )
    data["meters"][0]["channels"][0]["kind"] = "counter"
    plant = parse_plant(data)
    assert plant.channels["m.c0"].wrap_modulus == 2.0**64 * 0.5
    floating = copy.deepcopy(data)
    floating["meters"][0]["channels"][0]["register"]["type"] = "float64"
    floating["meters"][0]["channels"][0]["wrap_bits"] = 32
    (issue,) = _issues(floating)
    assert issue == "meters[0].channels[0].wrap_bits: a floating-point counter does not wrap"

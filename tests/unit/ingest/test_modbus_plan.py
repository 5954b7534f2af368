"""The Modbus request planner against golden plans: coalescing, gaps, size limits and quirks."""

from __future__ import annotations

import pytest

from compute.modbus_config import Table
from ingest.modbus_plan import Field, Limits, Read, plan, plan_channels
from tests.plants import gauge, meter, one_site

H, IN, C, D = Table.HOLDING, Table.INPUT, Table.COIL, Table.DISCRETE


def _f(key: str, address: int, count: int = 1, table: Table = H) -> Field:
    return Field(key=key, table=table, address=address, count=count)


def _r(address: int, count: int, *keys: str, table: Table = H) -> Read:
    return Read(table=table, address=address, count=count, keys=keys)


def test_contiguous_fields_make_one_read() -> None:
    fields = [_f("a", 0, 2), _f("b", 2, 2), _f("c", 4)]
    assert plan(fields, Limits()) == [_r(0, 5, "a", "b", "c")]


def test_fields_are_sorted_by_address_whatever_their_order() -> None:
    fields = [_f("c", 4), _f("a", 0, 2), _f("b", 2, 2)]
    assert plan(fields, Limits()) == [_r(0, 5, "a", "b", "c")]


def test_gaps_split_reads_unless_bridged() -> None:
    fields = [_f("a", 0, 2), _f("b", 5, 2), _f("c", 20)]
    assert plan(fields, Limits()) == [_r(0, 2, "a"), _r(5, 2, "b"), _r(20, 1, "c")]
    assert plan(fields, Limits(max_gap_registers=3)) == [_r(0, 7, "a", "b"), _r(20, 1, "c")]
    assert plan(fields, Limits(max_gap_registers=13)) == [_r(0, 21, "a", "b", "c")]


def test_overlapping_fields_share_a_read() -> None:
    fields = [_f("count", 0, 2), _f("energy", 0, 2), _f("low-word", 1)]
    assert plan(fields, Limits()) == [_r(0, 2, "count", "energy", "low-word")]


def test_reads_stay_within_the_size_limit_and_never_split_a_field() -> None:
    fields = [_f(f"f{i}", 2 * i, 2) for i in range(70)]  # 140 registers of uint32s
    reads = plan(fields, Limits())
    assert [(r.address, r.count) for r in reads] == [(0, 124), (124, 16)]
    assert reads[0].keys == tuple(f"f{i}" for i in range(62))
    assert [(r.address, r.count) for r in plan(fields, Limits(max_registers=5))] == [
        (4 * i, 4) for i in range(35)
    ]


def test_a_field_wider_than_a_read_is_split() -> None:
    fields = [_f("serial", 10, 8), _f("next", 18)]
    assert plan(fields, Limits(max_registers=3)) == [
        _r(10, 3, "serial"),
        _r(13, 3, "serial"),
        _r(16, 2, "serial"),
        _r(18, 1, "next"),
    ]


def test_one_register_per_request() -> None:
    fields = [_f("a", 0, 2), _f("b", 2), _f("c", 0, 1, C), _f("d", 1, 1, C)]
    assert plan(fields, Limits(one_register_per_request=True)) == [
        _r(0, 1, "c", table=C),
        _r(1, 1, "d", table=C),
        _r(0, 1, "a"),
        _r(1, 1, "a"),
        _r(2, 1, "b"),
    ]


def test_tables_are_planned_apart_in_function_code_order() -> None:
    fields = [_f("i", 0, 2, IN), _f("h", 0, 2, H), _f("d", 3, 1, D), _f("c", 7, 1, C)]
    reads = plan(fields, Limits())
    assert reads == [
        _r(7, 1, "c", table=C),
        _r(3, 1, "d", table=D),
        _r(0, 2, "h"),
        _r(0, 2, "i", table=IN),
    ]
    assert [r.function_code for r in reads] == [1, 2, 3, 4]


def test_bits_read_up_to_2000_and_bridge_16_bits_per_register_of_gap() -> None:
    coils = [_f(f"c{i}", i * 10, 1, C) for i in range(300)]  # coils 0..2990
    reads = plan(coils, Limits())
    assert [(r.address, r.count) for r in reads] == [(i * 10, 1) for i in range(300)]
    bridged = plan(coils, Limits(max_gap_registers=1))  # a gap of 9 bits fits in 16
    assert [(r.address, r.count) for r in bridged] == [(0, 1991), (2000, 991)]
    assert plan(coils, Limits(max_gap_registers=1, max_bits=100))[0].count == 91


def test_a_plant_meter_plans_from_its_channels_with_its_address_base() -> None:
    channels = [
        gauge("v", register={"address": 1, "type": "float32"}),
        gauge("i", register={"address": 5, "type": "float32"}),
        gauge("alarm", register={"address": 10, "type": "bit", "table": "coil"}),
        gauge("run", register={"address": 11, "type": "bit", "table": "coil"}),
    ]
    modbus = {"address_base": 1, "max_gap_registers": 2}
    plant = one_site([meter("m", "modbus_tcp", "127.0.0.1:502", channels, modbus=modbus)])
    refs = list(plant.channels_of("m"))
    assert plan_channels(refs) == [
        _r(9, 2, "m.alarm", "m.run", table=C),
        _r(0, 6, "m.v", "m.i"),
    ]


@pytest.mark.parametrize("limits", [Limits(), Limits(max_gap_registers=4), Limits(max_registers=2)])
def test_every_field_is_covered_by_the_reads_that_name_it(limits: Limits) -> None:
    fields = [_f("a", 0, 4), _f("b", 3, 2), _f("c", 9), _f("d", 1, 1, IN), _f("e", 40, 2)]
    reads = plan(fields, limits)
    for f in fields:
        own = [r for r in reads if f.key in r.keys]
        assert all(r.table is f.table for r in own)
        covered = {a for r in own for a in range(r.address, r.address + r.count)}
        assert set(range(f.address, f.address + f.count)) <= covered, f
    assert all(r.count <= limits.size(r.table) for r in reads)

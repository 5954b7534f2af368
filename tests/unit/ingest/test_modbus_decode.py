"""Decoding a whole read at once gives exactly what the per-field codec gives."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from compute.modbus_config import ByteOrder, RegisterType
from ingest import registers
from ingest.modbus_decode import read_decoder
from ingest.modbus_plan import plan_channels
from tests.plants import gauge, meter, one_site

NUMERIC = [t for t in RegisterType if t not in (RegisterType.BIT, RegisterType.STRING)]
WIDTH = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2}


@st.composite
def fields_and_words(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[int]]:
    specs: list[dict[str, Any]] = []
    address = 0
    for _i in range(draw(st.integers(1, 12))):
        type_ = draw(st.sampled_from(NUMERIC))
        spec: dict[str, Any] = {
            "address": address,
            "type": type_.value,
            "order": draw(st.sampled_from(list(ByteOrder))).value,
            "scale": draw(st.sampled_from([1.0, 0.1, 0.001, 10.0])),
            "offset": draw(st.sampled_from([0.0, -40.0, 2.5])),
        }
        if draw(st.booleans()):
            spec["type"], spec["table"], spec["bit"] = "bit", "holding", draw(st.integers(0, 15))
            del spec["order"], spec["scale"], spec["offset"]
        specs.append(spec)
        address += {"int64": 4, "uint64": 4, "float64": 4}.get(
            spec["type"], WIDTH.get(spec["type"], 1)
        )
        address += draw(st.integers(0, 2))  # gaps the plan bridges
    words = draw(st.lists(st.integers(0, 0xFFFF), min_size=address, max_size=address))
    return specs, words


@settings(max_examples=300, deadline=None)
@given(fields_and_words())
def test_read_decoder_agrees_with_the_field_codec(
    case: tuple[list[dict[str, Any]], list[int]],
) -> None:
    specs, words = case
    channels = [gauge(f"f{i}", register=s) for i, s in enumerate(specs)]
    modbus = {"max_gap_registers": 2}
    plant = one_site([meter("m", "modbus_tcp", "127.0.0.1:502", channels, modbus=modbus)])
    refs = list(plant.channels.values())
    by_key = {r.key: r for r in refs}
    for read in plan_channels(refs):
        got = read_decoder(read, by_key).decode(words[read.address : read.address + read.count])
        for key in read.keys:
            reg = by_key[key].channel.modbus
            assert reg is not None
            want = registers.decode(words[reg.address : reg.address + reg.words], reg)
            assert (math.isnan(want) and math.isnan(got[key])) or got[key] == want, (key, reg)

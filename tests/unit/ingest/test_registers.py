"""Register decoding against golden vectors, and encode/decode as inverses."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from compute.plant import Register, RegisterType, WordOrder
from ingest import registers


@pytest.mark.parametrize(
    ("words", "type_", "order", "scale", "value"),
    [
        ([0x1234, 0x5678], "uint32", "big", 1.0, 0x12345678),
        ([0x5678, 0x1234], "uint32", "little", 1.0, 0x12345678),
        ([0xFFFF, 0xFFFF], "uint32", "big", 0.01, 42949672.95),
        ([0x4049, 0x0FDB], "float32", "big", 1.0, 3.1415927410125732),
        ([0x0FDB, 0x4049], "float32", "little", 1.0, 3.1415927410125732),
        ([0xFFFE], "int16", "big", 0.1, -0.2),
        ([0xFFFE], "uint16", "big", 1.0, 65534),
        ([0xFFFF, 0xFFFE], "int32", "big", 1.0, -2),
    ],
)
def test_golden_vectors(
    words: list[int], type_: str, order: str, scale: float, value: float
) -> None:
    reg = Register(address=0, type=RegisterType(type_), word_order=WordOrder(order), scale=scale)
    assert registers.decode(words, reg) == pytest.approx(value)


def test_wrong_word_count_is_an_error() -> None:
    with pytest.raises(ValueError, match="needs 2 registers"):
        registers.decode([1], Register(address=0, type=RegisterType.UINT32))


@given(st.integers(0, 2**32 - 1), st.sampled_from(list(WordOrder)))
def test_uint32_round_trip(raw: int, order: WordOrder) -> None:
    reg = Register(address=0, type=RegisterType.UINT32, word_order=order, scale=0.01)
    assert round(registers.decode(registers.encode(raw * 0.01, reg), reg) / 0.01) == raw


def test_counters_wrap_at_the_register_width() -> None:
    reg = Register(address=0, type=RegisterType.UINT32, scale=0.01)
    assert registers.decode(registers.encode(42949672.96 + 0.5, reg), reg) == pytest.approx(0.5)

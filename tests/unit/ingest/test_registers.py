"""Register decoding against golden vectors for every type in every byte order; encode and decode
as inverses; scale and offset, bits and strings.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from compute.modbus_config import ByteOrder, Register, RegisterType, Table
from ingest import registers


def _reg(type_: str, order: str = "ABCD", **kw: Any) -> Register:
    return Register(address=0, type=RegisterType(type_), order=ByteOrder(order), **kw)


# Registers as they arrive, in address order, for each type and order, and the raw value.
GOLDEN: list[tuple[str, str, list[int], float]] = [
    # 16 bits: bytes A B; a byte swap (BADC, DCBA) reverses them, a word swap changes nothing.
    ("uint16", "ABCD", [0x1234], 0x1234),
    ("uint16", "CDAB", [0x1234], 0x1234),
    ("uint16", "BADC", [0x3412], 0x1234),
    ("uint16", "DCBA", [0x3412], 0x1234),
    ("int16", "ABCD", [0xFFFE], -2),
    ("int16", "CDAB", [0xFFFE], -2),
    ("int16", "BADC", [0xFEFF], -2),
    ("int16", "DCBA", [0xFEFF], -2),
    # 32 bits: 0x11223344 is A=11 B=22 C=33 D=44.
    ("uint32", "ABCD", [0x1122, 0x3344], 0x11223344),
    ("uint32", "DCBA", [0x4433, 0x2211], 0x11223344),
    ("uint32", "BADC", [0x2211, 0x4433], 0x11223344),
    ("uint32", "CDAB", [0x3344, 0x1122], 0x11223344),
    ("int32", "ABCD", [0xFEDC, 0xBA98], -19088744),  # 0xFEDCBA98
    ("int32", "DCBA", [0x98BA, 0xDCFE], -19088744),
    ("int32", "BADC", [0xDCFE, 0x98BA], -19088744),
    ("int32", "CDAB", [0xBA98, 0xFEDC], -19088744),
    ("float32", "ABCD", [0x4049, 0x0FDB], 3.1415927410125732),  # 40 49 0F DB
    ("float32", "DCBA", [0xDB0F, 0x4940], 3.1415927410125732),
    ("float32", "BADC", [0x4940, 0xDB0F], 3.1415927410125732),
    ("float32", "CDAB", [0x0FDB, 0x4049], 3.1415927410125732),
    # 64 bits: 0x0102030405060708.
    ("uint64", "ABCD", [0x0102, 0x0304, 0x0506, 0x0708], 0x0102030405060708),
    ("uint64", "DCBA", [0x0807, 0x0605, 0x0403, 0x0201], 0x0102030405060708),
    ("uint64", "BADC", [0x0201, 0x0403, 0x0605, 0x0807], 0x0102030405060708),
    ("uint64", "CDAB", [0x0708, 0x0506, 0x0304, 0x0102], 0x0102030405060708),
    ("int64", "ABCD", [0xFFFF, 0xFFFF, 0xFFFF, 0xFF85], -123),  # ...FF FF 85
    ("int64", "DCBA", [0x85FF, 0xFFFF, 0xFFFF, 0xFFFF], -123),
    ("int64", "BADC", [0xFFFF, 0xFFFF, 0xFFFF, 0x85FF], -123),
    ("int64", "CDAB", [0xFF85, 0xFFFF, 0xFFFF, 0xFFFF], -123),
    ("float64", "ABCD", [0x4009, 0x21FB, 0x5444, 0x2D18], math.pi),  # 40 09 21 FB 54 44 2D 18
    ("float64", "DCBA", [0x182D, 0x4454, 0xFB21, 0x0940], math.pi),
    ("float64", "BADC", [0x0940, 0xFB21, 0x4454, 0x182D], math.pi),
    ("float64", "CDAB", [0x2D18, 0x5444, 0x21FB, 0x4009], math.pi),
]


@pytest.mark.parametrize(("type_", "order", "words", "raw"), GOLDEN)
def test_golden_vectors(type_: str, order: str, words: list[int], raw: float) -> None:
    reg = _reg(type_, order)
    assert registers.raw_value(words, reg) == raw
    assert registers.decode(words, reg) == float(raw)
    if float(raw) == raw:  # 0x0102030405060708 is past float64's 53 exact bits
        assert registers.encode(float(raw), reg) == words


def test_the_golden_vectors_cover_every_numeric_type_in_every_order() -> None:
    numeric = {t for t in RegisterType if t not in (RegisterType.BIT, RegisterType.STRING)}
    assert {(t, o) for t, o, _, _ in GOLDEN} == {
        (t.value, o.value) for t in numeric for o in ByteOrder
    }


@pytest.mark.parametrize(
    ("type_", "words", "scale", "offset", "value"),
    [
        ("uint32", [0xFFFF, 0xFFFF], 0.01, 0.0, 42949672.95),
        ("int16", [0xFFFE], 0.1, 0.0, -0.2),
        ("int16", [0x00FA], 0.1, -40.0, -15.0),  # 250 * 0.1 - 40
        ("uint16", [0x0000], 0.5, 273.15, 273.15),
        ("float32", [0x4049, 0x0FDB], 2.0, 1.0, 2 * 3.1415927410125732 + 1),
        ("int64", [0xFFFF, 0xFFFF, 0xFFFF, 0xFF85], 0.001, 0.0, -0.123),
    ],
)
def test_value_is_raw_times_scale_plus_offset(
    type_: str, words: list[int], scale: float, offset: float, value: float
) -> None:
    reg = _reg(type_, scale=scale, offset=offset)
    assert registers.decode(words, reg) == pytest.approx(value)
    assert registers.decode(registers.encode(value, reg), reg) == pytest.approx(value)


@pytest.mark.parametrize(
    ("order", "word", "bit", "value"),
    [
        ("ABCD", 0x0001, 0, 1.0),
        ("ABCD", 0x0001, 1, 0.0),
        ("ABCD", 0x8000, 15, 1.0),
        ("ABCD", 0x0100, 8, 1.0),
        ("BADC", 0x0100, 0, 1.0),  # bytes swapped: bit 0 arrives in the high byte
        ("BADC", 0x0001, 8, 1.0),
        ("DCBA", 0x0080, 15, 1.0),
        ("CDAB", 0x0080, 7, 1.0),
    ],
)
def test_a_bit_of_a_register(order: str, word: int, bit: int, value: float) -> None:
    reg = _reg("bit", order, bit=bit)
    assert registers.decode([word], reg) == value
    assert registers.bit_mask(reg) & word == (word if value else 0)
    assert registers.encode(value, reg) == ([registers.bit_mask(reg)] if value else [0])


@pytest.mark.parametrize("table", [Table.COIL, Table.DISCRETE])
def test_coils_and_discrete_inputs_are_zero_or_one(table: Table) -> None:
    reg = _reg("bit", table=table)
    assert [registers.decode([b], reg) for b in (0, 1)] == [0.0, 1.0]
    assert registers.encode(1.0, reg) == [1] and registers.encode(0.0, reg) == [0]


@pytest.mark.parametrize(
    ("order", "words", "text"),
    [
        ("ABCD", [0x504D, 0x2D33, 0x3030, 0x0000], "PM-300"),  # 'P' 'M' '-' '3' '0' '0' NUL NUL
        ("BADC", [0x4D50, 0x332D, 0x3030, 0x0000], "PM-300"),  # each register's bytes swapped
        ("ABCD", [0x4142, 0x2020, 0x2000, 0x0000], "AB"),  # trailing spaces and NULs go
        ("ABCD", [0x2041, 0x2042, 0x0000], " A B"),  # inner and leading spaces stay
        ("ABCD", [0xC3A9, 0x7465], "éte"),  # UTF-8: c3 a9 't' 'e'
        ("CDAB", [0x3030, 0x2D33, 0x504D], "PM-300"),  # the register order reversed
    ],
)
def test_string_golden_vectors(order: str, words: list[int], text: str) -> None:
    reg = _reg("string", order, length=len(words))
    assert registers.decode_text(words, reg) == text
    assert registers.decode_text(registers.encode_text(text, reg), reg) == text


def test_a_string_has_no_numeric_value_and_text_must_fit() -> None:
    reg = _reg("string", length=2)
    with pytest.raises(ValueError, match="decode_text"):
        registers.decode([0x4142, 0x4344], reg)
    with pytest.raises(ValueError, match="do not fit"):
        registers.encode_text("ABCDE", reg)
    with pytest.raises(ValueError, match="not text"):
        registers.decode_text([1], _reg("uint16"))


def test_wrong_word_count_and_out_of_range_words_are_errors() -> None:
    with pytest.raises(ValueError, match="needs 2 registers"):
        registers.decode([1], _reg("uint32"))
    with pytest.raises(ValueError, match="16 bits"):
        registers.decode([0x10000], _reg("uint16"))


@given(st.integers(0, 2**32 - 1), st.sampled_from(list(ByteOrder)))
def test_uint32_round_trip(raw: int, order: ByteOrder) -> None:
    reg = _reg("uint32", order, scale=0.01)
    assert round(registers.decode(registers.encode(raw * 0.01, reg), reg) / 0.01) == raw


@given(
    st.sampled_from(["int16", "int32", "int64", "uint16", "uint32", "uint64"]),
    st.integers(-(2**53), 2**53),  # exact as a float
    st.sampled_from(list(ByteOrder)),
)
def test_integers_wrap_to_their_width(type_: str, n: int, order: ByteOrder) -> None:
    reg = _reg(type_, order)
    bits = 16 * reg.words
    wrapped = n % (1 << bits)
    if not type_.startswith("u") and wrapped >= 1 << (bits - 1):
        wrapped -= 1 << bits
    assert registers.raw_value(registers.encode(float(n), reg), reg) == wrapped


@given(st.floats(allow_nan=False, allow_infinity=False, width=64), st.sampled_from(list(ByteOrder)))
def test_float64_round_trips_exactly(value: float, order: ByteOrder) -> None:
    reg = _reg("float64", order)
    assert registers.decode(registers.encode(value, reg), reg) == value


def test_counters_wrap_at_the_register_width() -> None:
    reg = _reg("uint32", scale=0.01)
    assert registers.decode(registers.encode(42949672.96 + 0.5, reg), reg) == pytest.approx(0.5)

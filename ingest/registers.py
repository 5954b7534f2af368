"""Pure Modbus register codec: one field's registers (or bit) to its value and back.

Per field: type, byte order ABCD / DCBA / BADC / CDAB, value = raw * scale + offset. No I/O.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

from compute.modbus_config import FLOATS, UNSIGNED, ByteOrder, Register, RegisterType

_FORMATS = {
    RegisterType.INT16: "h",
    RegisterType.UINT16: "H",
    RegisterType.INT32: "i",
    RegisterType.UINT32: "I",
    RegisterType.INT64: "q",
    RegisterType.UINT64: "Q",
    RegisterType.FLOAT32: "f",
    RegisterType.FLOAT64: "d",
}


def _swap_bytes(raw: bytes) -> bytes:
    return bytes(b for i in range(0, len(raw), 2) for b in (raw[i + 1], raw[i]))


def to_bytes(words: Sequence[int], order: ByteOrder) -> bytes:
    """A field's bytes, most significant first, from its registers in address order."""
    in_order = list(reversed(words)) if order.word_swap else words
    try:
        raw = struct.pack(f">{len(in_order)}H", *in_order)
    except struct.error as e:
        raise ValueError(f"a register holds 16 bits: {list(words)}") from e
    return _swap_bytes(raw) if order.byte_swap else raw


def to_words(raw: bytes, order: ByteOrder) -> list[int]:
    """The inverse of to_bytes: registers in address order from most-significant-first bytes."""
    if len(raw) % 2:
        raise ValueError("registers hold an even number of bytes")
    raw = _swap_bytes(raw) if order.byte_swap else raw
    words = [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]
    return words[::-1] if order.word_swap else words


def _check_count(words: Sequence[int], reg: Register) -> None:
    if len(words) != reg.words:
        raise ValueError(f"{reg.type} needs {reg.words} registers, got {len(words)}")


def raw_value(words: Sequence[int], reg: Register) -> int | float:
    """The field's raw number before scale and offset; a coil or input arrives as [0] or [1]."""
    _check_count(words, reg)
    if reg.type is RegisterType.STRING:
        raise ValueError("a string field has no numeric value; use decode_text")
    if reg.type is RegisterType.BIT:
        if reg.table.is_bits:
            return 1 if words[0] else 0
        word = int.from_bytes(to_bytes(words, reg.order), "big")
        return (word >> (reg.bit or 0)) & 1
    value: int | float = struct.unpack(">" + _FORMATS[reg.type], to_bytes(words, reg.order))[0]
    return value


def decode(words: Sequence[int], reg: Register) -> float:
    """Decode the field's words (as read, in address order) into its engineering value."""
    return float(raw_value(words, reg)) * reg.scale + reg.offset


def decode_text(words: Sequence[int], reg: Register) -> str:
    """Decode a string field: UTF-8 (so ASCII too), trailing NULs and spaces stripped."""
    _check_count(words, reg)
    if reg.type is not RegisterType.STRING:
        raise ValueError(f"a {reg.type} field is not text")
    return to_bytes(words, reg.order).decode("utf-8", errors="replace").rstrip("\x00 ")


def _integer(q: float, reg: Register) -> int:
    n = round(q) if abs(q - round(q)) < 1e-6 else math.floor(q)  # x.99999 is float noise
    bits = 16 * reg.words
    n %= 1 << bits
    if reg.type not in UNSIGNED and n >= 1 << (bits - 1):
        n -= 1 << bits
    return n


def bit_mask(reg: Register) -> int:
    """The register word, as on the wire, with only the bit of a bit field of a register set."""
    if reg.type is not RegisterType.BIT or reg.table.is_bits:
        raise ValueError("only a bit of a register has a mask")
    (word,) = to_words((1 << (reg.bit or 0)).to_bytes(2, "big"), reg.order)
    return word


def encode(value: float, reg: Register) -> list[int]:
    """Encode an engineering value into the field's words; integer types truncate and wrap.

    A bit field gives [0] or [1] for a coil or input, and for a register the word with only its
    bit set or clear (merge it under bit_mask).
    """
    q = (value - reg.offset) / reg.scale
    if reg.type is RegisterType.STRING:
        raise ValueError("a string field has no numeric value; use encode_text")
    if reg.type is RegisterType.BIT:
        on = round(q) != 0
        if reg.table.is_bits:
            return [int(on)]
        return [bit_mask(reg) if on else 0]
    if reg.type in FLOATS:
        raw = struct.pack(">" + _FORMATS[reg.type], q)
    else:
        raw = struct.pack(">" + _FORMATS[reg.type], _integer(q, reg))
    return to_words(raw, reg.order)


def encode_text(text: str, reg: Register) -> list[int]:
    """Encode text into a string field's words, padded with NULs."""
    if reg.type is not RegisterType.STRING:
        raise ValueError(f"a {reg.type} field is not text")
    raw = text.encode("utf-8")
    size = 2 * reg.words
    if len(raw) > size:
        raise ValueError(f"{len(raw)} bytes do not fit in {reg.words} registers")
    return to_words(raw.ljust(size, b"\x00"), reg.order)

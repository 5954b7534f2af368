"""Pure Modbus register codec: engineering values to 16-bit words and back, per register spec."""

from __future__ import annotations

import math
import struct

from compute.plant import Register, RegisterType, WordOrder

_FORMATS = {
    RegisterType.UINT16: "H",
    RegisterType.INT16: "h",
    RegisterType.UINT32: "I",
    RegisterType.INT32: "i",
    RegisterType.FLOAT32: "f",
}


def _order(words: list[int], order: WordOrder) -> list[int]:
    return list(reversed(words)) if order is WordOrder.LITTLE else words


def decode(words: list[int], reg: Register) -> float:
    """Decode the register's words (as read, in address order) into an engineering value."""
    if len(words) != reg.words:
        raise ValueError(f"{reg.type} needs {reg.words} registers, got {len(words)}")
    raw = struct.pack(f">{len(words)}H", *_order(words, reg.word_order))
    (value,) = struct.unpack(">" + _FORMATS[reg.type], raw)
    return float(value) if reg.type is RegisterType.FLOAT32 else float(value) * reg.scale


def encode(value: float, reg: Register) -> list[int]:
    """Encode an engineering value into the register's words; integer types truncate and wrap."""
    if reg.type is RegisterType.FLOAT32:
        raw = struct.pack(">f", value)
    else:
        bits = 16 * reg.words
        q = value / reg.scale
        n = round(q) if abs(q - round(q)) < 1e-6 else math.floor(q)  # x.99999 is float noise
        unsigned = reg.type in (RegisterType.UINT16, RegisterType.UINT32)
        n = n % (1 << bits) if unsigned else n
        raw = struct.pack(">" + _FORMATS[reg.type], n)
    return _order(list(struct.unpack(f">{reg.words}H", raw)), reg.word_order)

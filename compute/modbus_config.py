"""Modbus configuration: register fields (table, type, byte order, scale, offset) and per-meter
connection options (timeouts, request planning quirks, serial line settings).

Pure configuration; checks return (sub-path, message) pairs for the plant model to report.
"""

from __future__ import annotations

import enum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class RegisterType(enum.StrEnum):
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    BIT = "bit"  # one bit of a register (`bit`), or one coil / discrete input
    STRING = "string"  # `length` registers of text; decodable, but never a channel's value


class ByteOrder(enum.StrEnum):
    """Where the bytes of a value A (most significant) .. D sit, in address order.

    For other widths: ABCD is big-endian; CDAB reverses the register order; BADC swaps the two
    bytes of each register; DCBA does both (little-endian).
    """

    ABCD = "ABCD"
    DCBA = "DCBA"
    BADC = "BADC"
    CDAB = "CDAB"

    @property
    def word_swap(self) -> bool:
        return self in (ByteOrder.CDAB, ByteOrder.DCBA)

    @property
    def byte_swap(self) -> bool:
        return self in (ByteOrder.BADC, ByteOrder.DCBA)


class Table(enum.StrEnum):
    """The four Modbus data tables, in the order of their read function codes 1-4."""

    COIL = "coil"
    DISCRETE = "discrete"
    HOLDING = "holding"
    INPUT = "input"

    @property
    def is_bits(self) -> bool:
        return self in (Table.COIL, Table.DISCRETE)


class Parity(enum.StrEnum):
    NONE = "none"
    EVEN = "even"
    ODD = "odd"

    @property
    def letter(self) -> str:
        """N, E or O, as serial libraries name it."""
        return self.value[0].upper()


TYPE_WORDS = {
    RegisterType.INT16: 1,
    RegisterType.UINT16: 1,
    RegisterType.INT32: 2,
    RegisterType.UINT32: 2,
    RegisterType.INT64: 4,
    RegisterType.UINT64: 4,
    RegisterType.FLOAT32: 2,
    RegisterType.FLOAT64: 4,
    RegisterType.BIT: 1,
}
UNSIGNED = (RegisterType.UINT16, RegisterType.UINT32, RegisterType.UINT64)
FLOATS = (RegisterType.FLOAT32, RegisterType.FLOAT64)
MAX_STRING_REGISTERS = 125  # what one read can return


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Register(_Strict):
    """One field: its value is raw * scale + offset, raw decoded per `type` and `order`."""

    address: Annotated[int, Field(ge=0, le=65535)]  # as documented, counted from address_base
    type: RegisterType
    order: ByteOrder = ByteOrder.ABCD
    scale: Annotated[float, Field(gt=0)] = 1.0
    offset: float = 0.0
    table: Table = Table.HOLDING
    bit: Annotated[int, Field(ge=0, le=15)] | None = None  # bit fields of holding / input
    length: Annotated[int, Field(ge=1, le=MAX_STRING_REGISTERS)] | None = None  # string fields

    @property
    def words(self) -> int:
        """Addresses the field occupies in its table (registers, or one coil / input)."""
        if self.type is RegisterType.STRING:
            return self.length or 1
        return TYPE_WORDS[self.type]

    @property
    def unsigned_bits(self) -> int | None:
        """Width of an unsigned integer field, at which its raw value rolls over; else None."""
        return 16 * self.words if self.type in UNSIGNED else None


class ModbusOptions(_Strict):
    """Per-meter Modbus options; serial settings must agree for meters on one bus."""

    timeout_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    retries: Annotated[int, Field(ge=0, le=10)] = 1  # further tries after a timeout
    max_gap_registers: Annotated[int, Field(ge=0, le=124)] = 0  # unused span a read may bridge
    max_registers_per_read: Annotated[int, Field(ge=1, le=125)] = 125
    max_bits_per_read: Annotated[int, Field(ge=1, le=2000)] = 2000
    one_register_per_request: bool = False  # a quirk: every read asks for one address only
    pause_between_requests_s: Annotated[float, Field(ge=0, le=10)] = 0.0
    address_base: Literal[0, 1] = 0  # 1: addresses are written 1-based (register 1 is wire 0)
    baudrate: Annotated[int, Field(gt=0, le=4_000_000)] = 19200
    parity: Parity = Parity.NONE
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8

    def serial_settings(self) -> tuple[int, Parity, int, int]:
        return (self.baudrate, self.parity, self.stopbits, self.bytesize)


def register_issues(reg: Register, address_base: int) -> list[tuple[str, str]]:
    """Problems of one register field, as (sub-path below the register, message)."""
    issues: list[tuple[str, str]] = []
    if reg.table.is_bits and reg.type is not RegisterType.BIT:
        issues.append(("type", f"a {reg.table} holds single bits: use type bit"))
    if reg.type is RegisterType.BIT and reg.table.is_bits and reg.bit is not None:
        issues.append(("bit", f"a {reg.table} is one bit by itself: drop bit"))
    if reg.type is RegisterType.BIT and not reg.table.is_bits and reg.bit is None:
        issues.append(("bit", "a bit of a register needs its index, 0 (least significant)-15"))
    if reg.type is not RegisterType.BIT and reg.bit is not None:
        issues.append(("bit", "only a bit field takes a bit index"))
    if reg.type is RegisterType.STRING and reg.length is None:
        issues.append(("length", "a string field needs its length in registers"))
    if reg.type is not RegisterType.STRING and reg.length is not None:
        issues.append(("length", "only a string field takes a length"))
    if reg.type is RegisterType.STRING:
        issues.append(("type", "a string cannot be a channel's value: readings carry numbers only"))
    if reg.address < address_base:
        issues.append(("address", f"below the meter's address_base {address_base}"))
    elif reg.address - address_base + reg.words > 65536:
        issues.append(("address", "the field runs past the end of the table"))
    return issues

"""Pure Modbus request planning: a meter's fields coalesced, per table, into as few reads as the
meter's limits allow (size, bridged gaps, one address per request). No I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from compute.modbus_config import ModbusOptions, Table
from compute.plant import ChannelRef

FUNCTION_CODES = {Table.COIL: 1, Table.DISCRETE: 2, Table.HOLDING: 3, Table.INPUT: 4}
BITS_PER_REGISTER = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class Field:
    """One channel's span in a table: wire addresses [address, address + count)."""

    key: str
    table: Table
    address: int
    count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Read:
    """One read request: `count` registers or bits from wire `address`, covering `keys`."""

    table: Table
    address: int
    count: int
    keys: tuple[str, ...]

    @property
    def function_code(self) -> int:
        return FUNCTION_CODES[self.table]


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    max_registers: int = 125
    max_bits: int = 2000
    max_gap_registers: int = 0  # in bit tables, 16 bits per register
    one_register_per_request: bool = False

    @classmethod
    def of(cls, options: ModbusOptions) -> Limits:
        return cls(
            max_registers=options.max_registers_per_read,
            max_bits=options.max_bits_per_read,
            max_gap_registers=options.max_gap_registers,
            one_register_per_request=options.one_register_per_request,
        )

    def size(self, table: Table) -> int:
        if self.one_register_per_request:
            return 1
        return self.max_bits if table.is_bits else self.max_registers

    def gap(self, table: Table) -> int:
        return self.max_gap_registers * (BITS_PER_REGISTER if table.is_bits else 1)


def _plan_table(table: Table, fields: list[Field], limits: Limits) -> list[Read]:
    size, gap = limits.size(table), limits.gap(table)
    reads: list[Read] = []
    start = end = 0
    keys: list[str] = []

    def flush() -> None:
        if keys:
            reads.append(Read(table=table, address=start, count=end - start, keys=tuple(keys)))
            keys.clear()

    for f in sorted(fields, key=lambda f: (f.address, -f.count, f.key)):
        a, b = f.address, f.address + f.count
        if keys and a - end <= gap and max(end, b) - start <= size:
            end = max(end, b)
            keys.append(f.key)
            continue
        flush()
        if b - a > size:  # wider than one read allows: split, each piece a read of its own
            for at in range(a, b, size):
                reads.append(Read(table=table, address=at, count=min(size, b - at), keys=(f.key,)))
        else:
            start, end = a, b
            keys.append(f.key)
    flush()
    return reads


def plan(fields: Iterable[Field], limits: Limits) -> list[Read]:
    """Reads covering every field, in function-code order, then address order."""
    by_table: dict[Table, list[Field]] = {}
    for f in fields:
        by_table.setdefault(f.table, []).append(f)
    return [r for t in Table if t in by_table for r in _plan_table(t, by_table[t], limits)]


def fields_of(refs: Sequence[ChannelRef]) -> list[Field]:
    """The Modbus fields of some channels of one meter, at their wire (0-based) addresses."""
    out = []
    for ref in refs:
        reg = ref.channel.modbus
        if reg is not None:
            base = ref.meter.modbus.address_base
            out.append(
                Field(key=ref.key, table=reg.table, address=reg.address - base, count=reg.words)
            )
    return out


def plan_channels(refs: Sequence[ChannelRef]) -> list[Read]:
    """The reads of one meter's channels, under that meter's limits."""
    if not refs:
        return []
    return plan(fields_of(refs), Limits.of(refs[0].meter.modbus))

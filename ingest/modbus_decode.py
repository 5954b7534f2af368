"""Decoding a meter's Modbus reads into the columns of its ReadingBatch: one numpy view per (type,
byte order) group, the per-field codec for bits. Pure: no I/O, no clock. Defined to give exactly
what ingest.registers.decode gives field by field, and ModbusSource's batch row by row.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from compute.modbus_config import ByteOrder, Register, RegisterType, Table
from compute.model import NO_TS, Quality, ReadingBatch
from compute.plant import ChannelRef
from ingest import registers
from ingest.modbus_plan import Read, plan_channels

_DTYPES: dict[RegisterType, np.dtype[np.generic]] = {
    RegisterType.INT16: np.dtype(">i2"),
    RegisterType.UINT16: np.dtype(">u2"),
    RegisterType.INT32: np.dtype(">i4"),
    RegisterType.UINT32: np.dtype(">u4"),
    RegisterType.INT64: np.dtype(">i8"),
    RegisterType.UINT64: np.dtype(">u8"),
    RegisterType.FLOAT32: np.dtype(">f4"),
    RegisterType.FLOAT64: np.dtype(">f8"),
}
_WORD = np.dtype(">u2")  # registers as on the wire, so a view of them reads whole fields


_Slots = slice | npt.NDArray[np.intp]  # positions in an array: a slice when they are a run


def _run_or_index(positions: Sequence[int]) -> _Slots:
    """A slice when the positions are consecutive and ascending (faster to index by), else them."""
    first = positions[0] if positions else 0
    if list(positions) == list(range(first, first + len(positions))):
        return slice(first, first + len(positions))
    return np.array(positions, dtype=np.intp)


@dataclass(frozen=True, slots=True)
class _Group:
    """Fields of one type and byte order; `pick` takes their words, most significant first."""

    keys: tuple[str, ...]
    slots: _Slots  # where the fields land in the batch's columns
    pick: _Slots  # the fields' words within the read, field after field
    dtype: np.dtype[np.generic]
    byte_swap: bool
    scale: npt.NDArray[np.float64] | None  # None: every scale is 1.0, a no-op to multiply by
    offset: npt.NDArray[np.float64]  # an array: numpy adds a scalar more slowly

    def decode(self, words: npt.NDArray[np.uint16]) -> npt.NDArray[np.float64]:
        """The group's values from the read's words (big-endian, `_WORD`)."""
        out = np.empty(len(self.keys))
        self._decode(words, out)
        return out

    def decode_into(self, words: npt.NDArray[np.uint16], value: npt.NDArray[np.float64]) -> None:
        """Write the group's values to their slots of `value`."""
        if isinstance(self.slots, slice):
            self._decode(words, value[self.slots])  # a view: decode in place
        else:
            value[self.slots] = self.decode(words)

    def _decode(self, words: npt.NDArray[np.uint16], out: npt.NDArray[np.float64]) -> None:
        m = words[self.pick]
        if self.byte_swap:
            m = m.byteswap()
        out[...] = m.view(self.dtype)  # to float64 as float() does: exact, or round to nearest
        if self.scale is not None:
            out *= self.scale
        out += self.offset  # even a zero offset: -0.0 + 0.0 is 0.0, as the codec gives


@dataclass(frozen=True, slots=True)
class ReadDecoder:
    groups: tuple[_Group, ...]
    others: tuple[tuple[str, int, Register, int], ...]  # key, slot, field, position in the read
    pack: Callable[..., bytes]  # the read's registers as on the wire

    def _words(self, values: Sequence[int]) -> npt.NDArray[np.uint16]:
        return np.frombuffer(self.pack(*values), dtype=_WORD)

    def decode(self, values: Sequence[int]) -> dict[str, float]:
        """Engineering values of the read's fields; a field that does not decode is left out."""
        out: dict[str, float] = {}
        if self.groups:
            words = self._words(values)
            for g in self.groups:
                out.update(zip(g.keys, g.decode(words).tolist(), strict=True))
        for key, _, reg, at in self.others:
            try:
                out[key] = registers.decode(list(values[at : at + reg.words]), reg)
            except ValueError:
                continue
        return out

    def decode_into(
        self,
        values: Sequence[int],
        value: npt.NDArray[np.float64],
        decoded: npt.NDArray[np.bool_],
    ) -> None:
        """Write the read's fields into their slots of `value` and mark them in `decoded`; a
        field that does not decode is left as it was."""
        if self.groups:
            words = self._words(values)
            for g in self.groups:
                g.decode_into(words, value)
                decoded[g.slots] = True
        for _, slot, reg, at in self.others:
            try:
                value[slot] = registers.decode(list(values[at : at + reg.words]), reg)
            except ValueError:
                continue
            decoded[slot] = True


def read_decoder(
    read: Read, refs: Mapping[str, ChannelRef], slots: Mapping[str, int] | None = None
) -> ReadDecoder:
    """The decoder of one planned read; fields not wholly inside the read are not decoded here.

    `slots` places each field in the batch's columns (decode_into); by default, by its position
    among the read's keys.
    """
    if slots is None:
        slots = {key: i for i, key in enumerate(read.keys)}
    grouped: dict[tuple[RegisterType, ByteOrder], list[tuple[str, Register, int]]] = {}
    others: list[tuple[str, int, Register, int]] = []
    for key in read.keys:
        ref = refs[key]
        reg = ref.channel.modbus
        if reg is None:
            continue
        at = reg.address - ref.meter.modbus.address_base - read.address
        if at < 0 or at + reg.words > read.count:
            continue
        if reg.type in _DTYPES and not reg.table.is_bits:
            grouped.setdefault((reg.type, reg.order), []).append((key, reg, at))
        else:
            others.append((key, slots[key], reg, at))
    groups = []
    for (type_, order), fields in grouped.items():
        width = fields[0][1].words
        cols = range(width)[::-1] if order.word_swap else range(width)
        scale = np.array([r.scale for _, r, _ in fields])
        groups.append(
            _Group(
                keys=tuple(k for k, _, _ in fields),
                slots=_run_or_index([slots[k] for k, _, _ in fields]),
                pick=_run_or_index([at + c for _, _, at in fields for c in cols]),
                dtype=_DTYPES[type_],
                byte_swap=order.byte_swap,
                scale=None if bool(np.all(scale == 1.0)) else scale,
                offset=np.array([r.offset for _, r, _ in fields]),
            )
        )
    pack = struct.Struct(f">{read.count}H").pack
    return ReadDecoder(groups=tuple(groups), others=tuple(others), pack=pack)


@dataclass(frozen=True, slots=True)
class MeterDecoder:
    """A meter's planned reads with their decoders, and where each reading lands in its batch:
    one slot per channel id, one row per channel given (`rows` maps rows to slots)."""

    reads: tuple[Read, ...]
    decoders: tuple[ReadDecoder, ...]
    stamps: tuple[_Slots, ...]  # per read: the slots its time stamps
    channel_ids: tuple[str, ...]
    rows: npt.NDArray[np.uint16] | None  # None: one row per slot, in order
    fields: tuple[tuple[int, Register, int], ...]  # slot, field, first wire address
    complete: bool  # every slot decoded by a numpy group, so stamped, once every read answers
    blank: npt.NDArray[np.float64] = field(init=False)  # NaN per slot
    channel_index: npt.NDArray[np.uint16] = field(init=False)  # the batch's, row by row
    no_server_ts: npt.NDArray[np.int64] = field(init=False)  # NO_TS per row

    def __post_init__(self) -> None:
        # templates a poll copies: faster than making each column anew
        n = len(self.channel_ids)
        index = np.arange(n, dtype=np.uint16) if self.rows is None else self.rows
        object.__setattr__(self, "blank", np.full(n, np.nan))
        object.__setattr__(self, "channel_index", index)
        object.__setattr__(self, "no_server_ts", np.full(len(index), NO_TS, dtype=np.int64))

    def columns(self) -> PollColumns:
        return PollColumns(self)


def meter_decoder(refs: Sequence[ChannelRef]) -> MeterDecoder:
    """The reads of one meter's channels with their decoders, planned once from config alone."""
    ids = tuple(dict.fromkeys(r.key for r in refs))
    slots = {cid: i for i, cid in enumerate(ids)}
    by_key = {r.key: r for r in refs}
    reads = plan_channels(refs)
    decoders = tuple(read_decoder(read, by_key, slots) for read in reads)
    fields = []
    for key, ref in by_key.items():
        if (reg := ref.channel.modbus) is not None:
            fields.append((slots[key], reg, reg.address - ref.meter.modbus.address_base))
    in_groups = {key for d in decoders for g in d.groups for key in g.keys}
    return MeterDecoder(
        reads=tuple(reads),
        decoders=decoders,
        stamps=tuple(_run_or_index([slots[k] for k in read.keys]) for read in reads),
        channel_ids=ids,
        rows=None if len(ids) == len(refs) else np.array([slots[r.key] for r in refs], np.uint16),
        fields=tuple(fields),
        complete=in_groups == set(ids),
    )


class PollColumns:
    """One poll of a meter: filled read by read, then taken, once, as its batch."""

    __slots__ = ("_answered", "_decoded", "_meter", "_ts_ns", "_value")

    def __init__(self, meter: MeterDecoder) -> None:
        n = len(meter.channel_ids)
        self._meter = meter
        self._value = meter.blank.copy()  # NaN
        self._decoded = np.zeros(n, dtype=np.bool_)
        self._ts_ns = np.empty(n, dtype=np.int64)
        self._answered: list[tuple[int, Sequence[int]]] = []  # read number, values

    def add(self, i: int, values: Sequence[int], ts_ns: int) -> None:
        """The meter's read number `i` answered `values`; its readings are stamped `ts_ns`."""
        m = self._meter
        m.decoders[i].decode_into(values, self._value, self._decoded)
        self._ts_ns[m.stamps[i]] = ts_ns
        self._answered.append((i, values))

    def _fill(self, ts_ns: int) -> None:
        """Stamp `ts_ns` on readings no read stamped, and decode the fields no read decoded
        (split over reads, or their own read failed) from the words of every read that
        answered, a later read's words over an earlier one's."""
        m = self._meter
        stamped = np.zeros(len(m.channel_ids), dtype=np.bool_)
        for i, _ in self._answered:
            stamped[m.stamps[i]] = True
        self._ts_ns[~stamped] = ts_ns
        if not self._answered or self._decoded.all():
            return
        words: dict[Table, dict[int, int]] = {}
        for i, values in self._answered:
            read = m.reads[i]
            words.setdefault(read.table, {}).update(enumerate(values, start=read.address))
        for slot, reg, at in m.fields:
            if self._decoded[slot]:
                continue
            table = words.get(reg.table, {})
            try:
                self._value[slot] = registers.decode(
                    [table[a] for a in range(at, at + reg.words)], reg
                )
            except (KeyError, ValueError):
                continue
            self._decoded[slot] = True

    def batch(self, *, meter_id: str, ts_ns: int, receive_ts_ns: int) -> ReadingBatch:
        """The poll's batch: a reading no read stamped takes `ts_ns`; one that did not decode
        to a finite number is BAD (NaN)."""
        m = self._meter
        if not (m.complete and len(self._answered) == len(m.reads)):
            self._fill(ts_ns)
        value, ts = self._value, self._ts_ns
        n = len(value)
        good = np.isfinite(value)  # NaN where nothing decoded, too
        if np.count_nonzero(good) == n:
            quality = np.zeros(n, dtype=np.uint8)  # Quality.GOOD
        else:
            value[~good] = np.nan
            quality = np.where(good, Quality.GOOD, Quality.BAD).astype(np.uint8)
        if m.rows is not None:
            value, ts, quality = value[m.rows], ts[m.rows], quality[m.rows]
        return ReadingBatch(
            meter_id=meter_id,
            channel_ids=m.channel_ids,
            channel_index=m.channel_index.copy(),
            ts_ns=ts,
            value=value,
            quality=quality,
            server_ts_ns=m.no_server_ts.copy(),
            receive_ts_ns=receive_ts_ns,
        )

"""Decoding one Modbus read at once: numeric fields grouped by type and byte order, each group
decoded by a single numpy view; bits and the rest fall back to the per-field codec.

Pure. Defined to give exactly what ingest.registers.decode gives field by field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from compute.modbus_config import ByteOrder, Register, RegisterType
from compute.plant import ChannelRef
from ingest import registers
from ingest.modbus_plan import Read

_DTYPES = {
    RegisterType.INT16: ">i2",
    RegisterType.UINT16: ">u2",
    RegisterType.INT32: ">i4",
    RegisterType.UINT32: ">u4",
    RegisterType.INT64: ">i8",
    RegisterType.UINT64: ">u8",
    RegisterType.FLOAT32: ">f4",
    RegisterType.FLOAT64: ">f8",
}


@dataclass(frozen=True, slots=True)
class _Group:
    """Fields of one type and byte order; `index` picks their words, most significant first."""

    keys: tuple[str, ...]
    index: npt.NDArray[np.intp]  # (fields, words) positions within the read
    dtype: str
    byte_swap: bool
    scale: npt.NDArray[np.float64]
    offset: npt.NDArray[np.float64]

    def decode(self, words: npt.NDArray[np.uint16]) -> npt.NDArray[np.float64]:
        m = words[self.index]
        if self.byte_swap:
            m = m.byteswap()
        raw = np.frombuffer(m.astype(">u2").tobytes(), dtype=self.dtype)
        out: npt.NDArray[np.float64] = raw.astype(np.float64) * self.scale + self.offset
        return out


@dataclass(frozen=True, slots=True)
class ReadDecoder:
    groups: tuple[_Group, ...]
    others: tuple[tuple[str, Register, int], ...]  # key, field, first position in the read

    def decode(self, values: Sequence[int]) -> dict[str, float]:
        """Engineering values of the read's fields; a field that does not decode is left out."""
        words = np.asarray(values, dtype=np.uint16)
        out: dict[str, float] = {}
        for g in self.groups:
            out.update(zip(g.keys, g.decode(words).tolist(), strict=True))
        for key, reg, at in self.others:
            try:
                out[key] = registers.decode(list(values[at : at + reg.words]), reg)
            except ValueError:
                continue
        return out


def read_decoder(read: Read, refs: Mapping[str, ChannelRef]) -> ReadDecoder:
    """The decoder of one planned read; fields not wholly inside the read are not decoded here."""
    grouped: dict[tuple[RegisterType, ByteOrder], list[tuple[str, Register, int]]] = {}
    others: list[tuple[str, Register, int]] = []
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
            others.append((key, reg, at))
    groups = []
    for (type_, order), fields in grouped.items():
        width = fields[0][1].words
        cols = np.arange(width)[::-1] if order.word_swap else np.arange(width)
        groups.append(
            _Group(
                keys=tuple(k for k, _, _ in fields),
                index=np.array([at + cols for _, _, at in fields], dtype=np.intp),
                dtype=_DTYPES[type_],
                byte_swap=order.byte_swap,
                scale=np.array([r.scale for _, r, _ in fields]),
                offset=np.array([r.offset for _, r, _ in fields]),
            )
        )
    return ReadDecoder(groups=tuple(groups), others=tuple(others))

"""Wire codec for ReadingBatch: a versioned, little-endian, columnar binary frame.

Layout (version 3): magic "PP", version u8, reserved u8, receive_ts_ns i64, the byte length u32
of the table that follows, the table (meter id, channel count u16, channel ids), reading count
u32, then the columns channel_index u16[], ts_ns i64[], value f64[], quality u8[],
server_ts_ns i64[]. Strings are u16 length + UTF-8. A meter sends the same table every poll,
so both sides memoise it by its bytes. Versions 1 (no server_ts_ns, no table length) and 2 (no
table length) are still read.
"""

from __future__ import annotations

import functools
import struct

import numpy as np

from compute.errors import CodecError
from compute.model import NO_TS, Quality, ReadingBatch

MAGIC = b"PP"
VERSION = 3
_READABLE = (1, 2, 3)
_TABLES = 4096  # memoised channel tables: meters one process sees (about 2 KiB each)
_HEAD = struct.Struct("<2sBBq")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_COLUMNS: tuple[tuple[str, np.dtype[np.generic]], ...] = (
    ("channel_index", np.dtype("<u2")),
    ("ts_ns", np.dtype("<i8")),
    ("value", np.dtype("<f8")),
    ("quality", np.dtype("u1")),
    ("server_ts_ns", np.dtype("<i8")),  # from version 2
)
_COLUMNS_NATIVE = tuple((name, dt, dt.newbyteorder("=")) for name, dt in _COLUMNS)
_MAX_QUALITY = max(Quality)


def _pack_str(text: str) -> bytes:
    raw = text.encode()
    return _U16.pack(len(raw)) + raw


@functools.lru_cache(maxsize=_TABLES)
def _table_bytes(meter_id: str, channel_ids: tuple[str, ...]) -> bytes:
    table = b"".join(
        [_pack_str(meter_id), _U16.pack(len(channel_ids)), *(_pack_str(c) for c in channel_ids)]
    )
    return _U32.pack(len(table)) + table


def encode(batch: ReadingBatch) -> bytes:
    """Encode a batch into one bus message."""
    parts = [
        _HEAD.pack(MAGIC, VERSION, 0, batch.receive_ts_ns),
        _table_bytes(batch.meter_id, batch.channel_ids),
        _U32.pack(batch.size),
    ]
    parts.extend(np.ascontiguousarray(getattr(batch, n), dtype=d).tobytes() for n, d in _COLUMNS)
    return b"".join(parts)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def take(self, n: int, what: str) -> memoryview:
        if self.pos + n > len(self.data):
            raise CodecError(f"truncated message: {what} needs {n} bytes at offset {self.pos}")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u16(self, what: str) -> int:
        return int(_U16.unpack(self.take(2, what))[0])

    def string(self, what: str) -> str:
        raw = self.take(self.u16(what), what)
        try:
            return bytes(raw).decode()
        except UnicodeDecodeError as e:
            raise CodecError(f"{what} is not valid UTF-8") from e


def _read_table(r: _Reader) -> tuple[str, tuple[str, ...]]:
    meter_id = r.string("meter id")
    return meter_id, tuple(r.string("channel id") for _ in range(r.u16("channel count")))


@functools.lru_cache(maxsize=_TABLES)
def _parse_table(raw: bytes) -> tuple[str, tuple[str, ...]]:
    r = _Reader(raw)
    table = _read_table(r)
    if r.pos != len(raw):
        raise CodecError(f"{len(raw) - r.pos} stray bytes in the channel table")
    return table


def decode(data: bytes) -> ReadingBatch:
    """Decode one bus message; raise CodecError with the reason when it is malformed."""
    if len(data) >= len(MAGIC) and data[: len(MAGIC)] != MAGIC:
        raise CodecError(f"bad magic {bytes(data[:2])!r}, expected {MAGIC!r}: not a ReadingBatch")
    r = _Reader(data)
    _, version, _, receive_ts_ns = _HEAD.unpack(r.take(_HEAD.size, "header"))
    if version not in _READABLE:
        raise CodecError(f"unsupported schema version {version}, this build reads {_READABLE}")
    if version >= 3:
        size = int(_U32.unpack(r.take(4, "table length"))[0])
        meter_id, channel_ids = _parse_table(bytes(r.take(size, "channel table")))
    else:
        meter_id, channel_ids = _read_table(r)
    n = int(_U32.unpack(r.take(4, "reading count"))[0])
    cols = {}
    for name, dt, native in _COLUMNS_NATIVE if version >= 2 else _COLUMNS_NATIVE[:-1]:
        size = n * dt.itemsize
        if r.pos + size > len(data):
            raise CodecError(f"truncated message: {name} needs {size} bytes at offset {r.pos}")
        cols[name] = np.frombuffer(data, dtype=dt, count=n, offset=r.pos).astype(native, copy=False)
        r.pos += size
    server_ts_ns = cols["server_ts_ns"] if version >= 2 else np.full(n, NO_TS, dtype=np.int64)
    if r.pos != len(data):
        raise CodecError(f"{len(data) - r.pos} trailing bytes after {n} readings")
    if n and int(cols["channel_index"].max()) >= len(channel_ids):
        raise CodecError("channel index points past the channel table")
    if n and int(cols["quality"].max()) > _MAX_QUALITY:
        raise CodecError(f"unknown quality code {int(cols['quality'].max())}")
    return ReadingBatch(
        meter_id=meter_id,
        channel_ids=channel_ids,
        channel_index=cols["channel_index"],
        ts_ns=cols["ts_ns"],
        value=cols["value"],
        quality=cols["quality"],
        server_ts_ns=server_ts_ns,
        receive_ts_ns=int(receive_ts_ns),
    )

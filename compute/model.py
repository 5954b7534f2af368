"""Domain records shared by every layer: quality codes and the columnar ReadingBatch.

Pure data: no I/O and no clock.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt

NS_PER_S = 1_000_000_000
NO_TS = -(2**63)  # an unknown timestamp, e.g. the server time of a Modbus reading


class Quality(enum.IntEnum):
    """Quality of one sample, after OPC UA StatusCode severity or the Modbus outcome."""

    GOOD = 0
    UNCERTAIN = 1
    BAD = 2
    STALE = 3


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def datetime_ns(dt: datetime) -> int:
    """An aware datetime as int64 ns since the epoch, exactly (no float rounding)."""
    return (dt - _EPOCH) // timedelta(microseconds=1) * 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadingBatch:
    """Readings of one meter from one poll or publish cycle, column by column.

    `channel_index` points into `channel_ids`, so a batch names each channel once. `ts_ns` is
    the source timestamp, `server_ts_ns` the server's (NO_TS when the protocol has none) and
    `receive_ts_ns` the gateway's clock when the batch arrived.
    """

    meter_id: str
    channel_ids: tuple[str, ...]
    channel_index: npt.NDArray[np.uint16]
    ts_ns: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]
    quality: npt.NDArray[np.uint8]
    server_ts_ns: npt.NDArray[np.int64]
    receive_ts_ns: int
    size: int = field(init=False)

    def __post_init__(self) -> None:
        n = len(self.ts_ns)
        if not (
            len(self.channel_index)
            == len(self.value)
            == len(self.quality)
            == len(self.server_ts_ns)
            == n
        ):
            raise ValueError("ReadingBatch columns differ in length")
        object.__setattr__(self, "size", n)

    @classmethod
    def from_rows(
        cls,
        *,
        meter_id: str,
        receive_ts_ns: int,
        rows: Sequence[tuple[str, int, float, Quality]],
        server_ts_ns: Sequence[int] | None = None,
    ) -> ReadingBatch:
        """Build a batch from (channel_id, ts_ns, value, quality) rows, as sources see them."""
        ids = tuple(dict.fromkeys(r[0] for r in rows))
        position = {cid: i for i, cid in enumerate(ids)}
        return cls(
            meter_id=meter_id,
            channel_ids=ids,
            channel_index=np.array([position[r[0]] for r in rows], dtype=np.uint16),
            ts_ns=np.array([r[1] for r in rows], dtype=np.int64),
            value=np.array([r[2] for r in rows], dtype=np.float64),
            quality=np.array([int(r[3]) for r in rows], dtype=np.uint8),
            receive_ts_ns=receive_ts_ns,
            server_ts_ns=np.array(
                server_ts_ns if server_ts_ns is not None else [NO_TS] * len(rows), dtype=np.int64
            ),
        )

"""Time-of-use tariff periods (peak, flat, valley) of a site, in local wall-clock time, and the
band of each instant. Pure: zoneinfo gives the UTC offsets; no I/O, no clock.
"""

from __future__ import annotations

import enum
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from compute.model import NS_PER_S

QUARTER_S = 900  # boundaries on quarter hours: base buckets (PT_BUCKET_S divides 900) never
SLOTS = 96  # straddle one; quarter hours a day
_HOUR_NS = 3_600 * NS_PER_S
_TIME = re.compile(r"^(?:([01]\d|2[0-3]):(00|15|30|45)|24:00)$")


class TariffBand(enum.StrEnum):
    PEAK = "peak"
    FLAT = "flat"
    VALLEY = "valley"


BANDS = tuple(TariffBand)  # band codes are indexes into this


def _slot(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return (int(h) * 60 + int(m)) * 60 // QUARTER_S


class TariffWindow(BaseModel):
    """A band from `start` to `end` ("HH:MM" on a quarter hour; "24:00" is midnight at the end;
    an end before the start runs past midnight), in the listed months (all by default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    band: TariffBand
    start: str
    end: str
    months: tuple[int, ...] = tuple(range(1, 13))

    @field_validator("start", "end")
    @classmethod
    def _quarter_hour(cls, v: str) -> str:
        if not _TIME.match(v):
            raise ValueError(f"{v!r} is not HH:MM on a quarter hour (00, 15, 30, 45) or 24:00")
        return v

    @field_validator("months")
    @classmethod
    def _months(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or any(not 1 <= m <= 12 for m in v) or len(set(v)) != len(v):
            raise ValueError("months are distinct numbers 1-12, at least one")
        return v

    @model_validator(mode="after")
    def _not_empty(self) -> TariffWindow:
        if _slot(self.start) % SLOTS == _slot(self.end) % SLOTS:
            raise ValueError(f"{self.start}-{self.end} is empty or ambiguous: start = end")
        return self

    def slots(self) -> list[int]:
        a, b = _slot(self.start), _slot(self.end)
        return list(range(a, b)) if a < b else [*range(a, SLOTS), *range(0, b % SLOTS)]


class Tariffs(BaseModel):
    """A site's time-of-use schedule: windows of peak, flat or valley time; every other quarter
    hour is in the `default` band. Windows may not overlap in any month."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    default: TariffBand = TariffBand.FLAT
    windows: list[TariffWindow] = Field(min_length=1)

    @model_validator(mode="after")
    def _no_overlap(self) -> Tariffs:
        owner: dict[tuple[int, int], int] = {}
        clashes: dict[tuple[int, int], str] = {}  # the first place each pair overlaps
        for i, w in enumerate(self.windows):
            for month in w.months:
                for s in w.slots():
                    j = owner.setdefault((month, s), i)
                    if j != i and (j, i) not in clashes:
                        at = f"{s * QUARTER_S // 3600:02d}:{s * QUARTER_S % 3600 // 60:02d}"
                        clashes[j, i] = (
                            f"windows[{j}] and windows[{i}] overlap (month {month}, {at})"
                        )
        if clashes:
            raise ValueError("; ".join(clashes.values()))
        return self

    @property
    def whole_hours(self) -> bool:
        """Whether every boundary is on a whole hour, so local hour roll-ups split exactly."""
        return all(t.endswith(":00") for w in self.windows for t in (w.start, w.end))

    def table(self) -> npt.NDArray[np.int8]:
        """Band code per (month - 1, quarter hour of the local day)."""
        out = np.full((12, SLOTS), BANDS.index(self.default), np.int8)
        for w in self.windows:
            for month in w.months:
                out[month - 1, w.slots()] = BANDS.index(w.band)
        return out

    def bands(self) -> tuple[TariffBand, ...]:
        """The bands this schedule uses, in BANDS order."""
        used = {self.default, *(w.band for w in self.windows)}
        return tuple(b for b in BANDS if b in used)


def utc_offsets_ns(ts_ns: npt.NDArray[np.int64], tz: str) -> npt.NDArray[np.int64]:
    """Each instant's UTC offset in the zone, asking zoneinfo about each distinct UTC hour (and
    each instant of an hour in which the offset changes)."""
    zone = ZoneInfo(tz)

    def offset(t_ns: int) -> int:
        off = datetime.fromtimestamp(t_ns // NS_PER_S, zone).utcoffset() or timedelta(0)
        return off // timedelta(microseconds=1) * 1_000

    hours, inverse = np.unique(ts_ns // _HOUR_NS, return_inverse=True)
    at_start = np.array([offset(int(h) * _HOUR_NS) for h in hours], np.int64)
    at_end = np.array([offset((int(h) + 1) * _HOUR_NS - NS_PER_S) for h in hours], np.int64)
    out = at_start[inverse]
    changing = np.flatnonzero((at_start != at_end)[inverse])
    out[changing] = [offset(int(ts_ns[i])) for i in changing]
    return out


def band_codes(ts_ns: npt.NDArray[np.int64], tz: str, tariffs: Tariffs) -> npt.NDArray[np.int8]:
    """The band code (index into BANDS) of each instant, by its local wall-clock time."""
    ts = np.asarray(ts_ns, np.int64)
    if ts.size == 0:
        return np.zeros(0, np.int8)
    wall = ts + utc_offsets_ns(ts, tz)
    month = wall.astype("datetime64[ns]").astype("datetime64[M]").astype(np.int64) % 12
    slot = (wall // (QUARTER_S * NS_PER_S)) % SLOTS
    codes: npt.NDArray[np.int8] = tariffs.table()[month, slot]
    return codes


def band_seconds(
    start_ns: int, end_ns: int, step_ns: int, tz: str, tariffs: Tariffs
) -> dict[TariffBand, int]:
    """Seconds of [start_ns, end_ns) in each band, on a grid of `step_ns` (a divisor of 15
    minutes that start_ns and end_ns fall on)."""
    grid = np.arange(start_ns, end_ns, step_ns, dtype=np.int64)
    counts = np.bincount(band_codes(grid, tz, tariffs), minlength=len(BANDS))
    return {b: int(counts[i]) * step_ns // NS_PER_S for i, b in enumerate(BANDS)}

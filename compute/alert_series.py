"""Alert inputs: a channel's readings as a Series, site-local wall time, hour-of-week baselines.

Pure numpy and zoneinfo: no I/O, no wall clock. The quality policy of every rule lives here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from compute.alert_rules import DAY_NS, HOUR_NS, MINUTE_NS, IdleSchedule
from compute.model import NS_PER_S, Quality

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
B1 = npt.NDArray[np.bool_]
HOURS_PER_WEEK = 168
_UNCERTAIN = int(Quality.UNCERTAIN)  # a plain int: enum lookups cost more than the comparison


@dataclass(frozen=True, slots=True, kw_only=True)
class Series:
    """One channel's readings, sorted by ts_ns (ties: the first one counts)."""

    ts_ns: I64
    value: F64
    quality: npt.NDArray[np.uint8]

    def __post_init__(self) -> None:
        if not len(self.ts_ns) == len(self.value) == len(self.quality):
            raise ValueError("Series columns differ in length")

    @classmethod
    def empty(cls) -> Series:
        return cls(ts_ns=np.zeros(0, np.int64), value=np.zeros(0), quality=np.zeros(0, np.uint8))

    def usable(self) -> B1:
        """Good or uncertain with a finite value: the samples rules look at. An uncertain value
        (e.g. a sensor past calibration) still alarms: missing an excursion costs more.
        """
        usable: B1 = (self.quality <= _UNCERTAIN) & np.isfinite(self.value)  # GOOD 0, UNCERTAIN 1
        return usable


@dataclass(frozen=True, slots=True, kw_only=True)
class HourOfWeekProfile:
    """A channel's learnt baseline: mean, sample standard deviation and count of usable
    readings per local hour of the week (slot 0 is Monday 00:00-01:00 in `tz`).
    """

    tz: str
    mean: F64
    std: F64
    n: I64


def _offset_ns(zone: ZoneInfo, utc_s: int) -> int:
    off = datetime.fromtimestamp(utc_s, UTC).astimezone(zone).utcoffset()
    assert off is not None  # a ZoneInfo always has one
    return off // timedelta(microseconds=1) * 1000


def local_wall_ns(ts_ns: I64, tz: str) -> I64:
    """Local wall-clock time of each instant, as ns since 1970-01-01 00:00 local.

    Offsets are looked up once per distinct UTC minute (every tz transition since 1970 falls on
    a whole minute); a batch within one day with equal offsets at both ends has just one, as no
    zone changes its offset twice within 3.9 days (see compute.calendar).
    """
    if ts_ns.size == 0:
        return ts_ns.copy()
    zone = ZoneInfo(tz)
    lo, hi = int(ts_ns.min()), int(ts_ns.max())
    off_lo = _offset_ns(zone, lo // NS_PER_S)
    if hi - lo < DAY_NS and _offset_ns(zone, hi // NS_PER_S) == off_lo:
        return ts_ns + off_lo
    minutes, inverse = np.unique(ts_ns // MINUTE_NS, return_inverse=True)
    offsets = np.array([_offset_ns(zone, int(m) * 60) for m in minutes], np.int64)
    return ts_ns + offsets[inverse.reshape(ts_ns.shape)]


def hour_of_week(wall_ns: I64) -> I64:
    """Slot 0..167 of local wall times; 1970-01-01 was a Thursday (weekday 3)."""
    day = wall_ns // DAY_NS
    return ((day + 3) % 7) * 24 + (wall_ns - day * DAY_NS) // HOUR_NS


def in_schedule(wall_ns: I64, s: IdleSchedule) -> B1:
    """Whether each local wall time lies in the schedule's windows (see IdleSchedule)."""
    day = wall_ns // DAY_NS
    weekday = (day + 3) % 7
    minute = (wall_ns - day * DAY_NS) // MINUTE_NS
    days = np.array(sorted(s.weekdays), np.int64)
    today = np.isin(weekday, days)
    if s.start_minute < s.end_minute:
        return today & (minute >= s.start_minute) & (minute < s.end_minute)
    if s.start_minute == s.end_minute:
        return today
    yesterday = np.isin((weekday + 6) % 7, days)  # the window began the day before
    return (today & (minute >= s.start_minute)) | (yesterday & (minute < s.end_minute))


def learn_profile(
    ts_ns: I64, value: F64, quality: npt.NDArray[np.uint8], *, tz: str
) -> HourOfWeekProfile:
    """The hour-of-week profile of a gauge's history (usable readings only); a counter's
    running total has none, so baselines watch its power or flow gauge.
    """
    ok = Series(ts_ns=ts_ns, value=value, quality=quality).usable()
    slot = hour_of_week(local_wall_ns(ts_ns[ok], tz))
    v = value[ok]
    n = np.bincount(slot, minlength=HOURS_PER_WEEK).astype(np.int64)
    total = np.bincount(slot, weights=v, minlength=HOURS_PER_WEEK)
    mean = np.divide(total, n, out=np.full(HOURS_PER_WEEK, np.nan), where=n > 0)
    sq = np.bincount(slot, weights=(v - mean[slot]) ** 2, minlength=HOURS_PER_WEEK)
    # The sample deviation (n - 1): a handful of weeks per slot would understate the spread.
    std = np.sqrt(np.divide(sq, n - 1, out=np.full(HOURS_PER_WEEK, np.nan), where=n > 1))
    return HourOfWeekProfile(tz=tz, mean=mean, std=std, n=n)

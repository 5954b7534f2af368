"""Calendar periods (hour to year) in a site's IANA timezone, on int64 ns since the epoch, UTC.

Pure and vectorised: zoneinfo supplies UTC offsets; no I/O of its own, no wall clock, no asyncio.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

from compute.errors import PlantPulseError
from compute.model import NO_TS, NS_PER_S

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

_HOUR_NS = 3_600 * NS_PER_S
_DAY_NS = 24 * _HOUR_NS
_INT64_MIN = np.iinfo(np.int64).min
_INT64_MAX = np.iinfo(np.int64).max
_NAIVE_EPOCH = datetime(1970, 1, 1)
_UTC_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_MIN_TS_NS = (datetime(1900, 1, 1, tzinfo=UTC) - _UTC_EPOCH) // _ONE_US * 1_000
_MAX_TS_NS = (datetime(2200, 1, 1, tzinfo=UTC) - _UTC_EPOCH) // _ONE_US * 1_000
# Offsets are probed a day apart, then bisected to the second. Since 1900 no zone in tzdata has
# changed its offset twice within 3.9 days (the closest: Africa/Freetown, 1939), so none is missed.
_PROBE_S = 86_400


class CalendarError(PlantPulseError, ValueError):
    """A timezone is unknown, a timestamp is out of range, or a local period does not exist."""


class Period(enum.StrEnum):
    """A calendar period in local time; WEEK is the ISO week, starting on Monday.

    The local wall time of an instant u is wall(u) = u + offset(u), and its label is the wall
    start of the period holding wall(u): 10:00 for 10:42, the Monday of its ISO week, 1 January
    for a year. A period starts where the clock first shows a label greater than any it showed
    before (at the offset change, if the clock skips the period's start); instants that show an
    earlier label again after a fall-back stay in the current period. An hour also starts each
    time the clock reads a whole hour, so the hour 01:00-02:00 repeated after a fall-back is an
    hour of its own, while a day whose midnight repeats (America/Havana) stays one 25-hour day.
    So DST days last 23 or 25 hours; where the clock moves by 30 minutes (Australia/Lord_Howe)
    local 01:00 lasts 90 minutes or 02:00 lasts 30.
    Instants must lie in [1900-01-01, 2200-01-01) UTC.
    """

    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


_MONTHS_PER = {Period.MONTH: 1, Period.QUARTER: 3, Period.YEAR: 12}
_FIXED_NS = {Period.HOUR: _HOUR_NS, Period.DAY: _DAY_NS, Period.WEEK: 7 * _DAY_NS}
# How far a period's start or end can lie from an instant inside it, with slack for a skipped day.
_REACH_NS = {
    Period.HOUR: 3 * _DAY_NS,
    Period.DAY: 4 * _DAY_NS,
    Period.WEEK: 10 * _DAY_NS,
    Period.MONTH: 34 * _DAY_NS,
    Period.QUARTER: 95 * _DAY_NS,
    Period.YEAR: 369 * _DAY_NS,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class PeriodBuckets:
    """Base buckets merged into calendar periods, one row per (channel, period_start_ns), sorted.

    n, n_good and sum are added; min and max are over good samples (NaN when none); last is the
    value with the newest last_ts_ns (NO_TS and NaN when no row had one). period_end_ns is the
    start of the next period, so (period_end_ns - period_start_ns) is the period's true length.
    """

    channel: npt.NDArray[np.int32]
    period_start_ns: I64
    period_end_ns: I64
    n: I64
    n_good: I64
    sum: F64
    min: F64
    max: F64
    last: F64
    last_ts_ns: I64


@dataclass(frozen=True, slots=True, kw_only=True)
class _Segments:
    """A zone's UTC offsets over a range, per segment k of constant offset, for one period.

    Segment k runs from start_ns[k] (the first from -inf) to end_ns[k] (the last to +inf) at
    offset_ns[k]. top[k] is the greatest label shown before it. For an instant in the segment
    whose label is not above top[k], run_start[k] is the start of the period it continues, and
    hour_before[k] the last whole hour read before the segment. run_next[k] and hour_next[k]
    are the first period start and the first whole-hour reading at or after start_ns[k].
    """

    start_ns: I64
    end_ns: I64
    offset_ns: I64
    top: I64
    run_start: I64
    hour_before: I64
    run_next: I64
    hour_next: I64


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise CalendarError(f"unknown timezone {tz!r}") from e


def _offset_s(zone: ZoneInfo, utc_s: int) -> int:
    off = datetime.fromtimestamp(utc_s, zone).utcoffset()
    assert off is not None  # a ZoneInfo always has an offset
    return off // timedelta(seconds=1)


def _offsets(tz: str, lo_ns: int, hi_ns: int) -> tuple[list[int], list[int]]:
    """Starts (ns; the first -inf) and offsets (ns) of the segments of constant UTC offset over
    (lo_ns, hi_ns], found by probing and bisecting to the second.
    """
    zone = _zone(tz)
    lo_s, hi_s = lo_ns // NS_PER_S, -(-hi_ns // NS_PER_S)
    off = _offset_s(zone, lo_s)
    starts, offsets = [_INT64_MIN], [off * NS_PER_S]
    known = lo_s  # the latest instant known to have offset `off`
    for probe in [*range(lo_s - lo_s % _PROBE_S + _PROBE_S, hi_s, _PROBE_S), hi_s]:
        probe_off = _offset_s(zone, probe)
        while probe_off != off:
            a, b = known, probe  # offset(a) == off != offset(b)
            while b - a > 1:
                mid = (a + b) // 2
                a, b = (mid, b) if _offset_s(zone, mid) == off else (a, mid)
            off, known = _offset_s(zone, b), b
            starts.append(b * NS_PER_S)
            offsets.append(off * NS_PER_S)
        known = probe
    return starts, offsets


def _check_range(lo_ns: int, hi_ns: int) -> None:
    if lo_ns < _MIN_TS_NS or hi_ns >= _MAX_TS_NS:
        raise CalendarError("timestamps must lie in [1900-01-01, 2200-01-01) UTC")


def _months(wall_ns: I64) -> I64:
    """Whole months since 1970-01 of naive wall times (floored)."""
    return wall_ns.astype("datetime64[ns]").astype("datetime64[M]").astype(np.int64)


def _from_months(months: I64) -> I64:
    return months.astype("datetime64[M]").astype("datetime64[ns]").astype(np.int64)


def _by_date(wall_ns: I64, of_dates: Callable[[I64], I64]) -> I64:
    """of_dates(wall_ns), for a function of the local date alone, computed once per distinct
    date: numpy's calendar casts are slow, and millions of timestamps span few dates.
    """
    if wall_ns.size < 4_096:
        return of_dates(wall_ns)
    days = wall_ns // _DAY_NS
    first, last = int(days.min()), int(days.max())
    if last - first >= wall_ns.size:
        return of_dates(wall_ns)
    per_date = of_dates(np.arange(first, last + 1, dtype=np.int64) * _DAY_NS)
    return per_date[days - first]


def _label(wall_ns: I64, period: Period) -> I64:
    """The wall-clock start of the period holding each naive wall time."""
    if period is Period.WEEK:
        days = wall_ns // _DAY_NS
        return (days - (days + 3) % 7) * _DAY_NS  # 1970-01-01 was a Thursday
    if period in _FIXED_NS:
        return wall_ns - wall_ns % _FIXED_NS[period]
    step = _MONTHS_PER[period]

    def of_dates(w: I64) -> I64:
        months = _months(w)
        return _from_months(months - months % step)

    return _by_date(wall_ns, of_dates)


def _next_label(label_ns: I64, period: Period) -> I64:
    """The wall-clock start of the period after each label."""
    if period in _FIXED_NS:
        return label_ns + _FIXED_NS[period]
    step = _MONTHS_PER[period]
    return _by_date(label_ns, lambda w: _from_months(_months(w) + step))


def _table(tz: str, lo_ns: int, hi_ns: int, period: Period) -> _Segments:
    """The segments around [lo_ns, hi_ns], with what each needs; a loop over offset changes."""
    _check_range(lo_ns, hi_ns)
    start, off = _offsets(tz, lo_ns - _REACH_NS[period], hi_ns + _REACH_NS[period])
    end = [*start[1:], _INT64_MAX]
    k_all = len(start)
    inner_start = np.array(start[1:], np.int64)
    first = [_INT64_MIN, *_label(inner_start + np.array(off[1:], np.int64), period).tolist()]
    last = [*_label(inner_start - 1 + np.array(off[:-1], np.int64), period).tolist(), _INT64_MIN]
    top, run_start, hour_before = ([_INT64_MIN] * k_all for _ in range(3))
    for k in range(1, k_all):  # what the clock did up to the instant before segment k
        j, shown = k - 1, last[k - 1] - off[k - 1]
        top[k] = max(top[j], last[j])
        run_start[k] = max(shown, start[j]) if last[j] > top[j] else run_start[j]
        hour_before[k] = shown if shown >= start[j] else hour_before[j]
    after_top = [_INT64_MIN, *_next_label(np.array(top[1:], np.int64), period).tolist()]
    after_first = [_INT64_MIN, *_next_label(np.array(first[1:], np.int64), period).tolist()]
    run_next, hour_next = [_INT64_MAX] * (k_all + 1), [_INT64_MAX] * (k_all + 1)
    for k in range(k_all - 1, 0, -1):  # what the clock does from the start of segment k on
        shown = after_top[k] - off[k]
        run_next[k] = (
            start[k] if first[k] > top[k] else shown if shown < end[k] else run_next[k + 1]
        )
        shown = after_first[k] - off[k]
        reads = start[k] + off[k] == first[k]  # the clock reads a whole hour as it changes
        hour_next[k] = start[k] if reads else shown if shown < end[k] else hour_next[k + 1]

    def arr(values: list[int]) -> I64:
        return np.array(values, np.int64)

    return _Segments(
        start_ns=arr(start),
        end_ns=arr(end),
        offset_ns=arr(off),
        top=arr(top),
        run_start=arr(run_start),
        hour_before=arr(hour_before),
        run_next=arr(run_next),
        hour_next=arr(hour_next),
    )


def _wall(ts_ns: I64, t: _Segments) -> tuple[npt.NDArray[np.intp], I64]:
    """The offset segment of each instant, and its local wall time as naive ns."""
    seg = np.searchsorted(t.start_ns, ts_ns, side="right") - 1
    return seg, ts_ns + t.offset_ns[seg]


def _starts(ts_ns: I64, t: _Segments, period: Period) -> I64:
    """Latest period start at or before each instant (see Period), in one vectorised pass."""
    seg, wall = _wall(ts_ns, t)
    label = _label(wall, period)
    shown = label - t.offset_ns[seg]  # where this segment's clock reads the label
    start = np.where(label > t.top[seg], np.maximum(shown, t.start_ns[seg]), t.run_start[seg])
    if period is Period.HOUR:  # every whole-hour reading starts an hour too
        return np.maximum(start, np.where(shown >= t.start_ns[seg], shown, t.hour_before[seg]))
    return start


def _ends(ts_ns: I64, t: _Segments, period: Period) -> I64:
    """Earliest period start after each instant, in one vectorised pass."""
    seg, wall = _wall(ts_ns, t)
    label = _label(wall, period)
    shown = _next_label(np.maximum(label, t.top[seg]), period) - t.offset_ns[seg]
    end = np.where(shown < t.end_ns[seg], shown, t.run_next[seg + 1])
    if period is Period.HOUR:
        hour = _next_label(label, period) - t.offset_ns[seg]
        return np.minimum(end, np.where(hour < t.end_ns[seg], hour, t.hour_next[seg + 1]))
    return end


def _as_ts(ts_ns: npt.ArrayLike) -> I64:
    return np.asarray(ts_ns, dtype=np.int64)


def period_start_ns(ts_ns: npt.ArrayLike, tz: str, period: Period) -> I64:
    """UTC ns of the start of the local period holding each timestamp (UTC ns).

    Vectorised: the zone's offset changes over the data's range are found once, then every
    timestamp is placed with searchsorted. The result is <= ts_ns and is a period start itself.
    """
    ts = _as_ts(ts_ns)
    if ts.size == 0:
        return np.zeros(ts.shape, np.int64)
    return _starts(ts, _table(tz, int(ts.min()), int(ts.max()), period), period)


def period_end_ns(ts_ns: npt.ArrayLike, tz: str, period: Period) -> I64:
    """UTC ns of the end (the next period's start, exclusive) of the period holding each ts_ns."""
    ts = _as_ts(ts_ns)
    if ts.size == 0:
        return np.zeros(ts.shape, np.int64)
    return _ends(ts, _table(tz, int(ts.min()), int(ts.max()), period), period)


def period_length_s(ts_ns: npt.ArrayLike, tz: str, period: Period) -> I64:
    """True length in whole seconds of the period holding each timestamp: 82 800, 86 400 or
    90 000 for a day in Europe/Berlin. Expected samples = length_s / sampling interval in s.
    """
    ts = _as_ts(ts_ns)
    if ts.size == 0:
        return np.zeros(ts.shape, np.int64)
    t = _table(tz, int(ts.min()), int(ts.max()), period)
    return (_ends(ts, t, period) - _starts(ts, t, period)) // NS_PER_S


def periods_between(start_ns: int, end_ns: int, tz: str, period: Period) -> I64:
    """Starts (UTC ns, ascending) of the periods that cover [start_ns, end_ns): the first is the
    start of the period holding start_ns, which may lie before it. Empty when end_ns <= start_ns.
    """
    if end_ns <= start_ns:
        return np.zeros(0, np.int64)
    t = _table(tz, start_ns, end_ns, period)
    first = int(_starts(np.array([start_ns], np.int64), t, period)[0])
    # Every start is a wall-clock period start minus an offset in force, or an offset change:
    # list those candidates and keep the ones that are their own period's start.
    wall_lo = first + int(t.offset_ns.min())
    wall_hi = end_ns + int(t.offset_ns.max())
    lo = _label(np.array([wall_lo], np.int64), period)
    if period in _FIXED_NS:
        walls = np.arange(lo[0], wall_hi + 1, _FIXED_NS[period], dtype=np.int64)
    else:
        step = _MONTHS_PER[period]
        months = np.arange(_months(lo)[0], _months(np.array([wall_hi], np.int64))[0] + 1, step)
        walls = _from_months(months.astype(np.int64))
    candidates = np.concatenate([(walls[:, None] - np.unique(t.offset_ns)).ravel(), t.start_ns])
    candidates = np.unique(candidates[(candidates > first) & (candidates < end_ns)])
    starts = candidates[_starts(candidates, t, period) == candidates]
    return np.concatenate([np.array([first], np.int64), starts])


def period_bounds(tz: str, period: Period, when: date | datetime) -> tuple[int, int]:
    """(start_ns, end_ns) in UTC of one local period, e.g. the day date(2026, 3, 29) in
    Europe/Berlin is [2026-03-28T23:00Z, 2026-03-29T22:00Z).

    A date or naive datetime is a local wall time; the period is the one whose label holds it.
    When two periods share it (the hour repeated after a fall-back), fold=0 picks the first and
    fold=1 the second, as in PEP 495. An aware datetime is an instant, converted to the zone.
    Raises CalendarError when the clock skipped the whole local period (02:00 on a spring day).
    """
    if isinstance(when, datetime) and when.tzinfo is not None:
        ts = (when - _UTC_EPOCH) // _ONE_US * 1_000
        t = _table(tz, ts, ts, period)
        at = np.array([ts], np.int64)
        return int(_starts(at, t, period)[0]), int(_ends(at, t, period)[0])
    wall = when if isinstance(when, datetime) else datetime.combine(when, datetime.min.time())
    wall_ns = (wall - _NAIVE_EPOCH) // _ONE_US * 1_000
    label = int(_label(np.array([wall_ns], np.int64), period)[0])
    reach = _REACH_NS[period]
    _check_range(label - reach, label + reach)
    starts = periods_between(label - reach, label + reach, tz, period)
    t = _table(tz, int(starts[0]), int(starts[-1]), period)
    matching = starts[_label(_wall(starts, t)[1], period) == label]
    if matching.size == 0:
        raise CalendarError(f"{when} does not exist as a {period} in {tz}: the clock skipped it")
    start = int(matching[-1] if wall.fold else matching[0])
    return start, int(_ends(np.array([start], np.int64), t, period)[0])


def rollup(
    *,
    channel: npt.NDArray[np.int32],
    bucket_start_ns: I64,
    n: I64,
    n_good: I64,
    sum: F64,  # the columns keep BucketDeltas' names
    min: F64,
    max: F64,
    last: F64,
    last_ts_ns: I64,
    tz: str,
    period: Period,
) -> PeriodBuckets:
    """Merge base buckets (columns as in compute.aggregate.BucketDeltas) into local calendar
    periods per channel. A base bucket belongs to the period holding its start, so it must not
    straddle a period start: UTC-minute buckets never do in zones with whole-minute offsets.

    The result does not depend on the order of the input rows: rows are summed in order of
    (channel, bucket_start_ns), and of all their columns where those repeat; ties in last_ts_ns
    keep the greatest last value. Sums are float64, so merging in stages (minutes, hours, days)
    matches a direct merge up to rounding.
    """
    cols = (bucket_start_ns, n, n_good, sum, min, max, last, last_ts_ns)
    if any(len(c) != len(channel) for c in cols):
        raise CalendarError("rollup columns differ in length")
    ch = np.asarray(channel, np.int32)
    bucket = np.asarray(bucket_start_ns, np.int64)
    n_, ng = np.asarray(n, np.int64), np.asarray(n_good, np.int64)
    s, mn, mx = (np.asarray(c, np.float64) for c in (sum, min, max))
    lv, lts = np.asarray(last, np.float64), np.asarray(last_ts_ns, np.int64)
    order = np.lexsort((bucket, ch))
    if ((ch[order][1:] == ch[order][:-1]) & (bucket[order][1:] == bucket[order][:-1])).any():
        order = np.lexsort((lts, lv, mx, mn, s, ng, n_, bucket, ch))  # rare: repeated buckets
    ch, bucket, n_, ng, lts = ch[order], bucket[order], n_[order], ng[order], lts[order]
    s, mn, mx, lv = s[order], mn[order], mx[order], lv[order]
    start = period_start_ns(bucket, tz, period)  # non-decreasing within a channel
    new = np.ones(ch.size, np.bool_)
    new[1:] = (ch[1:] != ch[:-1]) | (start[1:] != start[:-1])
    first = np.flatnonzero(new)
    group = np.cumsum(new) - 1
    newest = np.maximum.reduceat(lts, first)  # NO_TS is the least int64
    out_last = np.full(first.size, np.nan)
    won = (lts == newest[group]) & (lts != NO_TS)
    np.fmax.at(out_last, group[won], lv[won])
    starts = start[first]
    return PeriodBuckets(
        channel=ch[first],
        period_start_ns=starts,
        period_end_ns=period_end_ns(starts, tz, period),
        n=np.add.reduceat(n_, first),
        n_good=np.add.reduceat(ng, first),
        sum=np.add.reduceat(s, first),
        min=np.fmin.reduceat(mn, first),
        max=np.fmax.reduceat(mx, first),
        last=out_last,
        last_ts_ns=newest,
    )

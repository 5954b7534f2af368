"""Local calendar periods: exact DST boundaries, a zoneinfo reference, and rollups that compose."""

from __future__ import annotations

import functools
import random
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compute.calendar import (
    CalendarError,
    Period,
    PeriodBuckets,
    period_bounds,
    period_end_ns,
    period_length_s,
    period_start_ns,
    periods_between,
    rollup,
)
from compute.model import NO_TS, NS_PER_S

H = 3_600
DAY = 24 * H
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BERLIN, NEW_YORK, SHANGHAI = "Europe/Berlin", "America/New_York", "Asia/Shanghai"
LORD_HOWE, KOLKATA = "Australia/Lord_Howe", "Asia/Kolkata"


def utc(text: str) -> int:
    """ns since the epoch of a UTC wall time such as 2026-03-28T23:00."""
    seconds = (datetime.fromisoformat(text).replace(tzinfo=UTC) - EPOCH) // timedelta(seconds=1)
    return seconds * NS_PER_S


def one(values: np.ndarray) -> int:
    assert values.shape == (1,)
    return int(values[0])


# ---------------------------------------------------------------------------------------------
# Exact boundaries


DST_DAYS = [
    (BERLIN, date(2026, 3, 29), "2026-03-28T23:00", "2026-03-29T22:00", 23),
    (BERLIN, date(2026, 10, 25), "2026-10-24T22:00", "2026-10-25T23:00", 25),
    (NEW_YORK, date(2026, 3, 8), "2026-03-08T05:00", "2026-03-09T04:00", 23),
    (NEW_YORK, date(2026, 11, 1), "2026-11-01T04:00", "2026-11-02T05:00", 25),
    (BERLIN, date(2026, 3, 28), "2026-03-27T23:00", "2026-03-28T23:00", 24),
    (NEW_YORK, date(2026, 11, 2), "2026-11-02T05:00", "2026-11-03T05:00", 24),
]


@pytest.mark.parametrize(("tz", "day", "start", "end", "hours"), DST_DAYS)
def test_dst_days_have_exact_utc_bounds_and_lengths(
    tz: str, day: date, start: str, end: str, hours: int
) -> None:
    start_ns, end_ns = utc(start), utc(end)
    assert period_bounds(tz, Period.DAY, day) == (start_ns, end_ns)
    inside = np.array([start_ns, start_ns + 7 * H * NS_PER_S, end_ns - 1], np.int64)
    assert period_start_ns(inside, tz, Period.DAY).tolist() == [start_ns] * 3
    assert period_end_ns(inside, tz, Period.DAY).tolist() == [end_ns] * 3
    assert period_length_s(inside, tz, Period.DAY).tolist() == [hours * H] * 3
    assert one(period_start_ns([end_ns], tz, Period.DAY)) == end_ns
    hour_starts = periods_between(start_ns, end_ns, tz, Period.HOUR)
    assert len(hour_starts) == hours
    assert set(period_length_s(hour_starts, tz, Period.HOUR).tolist()) == {H}


def test_the_repeated_new_york_hour_is_two_periods() -> None:
    first, second, after = utc("2026-11-01T05:00"), utc("2026-11-01T06:00"), utc("2026-11-01T07:00")
    ts = np.array([first, first + 1_800 * NS_PER_S, second, second + 1, after - 1], np.int64)
    assert period_start_ns(ts, NEW_YORK, Period.HOUR).tolist() == [first] * 2 + [second] * 3
    assert period_end_ns(ts, NEW_YORK, Period.HOUR).tolist() == [second] * 2 + [after] * 3
    assert periods_between(first, after, NEW_YORK, Period.HOUR).tolist() == [first, second]
    local = datetime(2026, 11, 1, 1, 30)
    assert period_bounds(NEW_YORK, Period.HOUR, local) == (first, second)
    assert period_bounds(NEW_YORK, Period.HOUR, local.replace(fold=1)) == (second, after)


def test_the_skipped_hour_does_not_exist() -> None:
    assert periods_between(
        utc("2026-03-08T05:00"), utc("2026-03-08T08:00"), NEW_YORK, Period.HOUR
    ).tolist() == [utc("2026-03-08T05:00"), utc("2026-03-08T06:00"), utc("2026-03-08T07:00")]
    assert period_bounds(NEW_YORK, Period.HOUR, datetime(2026, 3, 8, 3, 0)) == (
        utc("2026-03-08T07:00"),
        utc("2026-03-08T08:00"),
    )
    with pytest.raises(CalendarError):
        period_bounds(NEW_YORK, Period.HOUR, datetime(2026, 3, 8, 2, 30))
    spring = utc("2026-03-29T00:00")  # 01:00 CET, then 03:00 CEST an hour later
    assert period_end_ns([spring], BERLIN, Period.HOUR).tolist() == [utc("2026-03-29T01:00")]


def test_shanghai_days_last_24_hours_all_year() -> None:
    start, end = period_bounds(SHANGHAI, Period.YEAR, date(2026, 6, 1))
    assert (start, end) == (utc("2025-12-31T16:00"), utc("2026-12-31T16:00"))
    days = periods_between(start, end, SHANGHAI, Period.DAY)
    assert len(days) == 365
    assert set(period_length_s(days, SHANGHAI, Period.DAY).tolist()) == {DAY}
    assert set(((days // NS_PER_S) % DAY).tolist()) == {16 * H}


def test_hours_begin_at_local_whole_hours_with_half_hour_offsets() -> None:
    ts = np.array([utc("2026-06-01T10:10"), utc("2026-06-01T10:29:59")], np.int64)
    assert period_start_ns(ts, KOLKATA, Period.HOUR).tolist() == [
        utc("2026-06-01T09:30"),
        utc("2026-06-01T09:30"),
    ]
    assert period_length_s(ts, KOLKATA, Period.HOUR).tolist() == [H, H]
    assert period_bounds(KOLKATA, Period.DAY, date(2026, 6, 1))[0] == utc("2026-05-31T18:30")


def test_lord_howe_half_hour_dst_stretches_and_shrinks_one_local_hour() -> None:
    # 5 Apr 2026: 02:00 +11:00 falls back to 01:30 +10:30, so local 01:00 lasts 90 minutes.
    assert period_bounds(LORD_HOWE, Period.DAY, date(2026, 4, 5)) == (
        utc("2026-04-04T13:00"),
        utc("2026-04-05T13:30"),
    )
    fall = utc("2026-04-04T15:10")  # 01:40 +10:30, the second pass through 01:30-02:00
    assert one(period_start_ns([fall], LORD_HOWE, Period.HOUR)) == utc("2026-04-04T14:00")
    assert one(period_length_s([fall], LORD_HOWE, Period.HOUR)) == 90 * 60
    # 4 Oct 2026: 02:00 +10:30 springs to 02:30 +11:00, so local 02:00 lasts 30 minutes.
    day = period_bounds(LORD_HOWE, Period.DAY, date(2026, 10, 4))
    assert day == (utc("2026-10-03T13:30"), utc("2026-10-04T13:00"))
    hours = periods_between(*day, LORD_HOWE, Period.HOUR)
    lengths = period_length_s(hours, LORD_HOWE, Period.HOUR)
    assert len(hours) == 24 and int(lengths.sum()) == 23 * H + 1_800
    assert hours[lengths == 1_800].tolist() == [utc("2026-10-03T15:30")]


def test_a_repeated_midnight_keeps_one_day() -> None:
    # Havana falls back from 01:00 CDT to 00:00 CST: midnight shows twice, the day stays one.
    assert period_bounds("America/Havana", Period.DAY, date(2026, 11, 1)) == (
        utc("2026-11-01T04:00"),
        utc("2026-11-02T05:00"),
    )


def test_a_fall_back_across_midnight_shows_no_label_twice() -> None:
    # St. John's fell back from 00:01 NDT to 23:01 NST in 2000: the minutes 23:01-24:00 shown
    # again belong to 29 October, which lasts 25 hours, and the hours stay 60 minutes long.
    st_johns = "America/St_Johns"
    assert period_bounds(st_johns, Period.DAY, date(2000, 10, 29)) == (
        utc("2000-10-29T02:30"),
        utc("2000-10-30T03:30"),
    )
    again = utc("2000-10-29T02:45")  # 23:14 NST on 28 October, a second time
    assert one(period_start_ns([again], st_johns, Period.DAY)) == utc("2000-10-29T02:30")
    assert one(period_start_ns([again], st_johns, Period.HOUR)) == utc("2000-10-29T02:30")
    assert one(period_end_ns([again], st_johns, Period.HOUR)) == utc("2000-10-29T03:30")


@pytest.mark.parametrize(
    ("tz", "period", "when", "start", "end"),
    [
        (BERLIN, Period.MONTH, date(2026, 3, 15), "2026-02-28T23:00", "2026-03-31T22:00"),
        (BERLIN, Period.MONTH, date(2026, 10, 1), "2026-09-30T22:00", "2026-10-31T23:00"),
        (NEW_YORK, Period.QUARTER, date(2026, 2, 1), "2026-01-01T05:00", "2026-04-01T04:00"),
        (NEW_YORK, Period.QUARTER, date(2026, 12, 31), "2026-10-01T04:00", "2027-01-01T05:00"),
        (BERLIN, Period.YEAR, date(2026, 7, 1), "2025-12-31T23:00", "2026-12-31T23:00"),
        (SHANGHAI, Period.YEAR, date(2024, 2, 29), "2023-12-31T16:00", "2024-12-31T16:00"),
        (NEW_YORK, Period.WEEK, date(2026, 1, 1), "2025-12-29T05:00", "2026-01-05T05:00"),
        (BERLIN, Period.WEEK, date(2026, 3, 29), "2026-03-22T23:00", "2026-03-29T22:00"),
        (BERLIN, Period.WEEK, date(2026, 3, 30), "2026-03-29T22:00", "2026-04-05T22:00"),
    ],
)
def test_month_quarter_year_and_iso_week_bounds(
    tz: str, period: Period, when: date, start: str, end: str
) -> None:
    assert period_bounds(tz, period, when) == (utc(start), utc(end))
    assert one(period_length_s([utc(start)], tz, period)) == (utc(end) - utc(start)) // NS_PER_S


def test_a_year_splits_into_local_months_quarters_and_iso_weeks() -> None:
    year = period_bounds(BERLIN, Period.YEAR, date(2026, 1, 1))
    zone = ZoneInfo(BERLIN)
    local = [_local(int(s), zone) for s in periods_between(*year, BERLIN, Period.MONTH)]
    assert local == [datetime(2026, m, 1) for m in range(1, 13)]
    quarters = [_local(int(s), zone) for s in periods_between(*year, BERLIN, Period.QUARTER)]
    assert quarters == [datetime(2026, m, 1) for m in (1, 4, 7, 10)]
    weeks = [_local(int(s), zone) for s in periods_between(*year, BERLIN, Period.WEEK)]
    assert weeks[0] == datetime(2025, 12, 29) and weeks[-1] == datetime(2026, 12, 28)
    assert all(w.weekday() == 0 and w.time() == time() for w in weeks) and len(weeks) == 53


def test_aware_datetimes_and_bad_input() -> None:
    instant = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 03:30 CEST
    assert period_bounds(BERLIN, Period.HOUR, instant) == (
        utc("2026-03-29T01:00"),
        utc("2026-03-29T02:00"),
    )
    assert period_start_ns(np.zeros(0, np.int64), BERLIN, Period.DAY).size == 0
    assert periods_between(5, 5, BERLIN, Period.DAY).size == 0
    with pytest.raises(CalendarError):
        period_start_ns([0], "Mars/Olympus_Mons", Period.DAY)
    with pytest.raises(CalendarError):
        period_start_ns([NO_TS], BERLIN, Period.DAY)
    cols = {c: np.zeros(2, np.int64) for c in COLUMNS}
    with pytest.raises(CalendarError):
        rollup(**{**cols, "n": np.zeros(3, np.int64)}, tz=BERLIN, period=Period.DAY)


# ---------------------------------------------------------------------------------------------
# A slow per-timestamp reference built on zoneinfo alone

ZONES = [
    "UTC",
    BERLIN,
    NEW_YORK,
    SHANGHAI,
    KOLKATA,
    LORD_HOWE,
    "Europe/London",
    "America/Havana",
    "America/Sao_Paulo",
    "America/St_Johns",
    "Pacific/Chatham",
    "Pacific/Apia",
    "Asia/Kathmandu",
]
FIRST_S, LAST_S = utc("2000-01-01T00:00") // NS_PER_S, utc("2036-01-01T00:00") // NS_PER_S


def _local(utc_s_or_ns: int, zone: ZoneInfo, *, ns: bool = True) -> datetime:
    s = utc_s_or_ns // NS_PER_S if ns else utc_s_or_ns
    return datetime.fromtimestamp(s, zone).replace(tzinfo=None)


def _ref_label(local: datetime, period: Period) -> datetime:
    day = datetime.combine(local.date(), time())
    return {
        Period.HOUR: local.replace(minute=0, second=0, microsecond=0),
        Period.DAY: day,
        Period.WEEK: day - timedelta(days=local.weekday()),
        Period.MONTH: datetime(local.year, local.month, 1),
        Period.QUARTER: datetime(local.year, 3 * ((local.month - 1) // 3) + 1, 1),
        Period.YEAR: datetime(local.year, 1, 1),
    }[period]


def _offset(utc_s: int, zone: ZoneInfo) -> timedelta | None:
    return datetime.fromtimestamp(utc_s, zone).utcoffset()


def _instant_s(wall: datetime, zone: ZoneInfo, fold: int) -> int:
    return (wall.replace(tzinfo=zone, fold=fold) - EPOCH) // timedelta(seconds=1)


def _reference_start_ns(ts_ns: int, tz: str, period: Period) -> int:
    """One timestamp at a time, from zoneinfo's PEP 495 folds: a period starts where the clock
    first reads the greatest label it has shown so far (or first passes it, if it skipped it);
    an hour also where the clock last read its whole hour.
    """
    zone = ZoneInfo(tz)
    s = ts_ns // NS_PER_S  # offsets and their changes fall on whole seconds
    here = datetime.fromtimestamp(s, zone)
    label = top = _ref_label(here.replace(tzinfo=None), period)
    if here.fold:  # the clock read this wall time before, then ran on until it fell back
        lo, hi = _instant_s(here.replace(tzinfo=None), zone, 0), s
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if _offset(mid, zone) == _offset(s, zone) else (mid, hi)
        top = max(label, _ref_label(_local(hi - 1, zone, ns=False), period))

    def readings(wall: datetime) -> list[int]:
        instants = (_instant_s(wall, zone, fold) for fold in (0, 1))
        return [u for u in instants if u <= s and _local(u, zone, ns=False) == wall]

    if top_read := readings(top):
        start = min(top_read)
    else:  # skipped: the first instant whose wall time is past it
        lo, hi = s - 400 * DAY, s
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if _local(mid, zone, ns=False) >= top else (mid, hi)
        start = hi
    if period is Period.HOUR:
        start = max([start, *readings(label), *top_read])
    return start * NS_PER_S


@functools.cache
def _changes_s(tz: str) -> tuple[int, ...]:
    """UTC seconds of the zone's offset changes in 2000-2035, to aim timestamps near them."""
    zone = ZoneInfo(tz)
    found = []
    for day_s in range(FIRST_S, LAST_S, DAY):
        if _offset(day_s, zone) != _offset(day_s + DAY, zone):
            lo, hi = day_s, day_s + DAY
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if _offset(mid, zone) == _offset(lo, zone) else (lo, mid)
            found.append(hi)
    return tuple(found) or (FIRST_S,)


@st.composite
def zone_period_and_times(draw: st.DrawFn) -> tuple[str, Period, list[int]]:
    """Up to 20 timestamps within about a year of a random instant in 2000-2035, many of them
    near the zone's offset changes."""
    tz = draw(st.sampled_from(ZONES))
    period = draw(st.sampled_from(list(Period)))
    center_s = draw(st.integers(FIRST_S + 400 * DAY, LAST_S - 400 * DAY))
    window_ns = 400 * DAY * NS_PER_S
    anywhere = st.integers(center_s * NS_PER_S - window_ns, center_s * NS_PER_S + window_ns)
    changes = [c for c in _changes_s(tz) if abs(c - center_s) < 397 * DAY]
    near_change = st.builds(
        lambda c, d: c * NS_PER_S + d,
        st.sampled_from(changes or [center_s]),
        st.integers(-3 * DAY * NS_PER_S, 3 * DAY * NS_PER_S)
        | st.sampled_from([-1, 0, 1]).map(lambda k: k * NS_PER_S),
    )
    return tz, period, draw(st.lists(anywhere | near_change, min_size=1, max_size=20))


@settings(max_examples=300, deadline=None)
@given(zone_period_and_times())
def test_period_start_matches_the_zoneinfo_reference(case: tuple[str, Period, list[int]]) -> None:
    tz, period, ts = case
    got = period_start_ns(np.array(ts, np.int64), tz, period).tolist()
    assert got == [_reference_start_ns(t, tz, period) for t in ts]


@settings(max_examples=200, deadline=None)
@given(zone_period_and_times())
def test_periods_tile_the_time_line(case: tuple[str, Period, list[int]]) -> None:
    tz, period, ts = case
    arr = np.array(ts, np.int64)
    start, end = period_start_ns(arr, tz, period), period_end_ns(arr, tz, period)
    assert (start <= arr).all() and (arr < end).all()
    assert (period_start_ns(start, tz, period) == start).all()
    assert (period_start_ns(end, tz, period) == end).all()
    assert (period_start_ns(end - 1, tz, period) == start).all()
    assert (period_length_s(arr, tz, period) * NS_PER_S == end - start).all()
    lo = int(arr.min())
    starts = periods_between(lo, lo + 3 * DAY * NS_PER_S, tz, period)
    assert starts[0] == start[arr.argmin()]
    assert (period_end_ns(starts[:-1], tz, period) == starts[1:]).all()
    assert period_end_ns(starts[-1:], tz, period)[0] >= lo + 3 * DAY * NS_PER_S


# ---------------------------------------------------------------------------------------------
# Rollup

MINUTE_NS = 60 * NS_PER_S
ROLLUP_ZONES = [BERLIN, NEW_YORK, LORD_HOWE, KOLKATA, "America/Havana"]
COLUMNS = ("channel", "bucket_start_ns", "n", "n_good", "sum", "min", "max", "last", "last_ts_ns")


@st.composite
def base_buckets(draw: st.DrawFn) -> tuple[str, dict[str, np.ndarray]]:
    """Minute buckets over a few days around a DST change, with exact (integer) sums."""
    tz = draw(st.sampled_from(ROLLUP_ZONES))
    around = draw(st.sampled_from(_changes_s(tz)[-12:])) * NS_PER_S
    rows = draw(
        st.lists(
            st.tuples(
                st.integers(0, 2),
                st.integers(-3 * 24 * 60, 3 * 24 * 60) | st.integers(-3, 3),  # some repeat
                st.integers(0, 60),
                st.integers(-1_000, 1_000),
                st.one_of(st.none(), st.tuples(st.integers(-50, 50), st.integers(0, 59))),
            ),
            max_size=80,
        )
    )
    n_good = [min(r[2], 3) for r in rows]
    stats = [r[4] for r in rows]
    bucket = [around + r[1] * MINUTE_NS for r in rows]
    cols = {
        "channel": np.array([r[0] for r in rows], np.int32),
        "bucket_start_ns": np.array(bucket, np.int64),
        "n": np.array([r[2] for r in rows], np.int64),
        "n_good": np.array(n_good, np.int64),
        "sum": np.array([float(r[3]) for r in rows]),
        "min": np.array([np.nan if x is None else x[0] - 5.0 for x in stats]),
        "max": np.array([np.nan if x is None else x[0] + 5.0 for x in stats]),
        "last": np.array([np.nan if x is None else float(x[0]) for x in stats]),
        "last_ts_ns": np.array(
            [
                NO_TS if x is None else b + x[1] * NS_PER_S
                for b, x in zip(bucket, stats, strict=True)
            ],
            np.int64,
        ),
    }
    return tz, cols


def _roll(cols: dict[str, np.ndarray], tz: str, period: Period) -> PeriodBuckets:
    return rollup(**cols, tz=tz, period=period)


def _as_base(r: PeriodBuckets) -> dict[str, np.ndarray]:
    cols = {c: getattr(r, c) for c in COLUMNS if c != "bucket_start_ns"}
    return {**cols, "bucket_start_ns": r.period_start_ns}


def _same(a: PeriodBuckets, b: PeriodBuckets) -> None:
    for name in PeriodBuckets.__slots__:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@settings(max_examples=150, deadline=None)
@given(base_buckets())
def test_rolling_up_in_stages_equals_rolling_up_at_once(case: tuple[str, dict]) -> None:
    tz, cols = case
    hours = _roll(cols, tz, Period.HOUR)
    _same(_roll(_as_base(hours), tz, Period.DAY), _roll(cols, tz, Period.DAY))
    days = _roll(cols, tz, Period.DAY)
    _same(_roll(_as_base(days), tz, Period.MONTH), _roll(cols, tz, Period.MONTH))


def _slow_rollup(cols: dict[str, np.ndarray], tz: str, period: Period) -> dict[str, list]:
    """The rollup row by row in plain Python."""
    starts = period_start_ns(cols["bucket_start_ns"], tz, period).tolist()
    groups: dict[tuple[int, int], list[int]] = {}
    for i, key in enumerate(zip(cols["channel"].tolist(), starts, strict=True)):
        groups.setdefault(key, []).append(i)
    out: dict[str, list] = {c: [] for c in PeriodBuckets.__slots__}
    for (channel, start), rows in sorted(groups.items()):
        good = [i for i in rows if not np.isnan(cols["min"][i])]
        stamped = [i for i in rows if cols["last_ts_ns"][i] != NO_TS]
        newest = max(
            ((int(cols["last_ts_ns"][i]), float(cols["last"][i])) for i in stamped),
            default=(NO_TS, np.nan),
        )
        out["channel"].append(channel)
        out["period_start_ns"].append(start)
        out["period_end_ns"].append(one(period_end_ns([start], tz, period)))
        for name in ("n", "n_good"):
            out[name].append(sum(int(cols[name][i]) for i in rows))
        out["sum"].append(float(sum(int(cols["sum"][i]) for i in rows)))  # integer-valued: exact
        out["min"].append(min((float(cols["min"][i]) for i in good), default=np.nan))
        out["max"].append(max((float(cols["max"][i]) for i in good), default=np.nan))
        out["last_ts_ns"].append(newest[0])
        out["last"].append(newest[1])
    return out


@settings(max_examples=150, deadline=None)
@given(base_buckets(), st.sampled_from(list(Period)))
def test_rollup_matches_a_row_by_row_merge_and_keeps_totals(
    case: tuple[str, dict], period: Period
) -> None:
    tz, cols = case
    r = _roll(cols, tz, period)
    assert r.sum.sum() == cols["sum"].sum() and r.n.sum() == cols["n"].sum()
    assert r.n_good.sum() == cols["n_good"].sum()
    for name, expected in _slow_rollup(cols, tz, period).items():
        np.testing.assert_array_equal(getattr(r, name), np.array(expected), err_msg=name)


@settings(max_examples=150, deadline=None)
@given(base_buckets(), st.sampled_from(list(Period)), st.randoms(use_true_random=False))
def test_rollup_ignores_row_order(
    case: tuple[str, dict], period: Period, rnd: random.Random
) -> None:
    tz, cols = case
    cols = {**cols, "sum": cols["sum"] / 7.0 + 0.1}  # inexact sums: the order of adding matters
    size = len(cols["n"])
    order = np.array(rnd.sample(range(size), size), np.intp)
    shuffled = {name: col[order] for name, col in cols.items()}
    _same(_roll(shuffled, tz, period), _roll(cols, tz, period))


def test_rollup_of_one_channel_over_a_berlin_fall_back_day() -> None:
    day_start, day_end = period_bounds(BERLIN, Period.DAY, date(2026, 10, 25))
    minutes = np.arange(day_start - 60 * MINUTE_NS, day_end + 60 * MINUTE_NS, MINUTE_NS)
    k = len(minutes)
    ones = np.ones(k)
    r = rollup(
        channel=np.zeros(k, np.int32),
        bucket_start_ns=minutes,
        n=np.full(k, 6, np.int64),
        n_good=np.full(k, 6, np.int64),
        sum=ones,
        min=ones,
        max=np.arange(k, dtype=np.float64),
        last=np.arange(k, dtype=np.float64),
        last_ts_ns=minutes + 50 * NS_PER_S,
        tz=BERLIN,
        period=Period.DAY,
    )
    assert r.period_start_ns.tolist() == [day_start - DAY * NS_PER_S, day_start, day_end]
    assert r.sum.tolist() == [60.0, 25 * 60.0, 60.0]
    middle = 60 + 25 * 60 - 1
    assert (r.max[1], r.last[1], r.last_ts_ns[1]) == (
        middle,
        middle,
        minutes[middle] + 50 * NS_PER_S,
    )
    assert r.period_end_ns[1] == day_end and r.n[1] == 6 * 25 * 60

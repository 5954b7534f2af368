"""Roll-ups into each site's local hours and days add up to the buckets they come from."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compute.aggregate import ChannelSpec, step
from compute.calendar import Period, period_start_ns
from compute.model import NS_PER_S, Quality, ReadingBatch
from compute.rollups import PERIODS, Part, plan, rollup_deltas

MIN = 60 * NS_PER_S
FALL_BACK_NY = 1_793_509_200 * NS_PER_S  # 2026-11-01 05:00Z = 01:00 EDT, the first of two


def test_local_hours_and_days_per_site_hold_the_same_totals() -> None:
    rows = [
        (c, FALL_BACK_NY + i * MIN, float(i), Quality.GOOD)
        for c in ("ny.e", "sh.e")
        for i in range(0, 3 * 60, 1)  # three UTC hours, one reading a minute
    ]
    batch = ReadingBatch.from_rows(meter_id="m", receive_ts_ns=0, rows=rows)
    specs = {"ny.e": ChannelSpec(is_counter=True), "sh.e": ChannelSpec(is_counter=True)}
    b = step([batch], specs, {}, MIN).buckets
    got = rollup_deltas(b, {"ny.e": "America/New_York", "sh.e": "Asia/Shanghai"})
    for period in (Period.HOUR, Period.DAY):
        r = got[period]
        for c in range(2):
            assert r.sum[r.channel == c].sum() == pytest.approx(b.sum[b.channel == c].sum())
            assert r.n[r.channel == c].sum() == b.n[b.channel == c].sum()
    hours = got[Period.HOUR]
    ny = hours.bucket_start_ns[hours.channel == 0]
    assert np.diff(ny).tolist() == [3600 * NS_PER_S] * 2  # 01:00 EDT, 01:00 EST, 02:00 EST
    days = got[Period.DAY]
    assert sorted(days.bucket_start_ns[days.channel == 1].tolist()) == [
        1_793_462_400 * NS_PER_S  # 2026-11-01 00:00 in Shanghai
    ]


@settings(max_examples=80, deadline=None)
@given(
    st.integers(1_767_225_600, 1_830_297_600),  # 2026 to 2027, in s
    st.integers(1, 100 * 86_400 // 60),  # up to 100 days, in minutes
    st.sampled_from(["Europe/Berlin", "America/New_York", "Asia/Shanghai", "Asia/Kolkata"]),
    st.lists(st.integers(0, 70), min_size=3, max_size=3),
)
def test_a_plan_covers_the_period_exactly_once(
    start_s: int, minutes: int, tz: str, from_d: list[int]
) -> None:
    a = start_s // 60 * 60 * NS_PER_S
    b = a + minutes * MIN
    starts = {p: a + d * 86_400 * NS_PER_S for p, d in zip(PERIODS, from_d, strict=True)}
    parts = plan(a, b, tz, starts)
    assert parts[0].start_ns == a and parts[-1].end_ns == b
    for p, q in itertools.pairwise(parts):
        assert p.end_ns == q.start_ns and p.start_ns < p.end_ns
    for p in parts:  # each part is whole periods of its kind, from where that kind is complete
        if p.source != "buckets":
            kind = Period(p.source)
            assert p.start_ns >= starts[kind]
            assert period_start_ns(np.array([p.start_ns, p.end_ns]), tz, kind).tolist() == [
                p.start_ns,
                p.end_ns,
            ]


def _everywhere(ns: int) -> dict[Period, int]:
    return dict.fromkeys(PERIODS, ns)


def test_a_year_of_local_months_reads_month_rollups_only() -> None:
    a = 1_767_196_800 * NS_PER_S  # 2026-01-01 00:00 in Shanghai
    b = 1_798_732_800 * NS_PER_S  # 2027-01-01 00:00 in Shanghai
    assert plan(a, b, "Asia/Shanghai", _everywhere(0)) == [
        Part(source="month", start_ns=a, end_ns=b)
    ]
    # in Berlin: 31 Dec 2025 17:00 to 2026-12-31 17:00
    berlin = plan(a, b, "Europe/Berlin", _everywhere(0))
    assert [p.source for p in berlin] == ["hour", "month", "day", "hour"]
    assert berlin[2].end_ns - berlin[2].start_ns == 30 * 86_400 * NS_PER_S  # 1 to 30 December


def test_months_before_their_rollups_are_complete_come_from_days() -> None:
    a = 1_767_196_800 * NS_PER_S  # 2026-01-01 00:00 in Shanghai
    b = 1_798_732_800 * NS_PER_S  # 2027-01-01 00:00 in Shanghai
    july = 1_782_835_200 * NS_PER_S  # 2026-07-01 00:00 in Shanghai
    starts = {
        **_everywhere(0),
        Period.MONTH: july - 1,
    }  # months complete from 1 July 00:00:00 - 1 ns
    assert plan(a, b, "Asia/Shanghai", starts) == [
        Part(source="day", start_ns=a, end_ns=july),
        Part(source="month", start_ns=july, end_ns=b),
    ]

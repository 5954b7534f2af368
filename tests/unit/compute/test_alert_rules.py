"""Alert conditions and their evaluation: hysteresis, delays, quality, each rule type, replay."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from compute.alert_detect import hysteresis
from compute.alert_eval import evaluate, replay, split_by_channel, step
from compute.alert_rules import (
    AlertLevel,
    BaselineDeviation,
    DeviationMode,
    IdleConsumption,
    IdleSchedule,
    Limit,
    LimitDirection,
    RateDirection,
    RateOfChange,
    RatePer,
    Stale,
    Stuck,
)
from compute.alert_series import learn_profile, local_wall_ns
from compute.alert_state import AlertPhase, EventKind, acknowledge, new_state
from tests.unit.compute.alert_helpers import BAD, GOOD, T0, S, bind, kinds, rule, run, series

HIGH = Limit(direction=LimitDirection.HIGH, alert=25.0, action=28.0, clear=24.0)
DP_LOW = Limit(direction=LimitDirection.LOW, alert=12.0, action=10.0, clear=13.0)
R, RET, CLR = EventKind.RAISED, EventKind.REACTIVATED, EventKind.CLEARED


def test_a_flapping_signal_with_hysteresis_raises_exactly_one_alert() -> None:
    flap = [25.5 if i % 2 else 24.5 for i in range(300)]  # wanders across the alert level
    s = series([20.0] * 100 + flap + [20.0] * 100)
    _, events = run(bind(rule(HIGH)), s)
    assert kinds(events) == [(R, 101), (CLR, 400)]
    assert [e.notify for e in events] == [True, False]
    # The same signal without a real deadband flaps: the hysteresis is what keeps it quiet.
    narrow = Limit(direction=LimitDirection.HIGH, alert=25.0, clear=24.9)
    _, events = run(bind(rule(narrow, latching=False)), s)
    assert sum(e.kind is R for e in events) == 150


def test_latching_keeps_a_flapping_alert_as_one_that_pages_once() -> None:
    narrow = Limit(direction=LimitDirection.HIGH, alert=25.0, clear=24.9)
    flap = [25.5 if i % 2 else 24.5 for i in range(20)]
    _, events = run(bind(rule(narrow)), series([20.0, *flap]))
    assert {e.alert_id for e in events} == {events[0].alert_id}
    assert [e.kind for e in events if e.notify] == [R]
    assert {e.kind for e in events} == {R, CLR, RET}


def test_the_on_delay_suppresses_a_door_opening_blip_but_not_a_longer_breach() -> None:
    dp = [15.0] * 1000
    dp[100:120] = [5.0] * 20  # the door is open for 20 s
    dp[300:480] = [5.0] * 180  # the cascade is lost for 3 min
    b = bind(rule(DP_LOW, on_delay_s=60), unit="Pa")
    _, events = run(b, series(dp))
    assert kinds(events) == [(R, 360), (CLR, 480)]
    raised = events[0]
    assert raised.level is AlertLevel.ACTION  # 5 Pa is at or below the action level, 10 Pa
    assert raised.value == 5.0
    assert "at or below 10 Pa (low limit)" in raised.message


def test_the_off_delay_holds_the_alert_until_the_value_stays_back() -> None:
    v = [20.0] * 10 + [26.0] * 10 + [20.0] * 5 + [26.0] * 5 + [20.0] * 60
    _, events = run(bind(rule(HIGH, off_delay_s=30, latching=False)), series(v))
    assert kinds(events) == [(R, 10), (CLR, 60)]  # the 5 s dip at 20..25 s does not clear it


def test_action_levels_are_delayed_too_and_an_alert_keeps_its_highest_level() -> None:
    v = [20.0] * 10 + [26.0] * 20 + [29.0] * 3 + [26.0] * 10 + [29.0] * 20 + [20.0] * 5
    _, events = run(bind(rule(HIGH, on_delay_s=5, latching=False)), series(v))
    assert kinds(events) == [(R, 15), (EventKind.UPGRADED, 48), (CLR, 63)]
    assert events[-1].level is AlertLevel.ACTION


def test_bad_and_stale_quality_samples_never_raise_nor_complete_a_delay() -> None:
    b = bind(rule(HIGH, on_delay_s=10))
    _, events = run(b, series([99.0] * 50, quality=[BAD] * 25 + [3] * 25))
    assert events == []
    # A breach seen good for 5 s then only as bad data: the on-delay cannot complete on it ...
    v = [20.0] * 5 + [30.0] * 40
    q = [GOOD] * 10 + [BAD] * 35
    _, events = run(b, series(v, quality=q))
    assert events == []
    # ... and bad readings neither clear: the breach resumes and completes 10 s after it began.
    _, events = run(b, series(v + [30.0] * 20, quality=q + [GOOD] * 20))
    assert kinds(events) == [(R, 15)]
    # NaN values are bad data too; uncertain readings do alarm (a missed excursion costs more).
    _, events = run(bind(rule(HIGH)), series([np.nan, 30.0], quality=[GOOD, 1]))
    assert kinds(events) == [(R, 1)]


def test_readings_replayed_after_a_restart_are_skipped() -> None:
    b = bind(rule(HIGH))
    s = series([20.0, 30.0, 20.0])
    st, events = run(b, s)
    assert len(events) == 2
    st, again = run(b, s, state=st)
    assert again == []
    assert st.detector.seen_ts_ns == int(s.ts_ns[-1])


def test_rate_of_change_per_minute_and_per_hour() -> None:
    v = [0.0] * 120 + [2.0 * i for i in range(60)] + [120.0] * 120  # 2 units/s for a minute
    per_min = RateOfChange(
        direction=RateDirection.RISE, per=RatePer.MINUTE, alert=100.0, clear=10.0, window_s=30
    )
    _, events = run(bind(rule(per_min, latching=False)), series(v))
    assert [k for k, _ in kinds(events)] == [R, CLR]
    # The 30 s window first spans 25 s of the ramp: 50 units in 30 s = 100 per minute.
    assert kinds(events)[0] == (R, 145)
    assert events[0].value == pytest.approx(100.0)
    per_h = RateOfChange(
        direction=RateDirection.RISE, per=RatePer.HOUR, alert=6000.0, clear=600.0, window_s=30
    )
    _, events_h = run(bind(rule(per_h, latching=False)), series(v))
    assert kinds(events_h) == kinds(events)
    assert events_h[0].value == pytest.approx(6000.0)  # the same rate, per hour
    falling = RateOfChange(direction=RateDirection.FALL, per=RatePer.MINUTE, alert=100, clear=10)
    assert run(bind(rule(falling)), series(v))[1] == []
    _, events = run(bind(rule(falling)), series(v[::-1]))
    assert events[0].value == pytest.approx(-100.0)  # events report the signed rate


def test_stale_rises_at_its_own_deadline_on_a_tick_and_clears_with_data() -> None:
    b = bind(rule(Stale(max_age_s=30), latching=False))
    st, events = run(b, series([1.0] * 11), now_ns=T0 + 10 * S)
    assert events == []
    st, events = run(b, series([]), state=st, now_ns=T0 + 100 * S)  # a tick, no data
    assert kinds(events) == [(R, 40)]
    assert events[0].value == 30.0
    st, events = run(b, series([1.0], start_s=200), state=st, now_ns=T0 + 200 * S)
    assert kinds(events) == [(CLR, 200)]
    # Bad data is no data: the channel goes stale although readings keep coming.
    _, events = run(b, series([1.0] * 100, start_s=201, quality=[BAD] * 100), state=st)
    assert kinds(events) == [(R, 230)]


def test_a_channel_never_heard_from_goes_stale_after_watching_began() -> None:
    b = bind(rule(Stale(max_age_s=60)))
    _, events = run(b, series([]), now_ns=T0 + 61 * S)
    assert kinds(events) == [(R, 60)]


def test_stuck_fires_when_the_value_has_not_moved_for_the_duration() -> None:
    v = [float(i % 5) for i in range(20)] + [3.0] * 100 + [3.1, 3.2]
    b = bind(rule(Stuck(duration_s=60, tolerance=0.05), latching=False))
    _, events = run(b, series(v))
    assert kinds(events) == [(R, 20 + 60), (CLR, 120)]  # the run of 3.0 began at 20 s
    assert events[0].value == 60.0


def test_idle_consumption_while_the_production_counter_stands_still() -> None:
    cond = IdleConsumption(alert_per_h=20.0, clear_per_h=10.0)
    b = bind(
        rule(cond, latching=False),
        unit="kWh",
        is_counter=True,
        reference_id="plc.units",
        reference_is_counter=True,
    )
    minutes = 180
    energy = series([1000.0 + 50.0 / 60 * i for i in range(minutes)], step_s=60)  # 50 kW
    made = [float(min(i, 60) * 10 + max(i - 120, 0) * 10) for i in range(minutes)]
    units = series(made, step_s=60)  # runs, stands still from minute 60 to 120, runs again
    _, events = run(b, energy, reference=units)
    assert kinds(events) == [(R, 61 * 60), (CLR, 121 * 60)]
    assert events[0].value == pytest.approx(50.0)
    assert events[1].value == pytest.approx(50.0)  # still drawing, but the line runs again
    assert (
        "50 kWh/h" not in events[0].message and "20 kWh/h or more while idle" in events[0].message
    )


def test_idle_consumption_in_a_night_schedule_is_in_site_local_time() -> None:
    night = IdleSchedule(start_minute=22 * 60, end_minute=6 * 60, weekdays=frozenset({3}))
    cond = IdleConsumption(alert_per_h=5.0, clear_per_h=3.0, schedule=night)
    b = bind(rule(cond, latching=False), tz="Asia/Shanghai", is_counter=True, unit="m3")
    gas = series([100.0 + 8.0 / 60 * i for i in range(24 * 60)], step_s=60)  # 8 m3/h all day
    _, events = run(b, gas)
    # T0 is Thursday 2026-01-01 08:00 in Shanghai: the window opens at 22:00 local = 14:00 UTC
    # and, as Thursday's window, runs into Friday until 06:00 local = 22:00 UTC.
    assert kinds(events) == [(R, 14 * 3600), (CLR, 22 * 3600)]


def test_baseline_deviation_fires_on_a_synthetic_weekly_profile() -> None:
    rng = np.random.default_rng(7)
    weeks = 8
    hours = np.arange(weeks * 168)
    shape = 100 + 50 * np.sin(2 * np.pi * hours / 24)  # a daily load curve, kW
    before = T0 - weeks * 168 * 3600 * S
    hist = series(list(shape + rng.normal(0, 2, hours.size)), step_s=3600, t0_ns=before)
    profile = learn_profile(hist.ts_ns, hist.value, hist.quality, tz="Europe/Berlin")
    assert (profile.n == weeks).all()
    week = shape[:168] + rng.normal(0, 2, 168)
    week[50:53] *= 1.6  # three hours 60 % above normal
    s = series(list(week), step_s=3600)
    pct = BaselineDeviation(mode=DeviationMode.PERCENT, alert=30, clear=15, min_samples=8)
    _, events = run(bind(rule(pct, latching=False), tz="Europe/Berlin"), s, baseline=profile)
    assert kinds(events) == [(R, 50 * 3600), (CLR, 53 * 3600)]
    assert events[0].value == pytest.approx(60, abs=10)
    z = BaselineDeviation(mode=DeviationMode.ZSCORE, alert=8, clear=4, min_samples=8)
    _, events = run(bind(rule(z, latching=False)), s, baseline=profile)
    assert [e.ts_ns for e in events] == [T0 + 50 * 3600 * S, T0 + 53 * 3600 * S]
    # Without a learnt profile (or with too few samples per slot) the rule gives no verdict.
    assert run(bind(rule(pct)), s)[1] == []
    strict = BaselineDeviation(mode=DeviationMode.PERCENT, alert=30, clear=15, min_samples=9)
    assert run(bind(rule(strict)), s, baseline=profile)[1] == []


def test_local_wall_time_follows_dst() -> None:
    zone = ZoneInfo("Europe/Berlin")
    start = int(datetime(2026, 3, 28, tzinfo=UTC).timestamp()) * S
    ts = start + np.arange(0, 3 * 86400, 599, dtype=np.int64) * S
    wall = local_wall_ns(ts, "Europe/Berlin")
    for t, w in zip(ts[::7].tolist(), wall[::7].tolist(), strict=True):
        local = datetime.fromtimestamp(t / S, zone).replace(tzinfo=None)
        assert w == int((local - datetime(1970, 1, 1)).total_seconds()) * S


def naive_hysteresis(x: list[float], prev: int, a: float, act: float | None, c: float) -> list[int]:
    out = []
    for v in x:
        if act is not None and v >= act:
            prev = 2
        elif v >= a:
            prev = 1
        elif v <= c:
            prev = 0
        else:
            prev = min(prev, 1)
        out.append(prev)
    return out


@given(
    st.lists(st.floats(-10, 40, allow_nan=False), max_size=100),  # both sides of _SMALL
    st.integers(0, 2),
    st.booleans(),
)
def test_vectorised_hysteresis_matches_a_per_sample_loop(
    x: list[float], prev: int, act: bool
) -> None:
    got = hysteresis(np.array(x, np.float64), prev, 25.0, 28.0 if act else None, 24.0)
    assert got.tolist() == naive_hysteresis(x, prev, 25.0, 28.0 if act else None, 24.0)


signal = st.lists(
    st.tuples(st.sampled_from([20.0, 24.5, 25.0, 26.0, 29.0]), st.sampled_from([0, 0, 0, 1, 2])),
    min_size=1,
    max_size=80,
)


STATEFUL = [
    HIGH,
    RateOfChange(
        direction=RateDirection.EITHER, per=RatePer.MINUTE, alert=200, clear=100, window_s=2
    ),
    Stuck(duration_s=3),
]


@pytest.mark.parametrize("cond", STATEFUL, ids=["limit", "rate", "stuck"])
@settings(max_examples=60, deadline=None)
@given(signal, st.lists(st.integers(1, 79), max_size=6), st.integers(0, 4), st.integers(0, 4))
# The ACTION level turns on and off at one instant (9 s): it must end off, in any batching.
@example(sig=[(20.0, 0)] * 8 + [(29.0, 0), (24.5, 0), (20.0, 0)], cuts=[10], on_s=1, off_s=0)
def test_batches_split_anywhere_give_the_same_events(
    cond: Limit | RateOfChange | Stuck,
    sig: list[tuple[float, int]],
    cuts: list[int],
    on_s: int,
    off_s: int,
) -> None:
    b = bind(rule(cond, on_delay_s=on_s, off_delay_s=off_s, escalate_after_s=7))
    whole = series([v for v, _ in sig], quality=[q for _, q in sig])
    end = T0 + 100 * S
    _, expected = run(b, whole, now_ns=end)
    st_, got = new_state(b, since_ns=T0), []
    bounds = sorted({0, len(sig), *(c for c in cuts if c < len(sig))})
    for lo, hi in itertools.pairwise(bounds):
        part = series([v for v, _ in sig[lo:hi]], start_s=lo, quality=[q for _, q in sig[lo:hi]])
        st_, ev = evaluate(b, st_, part, now_ns=int(part.ts_ns[-1]))
        got += ev
    st_, ev = evaluate(b, st_, series([]), now_ns=end)
    assert got + ev == expected


@settings(max_examples=60, deadline=None)
@given(signal, st.integers(0, 3), st.booleans(), st.lists(st.booleans(), min_size=80, max_size=80))
def test_never_more_than_one_open_alert_per_rule_and_channel(
    sig: list[tuple[float, int]], on_s: int, latching: bool, acks: list[bool]
) -> None:
    b = bind(rule(HIGH, on_delay_s=on_s, off_delay_s=1, latching=latching, escalate_after_s=3))
    st_ = new_state(b, since_ns=T0)
    open_: str | None = None
    for i, (v, q) in enumerate(sig):
        st_, events = evaluate(b, st_, series([v], start_s=i, quality=[q]), now_ns=T0 + i * S)
        a = st_.alert
        if acks[i] and a is not None and a.phase is not AlertPhase.ACKNOWLEDGED:
            st_, ack = acknowledge(
                st_, b, alert_id=a.alert_id, who="op", when_ns=T0 + i * S, comment="seen"
            )
            events.append(ack)
        for e in events:
            if e.kind is R:
                assert open_ is None, "a second alert opened while one was open"
                open_ = e.alert_id
            else:
                assert e.alert_id == open_
            if e.phase is AlertPhase.CLOSED:
                open_ = None
        assert (st_.alert.alert_id if st_.alert else None) == open_


def test_replay_counts_each_excursion_as_an_alert() -> None:
    b = bind(rule(HIGH, on_delay_s=2))
    v = [20.0] * 10 + ([26.0] * 5 + [20.0] * 5) * 3 + [29.0] * 3
    s = series(v)
    dry = replay([b], {"m.c": s}, start_ns=T0, end_ns=int(s.ts_ns[-1]))
    assert [(a.raised_ts_ns - T0) // S for a in dry.alerts] == [12, 22, 32, 42]
    assert [a.cleared_ts_ns != -(2**63) for a in dry.alerts] == [True, True, True, False]
    assert dry.alerts[-1].level is AlertLevel.ACTION
    # As configured (latching) and with nobody acknowledging, it stays one alert.
    assert len(replay([b], {"m.c": s}, start_ns=T0, end_ns=T0, latching=True).alerts) == 1


def test_step_and_split_by_channel() -> None:
    keys = ("m.c", "m.d")
    ch = np.array([1, 0, 0, 1], np.int32)
    ts = T0 + np.array([1, 2, 1, 0], np.int64) * S
    parts = split_by_channel(keys, ch, ts, np.array([1.0, 30.0, 20.0, 2.0]), np.zeros(4, np.uint8))
    assert parts["m.c"].value.tolist() == [20.0, 30.0]
    assert parts["m.d"].ts_ns.tolist() == [T0, T0 + S]
    b = bind(rule(HIGH))
    states, events = step([b], {}, parts, now_ns=T0 + 2 * S)
    assert kinds(events) == [(R, 2)]
    assert states[b.key].alert is not None


def test_ten_thousand_readings_evaluate_well_within_a_second() -> None:
    rng = np.random.default_rng(1)
    v = 22 + rng.normal(0, 2, 10_000)
    s = series(list(v), step_s=0.1)
    b = bind(rule(HIGH, on_delay_s=5, escalate_after_s=60))
    t = time.perf_counter()
    run(b, s)
    assert time.perf_counter() - t < 0.5  # in practice a few ms; loose for a shared machine


def test_a_breach_reported_by_exception_raises_once_the_data_is_known_complete() -> None:
    b = bind(rule(DP_LOW, on_delay_s=60))
    s = series([15.0, 5.0])  # an OPC UA subscription: no new value while it stays at 5 Pa
    st_, events = run(b, s, now_ns=T0 + 300 * S)
    assert events == []  # by its readings alone, the breach lasted no time yet
    st_, events = run(b, series([]), state=st_, now_ns=T0 + 300 * S, complete_ns=T0 + 300 * S)
    assert kinds(events) == [(R, 61)]
    # A bad last reading holds nothing: the delay cannot complete on unknown data.
    st_, events = run(
        b, series([15.0, 5.0, 5.0], quality=[GOOD, GOOD, BAD]), complete_ns=T0 + 300 * S
    )
    assert events == []

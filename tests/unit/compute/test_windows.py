"""Rolling windows, demand and the watermark: kernels agree with their twins, sums are exact."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compute import demand as dm
from compute import watermark as wm
from compute import windows as w
from compute.model import NS_PER_S

MIN = 60 * NS_PER_S
QH = 15 * MIN
HOUR = 60 * MIN
DAY = 24 * HOUR
SPEC = w.RollingSpec()
SMALL = w.RollingSpec(bucket_s=60, coarse_s=300, fine_span_s=300, windows_s=(60, 300, 600, 1800))
ONE_HZ = np.array([1.0])


@dataclass(frozen=True, slots=True, kw_only=True)
class Rows:
    """The bucket-delta columns windows.advance reads (aggregate.BucketDeltas has them too)."""

    channel: np.ndarray
    bucket_start_ns: np.ndarray
    sum: np.ndarray
    n: np.ndarray
    n_good: np.ndarray


def _deltas(rows: list[tuple[int, int, float, int, int]]) -> Rows:
    """rows of (channel, bucket_start_ns, sum, n, n_good)."""
    return Rows(
        channel=np.array([r[0] for r in rows], np.int32),
        bucket_start_ns=np.array([r[1] for r in rows], np.int64),
        sum=np.array([r[2] for r in rows], np.float64),
        n=np.array([r[3] for r in rows], np.int64),
        n_good=np.array([r[4] for r in rows], np.int64),
    )


def _arrays(s: w.RollingState) -> tuple[np.ndarray, ...]:
    return (
        s.head_idx,
        s.fine_sum,
        s.fine_n,
        s.fine_n_good,
        s.coarse_sum,
        s.coarse_n,
        s.coarse_n_good,
    )


def _same(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> None:
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


# ---- the kernels agree with their twins -------------------------------------------------------

N_CH = 3
row = st.tuples(
    st.integers(0, N_CH - 1),
    st.integers(-40, 3),  # bucket index relative to now: expired, in the rings, ahead
    st.floats(0, 1e4, allow_nan=False),
    st.integers(0, 40_000),  # with n_good below: sums past 65 535 saturate
    st.integers(0, 40_000),
)
step = st.tuples(
    st.integers(-3, 25),  # now moves by this many buckets (backwards too)
    st.lists(row, max_size=12),
    st.integers(0, 12),  # allowed lateness in buckets
    st.sampled_from([0, 1, 2]),  # which month boundary the caller gives
)


@settings(max_examples=150, deadline=None)
@given(st.lists(step, min_size=1, max_size=8), st.lists(st.booleans(), min_size=N_CH))
def test_kernels_equal_their_twins(steps: list[tuple], track_list: list[bool]) -> None:
    sp = SMALL
    state = _arrays(w.new_rolling_state(sp, N_CH))
    demand = dm.new_demand_state(sp, N_CH, 0)
    dem = (demand.closed_until_ns, demand.month_start_ns, demand.max_kw, demand.max_start_ns)
    track = np.array(track_list[:N_CH], np.bool_)
    window_ns = np.array(sp.windows_s, np.int64) * NS_PER_S
    use_fine = np.array(sp.uses_fine, np.bool_)
    now_idx = 50
    for move, rows, lateness, month in steps:
        now_idx += move
        rows = sorted(rows, key=lambda r: (r[0], r[1]))
        ch = np.array([r[0] for r in rows], np.int32)
        b = np.array([(now_idx + r[1]) * MIN for r in rows], np.int64)
        s = np.array([r[2] for r in rows])
        n = np.array([r[3] for r in rows], np.int64)
        ng = np.array([r[4] for r in rows], np.int64)
        now_ns = now_idx * MIN + 7
        args = (ch, b, s, n, ng, now_ns, sp.bucket_ns, sp.coarse_ns, *state)
        got = w.advance_rolling(*args)
        _same(got, w.advance_rolling_py(*args))
        state = got[:7]
        assert state[2].max(initial=0) <= w.U16_MAX
        q = (now_ns, sp.bucket_ns, sp.coarse_ns, window_ns, use_fine, *state)
        _same(w.window_sums(*q), w.window_sums_py(*q))
        month_ns = np.full(N_CH, (now_idx // 20 + month - 1) * 20 * MIN, np.int64)
        wm = now_ns - lateness * MIN
        d = (wm, month_ns, track, sp.bucket_ns, sp.coarse_ns, state[0], state[4], state[6], *dem)
        out = dm.close_demand_kernel(*d)
        _same(out, dm.close_demand_py(*d))
        dem = out[3:7]


# ---- rolling windows ---------------------------------------------------------------------------


def _minute_values(n_minutes: int) -> np.ndarray:
    return (np.arange(n_minutes) % 7 + 1).astype(np.float64)  # exact in float32


def test_window_sums_are_exact_over_a_hand_built_sequence() -> None:
    v = _minute_values(2 * 24 * 60)
    rows = [(0, i * MIN, float(v[i]), 60, 59) for i in range(len(v))]
    state = w.new_rolling_state(SPEC, 1)
    for hour in range(48):  # one batch per hour, the clock inside the last bucket
        now = (hour + 1) * HOUR - 20 * NS_PER_S
        state, status = w.advance(state, SPEC, now, _deltas(rows[hour * 60 : (hour + 1) * 60]))
        assert (status == w.RowStatus.APPLIED).all()
        if hour < 24:
            continue
        for t in (now, now - 15 * NS_PER_S):
            got = w.query_windows(state, SPEC, t, ONE_HZ)
            for k, (win_s, fine) in enumerate(zip(SPEC.windows_s, SPEC.uses_fine, strict=True)):
                slot = MIN if fine else QH
                end = t // slot * slot
                want = v[(end - win_s * NS_PER_S) // MIN : end // MIN].sum()
                assert got.end_ns[k] == end
                assert got.sum[0, k] == want
                assert got.rate_per_h[0, k] == pytest.approx(want / (win_s / 3600))
                assert got.n[0, k] == 60 * (win_s // 60)
                assert got.n_good[0, k] == 59 * (win_s // 60)
                assert got.coverage[0, k] == pytest.approx(59 / 60)


def test_a_kwh_counter_at_a_steady_60_kw_reads_60_kw_in_every_window() -> None:
    state = w.new_rolling_state(SPEC, 1)
    rows = [(0, i * MIN, 1.0, 60, 60) for i in range(26 * 60)]
    state, _ = w.advance(state, SPEC, 26 * HOUR, _deltas(rows))
    got = w.query_windows(state, SPEC, 26 * HOUR, ONE_HZ)
    assert got.sum[0].tolist() == [15.0, 60.0, 1440.0]
    assert got.rate_per_h[0].tolist() == [60.0, 60.0, 60.0]
    assert got.coverage[0].tolist() == [1.0, 1.0, 1.0]


def test_a_silent_sensor_drains_its_15_min_window_to_zero_after_15_min() -> None:
    state = w.new_rolling_state(SPEC, 1)
    rows = [(0, i * MIN, 2.0, 60, 60) for i in range(10)]  # readings for minutes 0..9 only
    state, _ = w.advance(state, SPEC, 10 * MIN, _deltas(rows))
    for t in range(10 * MIN, 30 * MIN, MIN // 2):  # no data, the clock runs on
        state, _ = w.advance(state, SPEC, t)
        got = w.query_windows(state, SPEC, t, ONE_HZ)
        end = t // MIN
        expected = 2.0 * max(0, min(10, end) - max(0, end - 15))  # minutes 0..9 in the window
        assert got.sum[0, 0] == expected
        if t >= 25 * MIN:  # 15 min after the last bucket ended
            assert got.sum[0, 0] == 0.0 and got.coverage[0, 0] == 0.0
    later = 24 * HOUR + 15 * MIN + 10 * MIN
    state, _ = w.advance(state, SPEC, later)
    assert w.query_windows(state, SPEC, later, ONE_HZ).sum[0].tolist() == [0.0, 0.0, 0.0]


def test_expired_slots_are_zeroed_when_the_clock_jumps_past_a_whole_ring() -> None:
    state = w.new_rolling_state(SPEC, 1)
    state, _ = w.advance(state, SPEC, 10 * MIN, _deltas([(0, 5 * MIN, 3.0, 1, 1)]))
    state, _ = w.advance(state, SPEC, 3 * DAY)
    assert not state.fine_sum.any() and not state.coarse_sum.any() and not state.fine_n.any()


def test_late_rows_inside_the_rings_correct_the_windows_and_older_rows_expire() -> None:
    state = w.new_rolling_state(SPEC, 1)
    now = 30 * HOUR
    state, _ = w.advance(state, SPEC, now)
    late = [(0, now - 3 * MIN, 4.0, 1, 1), (0, now - 2 * HOUR, 5.0, 1, 1), (0, 0, 9.0, 1, 1)]
    ahead = [(0, now + MIN, 1.0, 1, 1)]
    state, status = w.advance(state, SPEC, now, _deltas(late + ahead))
    assert status.tolist() == [w.RowStatus.APPLIED] * 2 + [w.RowStatus.EXPIRED, w.RowStatus.AHEAD]
    assert w.query_windows(state, SPEC, now, ONE_HZ).sum[0].tolist() == [4.0, 4.0, 9.0]


def test_the_head_never_moves_back_and_counts_saturate() -> None:
    state = w.new_rolling_state(SPEC, 1)
    state, _ = w.advance(state, SPEC, HOUR, _deltas([(0, HOUR, 1.0, 60_000, 60_000)] * 2))
    back, status = w.advance(state, SPEC, HOUR - 5 * MIN, _deltas([(0, HOUR, 1.0, 1, 1)]))
    assert back.head_idx.tolist() == state.head_idx.tolist() and status.tolist() == [0]
    assert int(back.fine_n.max()) == w.U16_MAX and back.fine_sum.max() == 3.0


def test_a_query_before_the_head_raises_instead_of_reading_dropped_slots() -> None:
    state, _ = w.advance(w.new_rolling_state(SPEC, 1), SPEC, HOUR)
    w.query_windows(state, SPEC, HOUR - HOUR % MIN, ONE_HZ)  # the head's own bucket is fine
    with pytest.raises(w.WindowError):
        w.query_windows(state, SPEC, HOUR - 1, ONE_HZ)


def test_the_default_state_stays_under_one_kib_per_channel() -> None:
    assert (SPEC.fine_slots, SPEC.coarse_slots) == (16, 97)
    state = w.new_rolling_state(SPEC, 10)
    used = sum(a.nbytes for a in _arrays(state)) // 10
    assert used == SPEC.bytes_per_channel == 912


def test_window_specs_must_fit_their_ring() -> None:
    with pytest.raises(w.WindowError):
        w.RollingSpec(windows_s=(4000,))  # not a multiple of the 15-min coarse slot
    with pytest.raises(w.WindowError):
        w.RollingSpec(coarse_s=90)
    with pytest.raises(wm.WatermarkError):
        wm.Watermark(allowed_lateness_ns=-1)


# ---- 15-minute demand --------------------------------------------------------------------------


def _interval_rows(kwh_per_interval: list[float], start_ns: int = 0) -> Rows:
    """Each interval's energy spread evenly over its 15 minute buckets."""
    rows = [
        (0, start_ns + q * QH + m * MIN, kwh / 15, 60, 60)
        for q, kwh in enumerate(kwh_per_interval)
        for m in range(15)
    ]
    return _deltas(rows)


def test_demand_is_kwh_times_4_and_final_only_once_the_watermark_passes() -> None:
    state = w.new_rolling_state(SPEC, 1)
    state, _ = w.advance(state, SPEC, 2 * QH + 5 * MIN, _interval_rows([30.0, 45.0, 9.0]))
    demand = dm.new_demand_state(SPEC, 1, 0)
    month = np.zeros(1, np.int64)
    out = dm.close_demand(demand, state, SPEC, QH - 1, month)  # interval 0 still open
    assert out.demand_kw.size == 0 and out.state.closed_until_ns.tolist() == [0]
    out = dm.close_demand(out.state, state, SPEC, 2 * QH + 5 * MIN - 3 * MIN, month)
    assert out.interval_start_ns.tolist() == [0, QH]
    assert out.demand_kw.tolist() == pytest.approx([120.0, 180.0])
    assert out.state.max_kw.tolist() == pytest.approx([180.0])
    assert out.state.max_start_ns.tolist() == [QH]
    again = dm.close_demand(out.state, state, SPEC, 2 * QH + 5 * MIN - 3 * MIN, month)
    assert again.demand_kw.size == 0  # each interval is emitted once


def test_the_month_max_resets_at_the_month_boundary() -> None:
    month_b = 4 * QH  # the caller's site-local month start, as epoch ns
    kwh = [15.0, 75.0, 30.0, 15.0, 45.0, 30.0]  # intervals 0..3 in month A, 4..5 in month B
    state = w.new_rolling_state(SPEC, 1)
    state, _ = w.advance(state, SPEC, 6 * QH, _interval_rows(kwh))
    out = dm.close_demand(dm.new_demand_state(SPEC, 1, 0), state, SPEC, 3 * QH, np.array([0]))
    assert out.demand_kw.tolist() == [60.0, 300.0, 120.0]  # exact: whole kWh per minute
    assert out.state.max_kw.tolist() == [300.0] and np.isnan(out.closed_month_max_kw[0])
    out = dm.close_demand(out.state, state, SPEC, 6 * QH, np.array([month_b]))
    assert out.demand_kw.tolist() == [60.0, 180.0, 120.0]
    assert out.closed_month_max_kw.tolist() == [300.0]
    assert out.closed_month_max_start_ns.tolist() == [QH]
    assert out.state.max_kw.tolist() == [180.0] and out.state.max_start_ns.tolist() == [4 * QH]
    assert out.state.month_start_ns.tolist() == [month_b]


def test_a_month_closes_as_soon_as_its_last_interval_is_final() -> None:
    state = w.new_rolling_state(SPEC, 1)
    state, _ = w.advance(state, SPEC, 2 * QH, _interval_rows([10.0, 20.0]))
    out = dm.close_demand(dm.new_demand_state(SPEC, 1, 0), state, SPEC, QH, np.array([0]))
    out = dm.close_demand(out.state, state, SPEC, 2 * QH, np.array([2 * QH]))
    assert out.closed_month_max_kw.tolist() == [80.0] and np.isnan(out.state.max_kw[0])


def test_intervals_without_data_are_nan_and_untracked_channels_emit_nothing() -> None:
    state = w.new_rolling_state(SPEC, 2)
    state, _ = w.advance(state, SPEC, 3 * QH, _deltas([(1, 0, 5.0, 1, 1)]))
    demand = dm.new_demand_state(SPEC, 2, 0)
    track = np.array([True, False])
    out = dm.close_demand(demand, state, SPEC, 2 * QH, np.zeros(2, np.int64), track)
    assert out.channel.tolist() == [0, 0] and np.isnan(out.demand_kw).all()
    assert np.isnan(out.state.max_kw).all()
    with pytest.raises(w.WindowError):
        dm.close_demand(demand, state, SPEC, 2 * QH, np.array([1, 0]), track)


# ---- watermark ---------------------------------------------------------------------------------


@given(st.lists(st.integers(0, 10**12), min_size=1, max_size=30), st.integers(0, 10**10))
def test_the_watermark_never_moves_backwards(nows: list[int], lateness_ns: int) -> None:
    mark = wm.Watermark(allowed_lateness_ns=lateness_ns)
    seen = []
    for now in nows:
        mark = mark.advance(now)
        seen.append(mark.watermark_ns)
        assert mark.watermark_ns == max(nows[: len(seen)]) - lateness_ns
    assert seen == sorted(seen)


def test_a_reading_is_late_once_the_watermark_closed_its_bucket() -> None:
    mark = wm.Watermark(allowed_lateness_ns=2 * MIN).advance(10 * MIN)  # watermark at 8 min
    assert mark.watermark_ns == 8 * MIN
    assert wm.closed(7 * MIN, MIN, mark.watermark_ns) and not wm.closed(8 * MIN, MIN, 8 * MIN)
    assert wm.classify_arrival(8 * MIN - 1, MIN, mark.watermark_ns) is wm.Arrival.LATE
    assert wm.classify_arrival(8 * MIN, MIN, mark.watermark_ns) is wm.Arrival.ON_TIME
    assert wm.classify_arrival(0, MIN, wm.Watermark(allowed_lateness_ns=0).watermark_ns) == 0
    ts = np.array([MIN + 5, 9 * MIN, MIN + 9, 3 * MIN, 7 * MIN + 1], np.int64)
    ch = np.array([1, 0, 1, 0, 0], np.int32)
    assert wm.late_mask(ts, MIN, mark.watermark_ns).tolist() == [True, False, True, True, True]
    got_ch, got_b = wm.late_buckets(ch, ts, MIN, mark.watermark_ns)
    assert got_ch.tolist() == [0, 0, 1] and got_b.tolist() == [3 * MIN, 7 * MIN, MIN]

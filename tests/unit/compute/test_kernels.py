"""The numba kernels agree with their pure-Python twins, and the twins obey the domain rules."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compute import kernels as k

BUCKET_NS = 60_000_000_000


@st.composite
def sorted_samples(draw: st.DrawFn) -> tuple[np.ndarray, ...]:
    n_ch = draw(st.integers(1, 3))
    rows = draw(
        st.lists(
            st.tuples(
                st.integers(0, n_ch - 1),
                st.integers(0, 10**12),
                st.floats(0, 1000, allow_nan=False),
                st.booleans() | st.just(True),
            ),
            max_size=60,
            unique_by=lambda r: (r[0], r[1]),
        )
    )
    rows.sort(key=lambda r: (r[0], r[1]))
    ch = np.array([r[0] for r in rows], dtype=np.int32)
    ts = np.array([r[1] for r in rows], dtype=np.int64)
    val = np.array([r[2] for r in rows], dtype=np.float64)
    good = np.array([r[3] for r in rows], dtype=np.bool_)
    modulus = np.array(
        draw(st.lists(st.sampled_from([0.0, 1000.0, 655.36]), min_size=n_ch, max_size=n_ch))
    )
    return ch, ts, val, good, modulus


def _extra(s: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """rebase (a replacement every 7th sample), modulus, a max rate on channel 0, empty state."""
    ts, modulus = s[1], s[4]
    rebase = np.where(np.arange(len(ts)) % 7 == 6, 5.0, np.nan)
    rate = np.zeros(len(modulus))
    rate[0] = 2e-7  # per s: ts are ns up to 1e12, values up to 1000: some spikes, some not
    state = np.full((len(modulus), 2), k.NO_TS, np.int64)
    slack = np.full(len(modulus), 0.5)
    return rebase, modulus, rate, slack, state, np.zeros((len(modulus), 2))


def _same(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> None:
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


@settings(max_examples=200, deadline=None)
@given(sorted_samples())
def test_counter_deltas_twin(s: tuple[np.ndarray, ...]) -> None:
    ch, ts, val, good, _ = s
    _same(
        k.counter_deltas(ch, ts, val, good, *_extra(s)),
        k.counter_deltas_py(ch, ts, val, good, *_extra(s)),
    )


@settings(max_examples=200, deadline=None)
@given(sorted_samples())
def test_deltas_are_never_negative_and_spread_conserves_them(s: tuple[np.ndarray, ...]) -> None:
    ch, ts, val, good, modulus = s
    start, delta, *_ = k.counter_deltas(ch, ts, val, good, *_extra(s))
    assert not np.any(delta[~np.isnan(delta)] < 0)
    gap_ns = np.full(len(modulus), 10**11, np.int64)
    spread = k.spread_deltas(ch, start, ts, delta, gap_ns, BUCKET_NS)
    _same(spread, k.spread_deltas_py(ch, start, ts, delta, gap_ns, BUCKET_NS))
    o_amt, o_est = spread[2], spread[3]
    assert o_amt.sum() == pytest.approx(np.nansum(delta), rel=1e-9, abs=1e-9)
    assert np.all((o_est >= 0) & (o_est <= o_amt + 1e-9))


@settings(max_examples=200, deadline=None)
@given(sorted_samples())
def test_bucket_stats_twin(s: tuple[np.ndarray, ...]) -> None:
    ch, ts, val, good, _ = s
    got = k.bucket_stats(ch, ts, val, good, BUCKET_NS)
    _same(got, k.bucket_stats_py(ch, ts, val, good, BUCKET_NS))
    assert got[2].sum() == len(ts) and got[3].sum() == good.sum()


def _counter(
    values: list[float],
    modulus: float = 0.0,
    *,
    good: list[bool] | None = None,
    rebase: list[float] | None = None,
    max_rate_per_s: float = 0.0,
    rate_slack: float = 0.0,
) -> tuple[np.ndarray, ...]:
    """One channel sampled once a second."""
    n = len(values)
    return k.counter_deltas_py(
        np.zeros(n, np.int32),
        np.arange(n, dtype=np.int64) * 10**9,
        np.array(values),
        np.array(good if good is not None else [True] * n),
        np.array(rebase if rebase is not None else [np.nan] * n),
        np.array([modulus]),
        np.array([max_rate_per_s]),
        np.array([rate_slack]),
        np.full((1, 2), k.NO_TS, np.int64),
        np.zeros((1, 2)),
    )


def _deltas(values: list[float], modulus: float = 0.0, **kw: Any) -> list[float]:
    return _counter(values, modulus, **kw)[1][1:].tolist()


def _events(values: list[float], modulus: float = 0.0, **kw: Any) -> list[k.CounterEvent]:
    return [k.CounterEvent(e) for e in _counter(values, modulus, **kw)[2]]


def test_a_rollover_near_the_register_maximum_counts_as_a_wrap() -> None:
    assert _deltas([42949672.90, 0.05], 42949672.96) == pytest.approx([0.11])


def test_a_reset_counts_from_the_new_base_and_never_a_phantom_wrap() -> None:
    got = _deltas([5000.0, 10.0, 12.0], 42949672.96)
    assert np.isnan(got[0]) and got[1] == pytest.approx(2.0)  # 5000 -> 10 unknown, then +2
    assert _events([5000.0, 10.0, 12.0], 42949672.96)[1:] == [
        k.CounterEvent.DROP,
        k.CounterEvent.RESET,
    ]


def test_a_counter_without_modulus_never_goes_negative() -> None:
    got = _deltas([100.0, 99.0, 101.0])
    assert np.isnan(got[0]) and got[1] == pytest.approx(1.0)  # 99 was a glitch: 100 -> 101


def test_a_one_sample_glitch_to_zero_is_excluded_and_nothing_is_counted_twice() -> None:
    got = _deltas([500.0, 0.0, 502.0, 503.0])
    assert np.isnan(got[0]) and got[1:] == pytest.approx([2.0, 1.0])  # not 502 after "reset"


def test_a_spike_above_the_maximum_rate_is_flagged_and_not_counted() -> None:
    values = [100.0, 101.0, 9000.0, 103.0, 104.0]
    got = _deltas(values, max_rate_per_s=5.0)
    assert np.isnan(got[1]) and got[2] == pytest.approx(2.0) and got[3] == pytest.approx(1.0)
    assert _events(values, max_rate_per_s=5.0)[2] is k.CounterEvent.SPIKE
    assert np.nansum(got) == pytest.approx(104.0 - 100.0)


def test_a_step_that_persists_restarts_counting_from_it() -> None:
    values = [100.0, 101.0, 9000.0, 9001.0, 9003.0]
    got = _deltas(values, max_rate_per_s=5.0)
    assert got == pytest.approx([1.0, np.nan, 1.0, 2.0], nan_ok=True)
    assert _events(values, max_rate_per_s=5.0)[3] is k.CounterEvent.RESET


def test_one_step_of_resolution_between_close_readings_is_not_a_spike() -> None:
    # 0.01 kWh steps read 10 ms apart: 3.6 MW "rate" on a 2 MW feeder, but one step of the counter
    n = 3
    _, delta, event, _, _ = k.counter_deltas_py(
        np.zeros(n, np.int32),
        np.array([0, 10_000_000, 20_000_000], np.int64),
        np.array([5.00, 5.01, 5.02]),
        np.ones(n, np.bool_),
        np.full(n, np.nan),
        np.zeros(1),
        np.array([2000 / 3600]),
        np.array([0.01]),
        np.full((1, 2), k.NO_TS, np.int64),
        np.zeros((1, 2)),
    )
    assert delta[1:] == pytest.approx([0.01, 0.01])
    assert event.tolist() == [k.CounterEvent.NONE, k.CounterEvent.COUNTED, k.CounterEvent.COUNTED]


def test_a_wrap_faster_than_the_maximum_rate_is_a_spike() -> None:
    assert _events([99.0, 1.0], 100.0, max_rate_per_s=1.0)[1] is k.CounterEvent.SPIKE
    assert _events([99.0, 1.0], 100.0, max_rate_per_s=5.0)[1] is k.CounterEvent.WRAP


def test_a_meter_replacement_closes_the_gap_exactly() -> None:
    # old meter 1000 -> final 1004 at the swap; the new one starts at 3 and reads 5 a second later
    values = [1000.0, 1002.0, 1004.0, 5.0]
    got = _deltas(values, rebase=[np.nan, np.nan, 3.0, np.nan])
    assert got == pytest.approx([2.0, 2.0, 2.0])
    assert sum(got) == (1004.0 - 1000.0) + (5.0 - 3.0)


def test_bad_samples_neither_count_nor_move_the_base() -> None:
    _, delta, _, st, sv = _counter([1.0, 999.0, 2.0], good=[True, False, True])
    assert np.isnan(delta[1]) and delta[2] == 1.0 and (st[0, 0], sv[0, 0]) == (2 * 10**9, 2.0)


def _spread(a_s: int, b_s: int, amount: float, gap_s: int) -> tuple[np.ndarray, ...]:
    return k.spread_deltas_py(
        np.zeros(1, np.int32),
        np.array([a_s * 10**9]),
        np.array([b_s * 10**9]),
        np.array([amount]),
        np.array([gap_s * 10**9]),
        BUCKET_NS,
    )


def test_a_delta_over_a_gap_is_spread_in_proportion_to_time_and_marked_estimated() -> None:
    _o_ch, o_b, o_amt, o_est = _spread(30, 150, 12.0, gap_s=3)
    assert o_b.tolist() == [0, BUCKET_NS, 2 * BUCKET_NS]
    assert o_amt.tolist() == pytest.approx([3.0, 6.0, 3.0]) and o_est.tolist() == o_amt.tolist()


def test_a_delta_within_the_poll_interval_is_measured() -> None:
    _o_ch, _o_b, o_amt, o_est = _spread(58, 61, 3.0, gap_s=3)
    assert o_amt.tolist() == pytest.approx([2.0, 1.0]) and o_est.tolist() == [0.0, 0.0]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-(10**15), 10**15) | st.just(k.NO_TS), max_size=50))
def test_bucket_index_divides_like_floor_division(ts: list[int]) -> None:
    arr = np.array(sorted(ts) + ts, dtype=np.int64)  # a sorted run, then any order
    np.testing.assert_array_equal(k._bucket_index(arr, BUCKET_NS), arr // BUCKET_NS)

"""The numba kernels agree with their pure-Python twins, and the twins obey the domain rules."""

from __future__ import annotations

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


def _same(a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> None:
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


@settings(max_examples=200, deadline=None)
@given(sorted_samples())
def test_counter_deltas_twin(s: tuple[np.ndarray, ...]) -> None:
    ch, ts, val, good, modulus = s
    state_ts = np.full(len(modulus), k.NO_TS, dtype=np.int64)
    state_val = np.zeros(len(modulus))
    _same(
        k.counter_deltas(ch, ts, val, good, modulus, state_ts, state_val),
        k.counter_deltas_py(ch, ts, val, good, modulus, state_ts, state_val),
    )


@settings(max_examples=200, deadline=None)
@given(sorted_samples())
def test_deltas_are_never_negative_and_spread_conserves_them(s: tuple[np.ndarray, ...]) -> None:
    ch, ts, val, good, modulus = s
    state_ts = np.full(len(modulus), k.NO_TS, dtype=np.int64)
    start, delta, _, _ = k.counter_deltas(
        ch, ts, val, good, modulus, state_ts, np.zeros(len(modulus))
    )
    assert not np.any(delta[~np.isnan(delta)] < 0)
    o_ch, o_b, o_amt = k.spread_deltas(ch, start, ts, delta, BUCKET_NS)
    _same((o_ch, o_b, o_amt), k.spread_deltas_py(ch, start, ts, delta, BUCKET_NS))
    assert o_amt.sum() == pytest.approx(np.nansum(delta), rel=1e-9, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(sorted_samples())
def test_bucket_stats_twin(s: tuple[np.ndarray, ...]) -> None:
    ch, ts, val, good, _ = s
    got = k.bucket_stats(ch, ts, val, good, BUCKET_NS)
    _same(got, k.bucket_stats_py(ch, ts, val, good, BUCKET_NS))
    assert got[2].sum() == len(ts) and got[3].sum() == good.sum()


def _deltas(values: list[float], modulus: float) -> list[float]:
    n = len(values)
    _, delta, _, _ = k.counter_deltas_py(
        np.zeros(n, np.int32),
        np.arange(n, dtype=np.int64),
        np.array(values),
        np.ones(n, np.bool_),
        np.array([modulus]),
        np.array([k.NO_TS], np.int64),
        np.zeros(1),
    )
    return delta[1:].tolist()


def test_a_rollover_near_the_register_maximum_counts_as_a_wrap() -> None:
    assert _deltas([42949672.90, 0.05], 42949672.96) == pytest.approx([0.11])


def test_a_drop_far_from_the_maximum_is_a_reset_not_a_phantom_wrap() -> None:
    got = _deltas([5000.0, 10.0, 12.0], 42949672.96)
    assert np.isnan(got[0]) and got[1] == pytest.approx(2.0)


def test_a_counter_without_modulus_never_goes_negative() -> None:
    got = _deltas([100.0, 99.0, 101.0], 0.0)
    assert np.isnan(got[0]) and got[1] == pytest.approx(2.0)


def test_bad_samples_neither_count_nor_move_the_base() -> None:
    n = 3
    _, delta, s_ts, s_val = k.counter_deltas_py(
        np.zeros(n, np.int32),
        np.arange(n, dtype=np.int64),
        np.array([1.0, 999.0, 2.0]),
        np.array([True, False, True]),
        np.zeros(1),
        np.array([k.NO_TS], np.int64),
        np.zeros(1),
    )
    assert np.isnan(delta[1]) and delta[2] == 1.0 and (s_ts[0], s_val[0]) == (2, 2.0)


def test_a_delta_over_a_gap_is_spread_in_proportion_to_time() -> None:
    _o_ch, o_b, o_amt = k.spread_deltas_py(
        np.zeros(1, np.int32),
        np.array([30 * 10**9]),
        np.array([150 * 10**9]),
        np.array([12.0]),
        BUCKET_NS,
    )
    assert o_b.tolist() == [0, BUCKET_NS, 2 * BUCKET_NS] and o_amt.tolist() == pytest.approx(
        [3.0, 6.0, 3.0]
    )

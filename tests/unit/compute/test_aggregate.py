"""One aggregation step: replays are idempotent, wraps count, gauges and counters bucket apart."""

from __future__ import annotations

from random import Random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compute.aggregate import ChannelSpec, Replacement, step
from compute.kernels import CounterEvent
from compute.model import NS_PER_S, Quality, ReadingBatch

MIN = 60 * NS_PER_S
SPECS = {
    "m.e": ChannelSpec(is_counter=True, wrap_modulus=100.0),
    "m.t": ChannelSpec(is_counter=False),
}
G = Quality.GOOD


def _b(*rows: tuple[str, int, float, Quality]) -> ReadingBatch:
    return ReadingBatch.from_rows(meter_id="m", receive_ts_ns=7, rows=list(rows))


def test_replay_after_the_state_was_saved_adds_nothing() -> None:
    batch = _b(("m.e", 0, 10.0, G), ("m.e", 20 * NS_PER_S, 12.0, G))
    first = step([batch], SPECS, {}, MIN)
    again = step([batch], SPECS, first.state, MIN)
    assert first.buckets.sum.tolist() == [2.0]
    assert again.buckets.sum.size == 0 and again.state == {} and len(again.late.ts_ns) == 2


def test_a_late_reading_is_handed_back_for_recounting_not_aggregated_in_the_step() -> None:
    first = step([_b(("m.e", 0, 10.0, G), ("m.e", 20 * NS_PER_S, 12.0, G))], SPECS, {}, MIN)
    late = step([_b(("m.e", 10 * NS_PER_S, 11.0, G))], SPECS, first.state, MIN)
    assert late.readings.ts_ns.tolist() == late.late.ts_ns.tolist() == [10 * NS_PER_S]
    assert late.buckets.sum.size == 0 and late.state == {}


def test_duplicates_in_one_poll_count_once_and_order_is_restored() -> None:
    a = _b(("m.e", 20 * NS_PER_S, 12.0, G))
    b = _b(("m.e", 0, 10.0, G))
    r = step([a, b, a], SPECS, {}, MIN)
    assert r.readings.ts_ns.tolist() == [0, 20 * NS_PER_S]
    assert r.buckets.sum.tolist() == [2.0]


def test_state_carries_the_counter_base_across_steps() -> None:
    first = step([_b(("m.e", 0, 98.0, G))], SPECS, {}, MIN)
    second = step([_b(("m.e", 10 * NS_PER_S, 3.0, G))], SPECS, first.state, MIN)
    assert second.buckets.sum.tolist() == pytest.approx([5.0])  # wrapped at 100
    assert second.state["m.e"].counter_value == 3.0


def test_gauges_and_counters_share_a_step() -> None:
    r = step([_b(("m.e", 0, 1.0, G), ("m.t", 0, 20.0, G), ("m.t", 5, 22.0, G))], SPECS, {}, MIN)
    t = r.buckets.keys.index("m.t")
    row = int(np.flatnonzero(r.buckets.channel == t)[0])
    assert (r.buckets.n[row], r.buckets.sum[row], r.buckets.min[row], r.buckets.max[row]) == (
        2,
        42.0,
        20.0,
        22.0,
    )


def test_an_empty_step_changes_nothing() -> None:
    r = step([], SPECS, {}, MIN)
    assert r.state == {} and r.buckets.sum.size == 0


def test_a_configured_replacement_is_applied_once_when_readings_pass_it() -> None:
    swap = Replacement(ts_ns=30 * NS_PER_S, old_final=1004.0, new_initial=3.0)
    specs = {"m.e": ChannelSpec(is_counter=True, replacements=(swap,))}
    first = step([_b(("m.e", 0, 1000.0, G), ("m.e", 20 * NS_PER_S, 1003.0, G))], specs, {}, MIN)
    second = step([_b(("m.e", 40 * NS_PER_S, 5.0, G))], specs, first.state, MIN)
    again = step([_b(("m.e", 50 * NS_PER_S, 6.0, G))], specs, second.state, MIN)
    total = sum(r.buckets.sum.sum() for r in (first, second, again))
    assert total == pytest.approx((1004.0 - 1000.0) + (6.0 - 3.0))
    assert second.events.event.tolist() == [CounterEvent.REPLACEMENT]


def test_a_spike_is_an_event_and_not_in_the_buckets() -> None:
    specs = {"m.e": ChannelSpec(is_counter=True, max_rate_per_s=1.0)}
    rows = [("m.e", i * NS_PER_S, v, G) for i, v in enumerate([10.0, 11.0, 5000.0, 12.0])]
    r = step([_b(*rows)], specs, {}, MIN)
    assert r.buckets.sum.tolist() == pytest.approx([2.0])
    assert list(zip(r.events.ts_ns.tolist(), r.events.event.tolist(), strict=True)) == [
        (2 * NS_PER_S, CounterEvent.SPIKE)
    ]


@st.composite
def polls(draw: st.DrawFn) -> list[ReadingBatch]:
    """A counter and a gauge read over ten minutes, cut into polls of a few readings."""
    n = draw(st.integers(1, 40))
    ts = sorted(draw(st.lists(st.integers(0, 600), min_size=n, max_size=n, unique=True)))
    steps = draw(st.lists(st.floats(0, 50), min_size=n, max_size=n))
    counter = np.cumsum(steps) % 1000.0  # wraps at 1000
    rows = [("m.e", t * NS_PER_S, float(v), G) for t, v in zip(ts, counter, strict=True)]
    rows += [("m.t", t * NS_PER_S, float(t % 17), G) for t in ts]
    cut = draw(st.integers(1, 8))
    return [_b(*rows[i : i + cut]) for i in range(0, len(rows), cut)]


@settings(max_examples=100, deadline=None)
@given(polls(), st.randoms())
def test_buckets_do_not_depend_on_order_or_duplication(
    batches: list[ReadingBatch], rnd: Random
) -> None:
    specs = {"m.e": ChannelSpec(is_counter=True, wrap_modulus=1000.0), "m.t": SPECS["m.t"]}
    once = step(batches, specs, {}, MIN).buckets
    shuffled = batches + rnd.sample(batches, k=len(batches) // 2)  # redelivered, any order
    rnd.shuffle(shuffled)
    again = step(shuffled, specs, {}, MIN).buckets
    for name in ("channel", "bucket_start_ns", "n", "n_good", "sum", "min", "max", "last"):
        np.testing.assert_array_equal(getattr(once, name), getattr(again, name))

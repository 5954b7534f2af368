"""One aggregation step: replays are idempotent, wraps count, gauges and counters bucket apart."""

from __future__ import annotations

import numpy as np
import pytest

from compute.aggregate import ChannelSpec, step
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
    assert again.buckets.sum.size == 0 and again.state == {} and again.behind == 2


def test_a_late_reading_is_kept_for_the_store_but_not_aggregated_twice() -> None:
    first = step([_b(("m.e", 0, 10.0, G), ("m.e", 20 * NS_PER_S, 12.0, G))], SPECS, {}, MIN)
    late = step([_b(("m.e", 10 * NS_PER_S, 11.0, G))], SPECS, first.state, MIN)
    assert late.readings.ts_ns.tolist() == [10 * NS_PER_S] and late.behind == 1
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

"""Meter replacements recorded after the fact: the recount of the stored readings equals counting
them with the replacement configured from the start; the event's checks and its message."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from compute.aggregate import ChannelSpec, step
from compute.buckets import BucketDeltas, bucket_columns, merge_buckets
from compute.errors import CodecError
from compute.late import stored_readings
from compute.meter_events import (
    ReplacementError,
    ReplacementEvent,
    check_event,
    decode_event,
    encode_event,
    recount,
)
from compute.model import NS_PER_S, Quality, ReadingBatch

S = NS_PER_S
EVENT = ReplacementEvent(
    channel_id="m.e",
    at_ns=25 * S,
    old_final=102.5,
    new_initial=5.0,
    reason="WO-1",
    actor="eng",
    recorded_at_ns=99 * S,
)


def _sums(b: BucketDeltas) -> dict[int, float]:
    return {
        int(t): round(float(v), 9)
        for t, v in zip(b.bucket_start_ns, b.sum, strict=True)
        if abs(v) > 1e-12
    }


@pytest.mark.parametrize("bucket_s", [10, 60])
@pytest.mark.parametrize(
    ("old", "new", "rate"),
    [
        ([100.0, 101.0, 102.0], [5.5, 6.5, 7.5, 9.0], 0.0),  # the new meter starts lower
        ([100.0, 101.0, 102.0], [205.5, 206.5, 207.5], 0.0),  # higher: a phantom advance
        ([100.0, 101.0, 102.0], [205.5, 206.5, 207.5], 1.0),  # higher, held as a spike
        ([100.0, 101.0, 102.0], [5.5], 0.0),  # one reading of the new meter so far
    ],
)
def test_recounting_after_the_fact_equals_the_configured_replacement(
    bucket_s: int, old: list[float], new: list[float], rate: float
) -> None:
    bucket_ns = bucket_s * S
    ts = [i * 10 * S for i in range(len(old) + len(new))]
    rows = [("m.e", t, v, Quality.GOOD) for t, v in zip(ts, old + new, strict=True)]
    batch = ReadingBatch.from_rows(meter_id="m", receive_ts_ns=0, rows=rows)
    without = ChannelSpec(is_counter=True, max_rate_per_s=rate)
    with_it = dataclasses.replace(without, replacements=(EVENT.replacement,))
    configured = step([batch], {"m.e": with_it}, {}, bucket_ns)
    counted = step([batch], {"m.e": without}, {}, bucket_ns)
    stored = stored_readings(("m.e",), [(0, t, v, int(q)) for _, t, v, q in rows[len(old) - 1 :]])
    got = recount(stored, without, with_it, bucket_ns)
    fixed = merge_buckets(
        ("m.e",), [bucket_columns(counted.buckets), bucket_columns(got.buckets)], bucket_ns
    )
    assert _sums(fixed) == _sums(configured.buckets) != _sums(counted.buckets)
    state = configured.state["m.e"]
    if got.converged:
        assert counted.state["m.e"].counter_ts_ns == state.counter_ts_ns
    else:  # the recount's state is the one to continue from
        assert got.state_ts == (state.counter_ts_ns, state.held_ts_ns)
        assert got.state_value[0] == state.counter_value


def test_the_recount_of_readings_that_do_not_reach_the_swap_is_nothing() -> None:
    stored = stored_readings(("m.e",), [(0, 0, 100.0, 0), (0, 10 * S, 101.0, 0)])
    spec = ChannelSpec(is_counter=True)
    with_it = dataclasses.replace(spec, replacements=(EVENT.replacement,))
    got = recount(stored, spec, with_it, 10 * S)
    assert got.converged and not np.any(got.buckets.sum)


def test_the_event_is_checked_against_the_readings_around_it() -> None:
    check_event(EVENT, [0], (20 * S, 102.0), (30 * S, 5.5))
    with pytest.raises(ReplacementError, match="at that instant already"):
        check_event(EVENT, [25 * S], None, None)
    with pytest.raises(ReplacementError, match=r"old_final 102.5 is below .* 103"):
        check_event(EVENT, [], (20 * S, 103.0), None)
    with pytest.raises(ReplacementError, match=r"new_initial 5 is above .* 4"):
        check_event(EVENT, [], None, (30 * S, 4.0))
    with pytest.raises(ReplacementError, match=r"finite reading >= 0.*needs its reason"):
        dataclasses.replace(EVENT, old_final=-1.0, reason=" ")


def test_the_control_message_round_trips_and_garbage_is_named() -> None:
    assert decode_event(encode_event(EVENT)) == EVENT
    with pytest.raises(CodecError, match="not a meter-replacement event"):
        decode_event(b'{"channel_id": "m.e"}')
    with pytest.raises(CodecError):
        decode_event(b"PP\x03")

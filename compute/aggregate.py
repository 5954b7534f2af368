"""One aggregation step: readings of many batches + channel state -> bucket deltas + new state.

Pure: the aggregator service feeds it decoded batches and persists what it returns, atomically.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from compute import kernels
from compute.buckets import BucketDeltas, merge_buckets, no_buckets
from compute.kernels import CounterEvent
from compute.model import NO_TS, Quality, ReadingBatch

NEVER_NS = np.iinfo(np.int64).max


@dataclass(frozen=True, slots=True, kw_only=True)
class Replacement:
    """A meter replaced at ts_ns: the old meter's final reading, the new one's initial one."""

    ts_ns: int
    old_final: float
    new_initial: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelSpec:
    """What the step needs to know of a channel.

    A counter wraps at wrap_modulus (0: never), advances at most max_rate_per_s (0: no limit;
    faster is a spike), and an interval between good readings longer than gap_ns is a gap whose
    consumption is spread over the buckets it spans as estimated.
    """

    is_counter: bool
    wrap_modulus: float = 0.0
    max_rate_per_s: float = 0.0
    resolution: float = 0.0  # one step of the counter: the rate check's slack
    gap_ns: int = NEVER_NS
    replacements: tuple[Replacement, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelState:
    """Per-channel progress, stored with the effects it produced.

    last_ts_ns is the newest reading handled (a replayed reading at or before it is a duplicate);
    counter_ts_ns / counter_value are the base of the next delta; held_ts_ns / held_value a
    counter reading held back as a spike or a drop until the next one decides (NO_TS: none).
    """

    last_ts_ns: int = NO_TS
    counter_ts_ns: int = NO_TS
    counter_value: float = 0.0
    held_ts_ns: int = NO_TS
    held_value: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Readings:
    """Accepted readings, columnar; `channel` indexes `keys`."""

    keys: tuple[str, ...]
    channel: npt.NDArray[np.int32]
    ts_ns: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]
    quality: npt.NDArray[np.uint8]
    receive_ts_ns: npt.NDArray[np.int64]
    server_ts_ns: npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True, kw_only=True)
class CounterEvents:
    """Counter samples worth an audit trail: wraps, spikes, drops, resets and replacements."""

    keys: tuple[str, ...]
    channel: npt.NDArray[np.int32]
    ts_ns: npt.NDArray[np.int64]
    event: npt.NDArray[np.int8]  # kernels.CounterEvent
    value: npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, kw_only=True)
class StepResult:
    """What a step produced. `readings` holds every distinct reading, to be stored idempotently;
    `fresh` marks those after their channel's last handled reading, which cannot be stored yet;
    `late` holds the others (replays, or late arrivals: compute.late recounts the ones not
    stored yet), left out of `buckets`.
    """

    readings: Readings
    fresh: npt.NDArray[np.bool_]
    buckets: BucketDeltas
    state: dict[str, ChannelState]
    events: CounterEvents
    late: Readings


def _concat(batches: Sequence[ReadingBatch], keys: tuple[str, ...]) -> Readings:
    pos = {k: i for i, k in enumerate(keys)}
    parts = []
    for b in batches:
        lookup = np.array([pos[c] for c in b.channel_ids], dtype=np.int32)
        parts.append(
            (lookup[b.channel_index], b.ts_ns, b.value, b.quality, b.receive_ts_ns, b.server_ts_ns)
        )
    return Readings(
        keys=keys,
        channel=np.concatenate([p[0] for p in parts]).astype(np.int32),
        ts_ns=np.concatenate([p[1] for p in parts]).astype(np.int64),
        value=np.concatenate([p[2] for p in parts]).astype(np.float64),
        quality=np.concatenate([p[3] for p in parts]).astype(np.uint8),
        receive_ts_ns=np.concatenate([np.full(len(p[1]), p[4], dtype=np.int64) for p in parts]),
        server_ts_ns=np.concatenate([p[5] for p in parts]).astype(np.int64),
    )


def select(r: Readings, index: npt.NDArray[np.intp] | npt.NDArray[np.bool_]) -> Readings:
    return Readings(
        keys=r.keys,
        channel=r.channel[index],
        ts_ns=r.ts_ns[index],
        value=r.value[index],
        quality=r.quality[index],
        receive_ts_ns=r.receive_ts_ns[index],
        server_ts_ns=r.server_ts_ns[index],
    )


def _by_channel_then_time(
    ch: npt.NDArray[np.int32], ts: npt.NDArray[np.int64]
) -> npt.NDArray[np.intp]:
    """The order sorting readings by (channel, ts). Each meter's polls come in time order, so
    a stable sort by channel alone (a radix sort for up to 65,536 channels) usually suffices;
    a full sort is the fallback when some channel's readings go back in time."""
    if len(ch) and int(ch.max()) < 1 << 16:
        order = np.argsort(ch.astype(np.uint16), kind="stable")
        c, t = ch[order], ts[order]
        if not np.any((c[1:] == c[:-1]) & (t[1:] < t[:-1])):
            return order
    return np.lexsort((ts, ch))


def sorted_unique(r: Readings) -> Readings:
    """Sort by (channel, ts) and keep one reading per (channel, ts): the identity of a reading."""
    order = _by_channel_then_time(r.channel, r.ts_ns)
    ch, ts = r.channel[order], r.ts_ns[order]
    first = np.ones(len(order), dtype=np.bool_)
    first[1:] = (ch[1:] != ch[:-1]) | (ts[1:] != ts[:-1])
    return select(r, order[first])


def _counter_rows(
    r: Readings,
    is_counter: npt.NDArray[np.bool_],
    specs: Sequence[ChannelSpec],
    last_ts: npt.NDArray[np.int64],
) -> tuple[
    npt.NDArray[np.int32],
    npt.NDArray[np.int64],
    npt.NDArray[np.float64],
    npt.NDArray[np.bool_],
    npt.NDArray[np.float64],
]:
    """Good-or-not counter readings plus one pseudo-reading per replacement they now pass,
    sorted by (channel, ts) with a replacement after a reading at the same instant."""
    mask = is_counter[r.channel]
    ch, ts, val = r.channel[mask], r.ts_ns[mask], r.value[mask]
    good = r.quality[mask] == Quality.GOOD
    pseudo: list[tuple[int, Replacement]] = []
    if with_swaps := [c for c, sp in enumerate(specs) if sp.replacements]:
        newest = np.full(len(specs), NO_TS, np.int64)
        np.maximum.at(newest, ch, ts)
        pseudo = [
            (c, x)
            for c in with_swaps
            for x in specs[c].replacements
            if last_ts[c] < x.ts_ns <= newest[c]
        ]
    if not pseudo:  # readings are sorted already
        return ch, ts, val, good, np.full(len(ch), np.nan)
    rebase = np.full(len(ch) + len(pseudo), np.nan)
    rebase[len(ch) :] = [x.new_initial for _, x in pseudo]
    ch = np.concatenate([ch, np.array([c for c, _ in pseudo], np.int32)])
    ts = np.concatenate([ts, np.array([x.ts_ns for _, x in pseudo], np.int64)])
    val = np.concatenate([val, np.array([x.old_final for _, x in pseudo], np.float64)])
    good = np.concatenate([good, np.ones(len(pseudo), np.bool_)])
    order = np.lexsort((~np.isnan(rebase), ts, ch))
    return ch[order], ts[order], val[order], good[order], rebase[order]


@dataclass(frozen=True, slots=True, kw_only=True)
class CounterPass:
    """Counter readings in kernel order with what each did, the consumption spread over buckets
    (rows in merge_buckets' part order), and the counter state after them."""

    channel: npt.NDArray[np.int32]
    ts_ns: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]
    event: npt.NDArray[np.int8]
    spread: tuple[npt.NDArray[np.generic], ...]
    state_ts: npt.NDArray[np.int64]
    state_value: npt.NDArray[np.float64]


def counter_pass(
    r: Readings,
    specs: Sequence[ChannelSpec],
    last_ts: npt.NDArray[np.int64],
    state_ts: npt.NDArray[np.int64],
    state_value: npt.NDArray[np.float64],
    bucket_ns: int,
) -> CounterPass:
    """Consumption of the counter readings in r from the given (channels, 2) counter state."""
    is_counter = np.array([s.is_counter for s in specs], dtype=np.bool_)
    ch, ts, val, good, rebase = _counter_rows(r, is_counter, specs, last_ts)
    start, delta, event, s_ts, s_val = kernels.counter_deltas(
        ch,
        ts,
        val,
        good,
        rebase,
        np.array([s.wrap_modulus for s in specs], dtype=np.float64),
        np.array([s.max_rate_per_s for s in specs], dtype=np.float64),
        np.array([s.resolution for s in specs], dtype=np.float64),
        state_ts,
        state_value,
    )
    s_ch, s_b, s_amt, s_est = kernels.spread_deltas(
        ch, start, ts, delta, np.array([s.gap_ns for s in specs], dtype=np.int64), bucket_ns
    )
    k = len(s_ch)
    nan = np.full(k, np.nan)
    zero = np.zeros(k, np.int64)
    spread = (s_ch, s_b, zero, zero, s_amt, s_est, nan, nan, nan, np.full(k, NO_TS, np.int64))
    return CounterPass(
        channel=ch,
        ts_ns=ts,
        value=val,
        event=event,
        spread=spread,
        state_ts=s_ts,
        state_value=s_val,
    )


def step(
    batches: Sequence[ReadingBatch],
    specs: Mapping[str, ChannelSpec],
    state: Mapping[str, ChannelState],
    bucket_ns: int,
) -> StepResult:
    """Aggregate batches into bucket deltas; every channel id must be in `specs`."""
    keys = tuple(sorted({c for b in batches for c in b.channel_ids}))
    st = [state.get(k, ChannelState()) for k in keys]
    last_ts = np.array([s.last_ts_ns for s in st], dtype=np.int64)
    everything = sorted_unique(_concat(batches, keys)) if keys else no_readings(keys)
    fresh = everything.ts_ns > last_ts[everything.channel]
    if fresh.all():  # the usual case: nothing replayed or late
        late, r = select(everything, np.zeros(0, np.intp)), everything
    else:
        late, r = select(everything, ~fresh), select(everything, fresh)
    if len(r.ts_ns) == 0:
        return StepResult(
            readings=everything,
            fresh=fresh,
            buckets=no_buckets(keys),
            state={},
            events=no_events(keys),
            late=late,
        )
    sp = [specs[k] for k in keys]
    is_counter = np.array([s.is_counter for s in sp], dtype=np.bool_)
    good = r.quality == Quality.GOOD
    stats = list(kernels.bucket_stats(r.channel, r.ts_ns, r.value, good, bucket_ns))
    stats[4] = np.where(is_counter[stats[0]], 0.0, stats[4])  # counters' sums come from deltas
    stats.insert(5, np.zeros(len(stats[0])))  # nothing estimated
    st_ts = np.array([(s.counter_ts_ns, s.held_ts_ns) for s in st], dtype=np.int64)
    st_value = np.array([(s.counter_value, s.held_value) for s in st], dtype=np.float64)
    cp = counter_pass(r, sp, last_ts, st_ts.reshape(-1, 2), st_value.reshape(-1, 2), bucket_ns)
    s_ts, s_val = cp.state_ts, cp.state_value
    new_last = last_ts.copy()
    np.maximum.at(new_last, r.channel, r.ts_ns)
    new_state = {
        keys[c]: ChannelState(
            last_ts_ns=int(new_last[c]),
            counter_ts_ns=int(s_ts[c, 0]),
            counter_value=float(s_val[c, 0]),
            held_ts_ns=int(s_ts[c, 1]),
            held_value=float(s_val[c, 1]),
        )
        for c in np.unique(r.channel).tolist()
    }
    notable = cp.event > CounterEvent.COUNTED
    events = CounterEvents(
        keys=keys,
        channel=cp.channel[notable],
        ts_ns=cp.ts_ns[notable],
        event=cp.event[notable],
        value=cp.value[notable],
    )
    buckets = merge_buckets(keys, [tuple(stats), cp.spread], bucket_ns)
    return StepResult(
        readings=everything,
        fresh=fresh,
        buckets=buckets,
        state=new_state,
        events=events,
        late=late,
    )


def no_events(keys: tuple[str, ...]) -> CounterEvents:
    z = np.zeros(0, np.int64)
    return CounterEvents(
        keys=keys, channel=z.astype(np.int32), ts_ns=z, event=z.astype(np.int8), value=np.zeros(0)
    )


def no_readings(keys: tuple[str, ...]) -> Readings:
    z = np.zeros(0, np.int64)
    return Readings(
        keys=keys,
        channel=z.astype(np.int32),
        ts_ns=z,
        value=np.zeros(0),
        quality=z.astype(np.uint8),
        receive_ts_ns=z,
        server_ts_ns=z,
    )

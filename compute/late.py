"""Late readings: a reading at or before its channel's newest handled one re-opens its buckets.

Pure: the aggregator fetches the stored readings around the late ones and applies the bucket
corrections returned here additively, like any other bucket deltas. A late gauge sample adds
to its bucket's counts, sum, min, max and last. A late counter reading re-splits the interval
between its stored good neighbours: the correction is the new split minus the old one, so the
total over the interval is unchanged while the buckets it spans get the finer profile (and an
interval that was a gap may stop being one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from compute import kernels
from compute.aggregate import ChannelSpec, Readings, counter_pass, select, sorted_unique
from compute.buckets import BucketDeltas, merge_buckets, no_buckets, select_buckets
from compute.model import NO_TS, Quality


def stored_readings(keys: tuple[str, ...], rows: Sequence[tuple[int, int, float, int]]) -> Readings:
    """Readings from stored (channel index into keys, ts_ns, value, quality) rows."""
    n = len(rows)
    return Readings(
        keys=keys,
        channel=np.array([x[0] for x in rows], dtype=np.int32),
        ts_ns=np.array([x[1] for x in rows], dtype=np.int64),
        value=np.array([x[2] for x in rows], dtype=np.float64),
        quality=np.array([x[3] for x in rows], dtype=np.uint8),
        receive_ts_ns=np.zeros(n, np.int64),
        server_ts_ns=np.full(n, NO_TS, np.int64),
    )


def closed_part(b: BucketDeltas, bucket_ns: int, watermark_ns: int) -> BucketDeltas:
    """The rows of buckets that ended at or before the watermark: restatements, not updates."""
    return select_buckets(b, b.bucket_start_ns + bucket_ns <= watermark_ns)


def _concat(a: Readings, b: Readings) -> Readings:
    return Readings(
        keys=a.keys,
        channel=np.concatenate([a.channel, b.channel]),
        ts_ns=np.concatenate([a.ts_ns, b.ts_ns]),
        value=np.concatenate([a.value, b.value]),
        quality=np.concatenate([a.quality, b.quality]),
        receive_ts_ns=np.concatenate([a.receive_ts_ns, b.receive_ts_ns]),
        server_ts_ns=np.concatenate([a.server_ts_ns, b.server_ts_ns]),
    )


def _counter_spread(
    r: Readings, specs: list[ChannelSpec], bucket_ns: int
) -> tuple[npt.NDArray[np.generic], ...]:
    """Counter consumption of readings spanning each channel's interval, from its first one."""
    n = len(r.keys)
    first_ts = np.full(n, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(first_ts, r.channel, r.ts_ns)
    empty = np.full((n, 2), NO_TS, np.int64)
    return counter_pass(r, specs, first_ts - 1, empty, np.zeros((n, 2)), bucket_ns).spread


def _negated(part: tuple[npt.NDArray[np.generic], ...]) -> tuple[npt.NDArray[np.generic], ...]:
    ch, b, n, ng, amt, est, mn, mx, last, last_ts = part
    return (
        ch,
        b,
        n,
        ng,
        np.negative(amt, dtype=np.float64),
        np.negative(est, dtype=np.float64),
        mn,
        mx,
        last,
        last_ts,
    )


def recount(
    late: Readings, stored: Readings, specs: Mapping[str, ChannelSpec], bucket_ns: int
) -> tuple[Readings, BucketDeltas]:
    """The late readings not stored yet, and the bucket corrections they cause.

    `stored` holds, per channel of `late` (same keys), the stored readings from the last good
    one before its earliest late reading to the first good one after its latest.
    """
    known = sorted_unique(stored)
    key_known = set(zip(known.channel.tolist(), known.ts_ns.tolist(), strict=True))
    new_mask = np.array(
        [
            (c, t) not in key_known
            for c, t in zip(late.channel.tolist(), late.ts_ns.tolist(), strict=True)
        ],
        dtype=np.bool_,
    )
    new = select(late, new_mask)
    if len(new.ts_ns) == 0:
        return new, no_buckets(late.keys)
    sp = [specs[k] for k in late.keys]
    is_counter = np.array([s.is_counter for s in sp], dtype=np.bool_)
    good = new.quality == Quality.GOOD
    stats = list(kernels.bucket_stats(new.channel, new.ts_ns, new.value, good, bucket_ns))
    stats[4] = np.where(is_counter[stats[0]], 0.0, stats[4])
    stats.insert(5, np.zeros(len(stats[0])))
    touched = np.unique(new.channel[is_counter[new.channel]])
    before = select(known, np.isin(known.channel, touched))
    after = sorted_unique(_concat(before, select(new, np.isin(new.channel, touched))))
    parts = [tuple(stats), _counter_spread(after, sp, bucket_ns)]
    parts.append(_negated(_counter_spread(before, sp, bucket_ns)))
    return new, merge_buckets(late.keys, parts, bucket_ns)

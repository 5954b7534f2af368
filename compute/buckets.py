"""Bucket deltas: additive contributions to base buckets, and how they merge."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from compute.model import NO_TS


@dataclass(frozen=True, slots=True, kw_only=True)
class BucketDeltas:
    """Additive contributions to base buckets, one row per (channel, bucket_start_ns).

    sum is consumption for counters and the sum of good values for gauges; estimated is the part
    of sum spread over a gap; min, max and last cover good samples (NaN when none). Merging adds
    n, n_good, sum and estimated, and keeps min, max and the last value by last_ts_ns.
    """

    keys: tuple[str, ...]
    channel: npt.NDArray[np.int32]
    bucket_start_ns: npt.NDArray[np.int64]
    n: npt.NDArray[np.int64]
    n_good: npt.NDArray[np.int64]
    sum: npt.NDArray[np.float64]
    estimated: npt.NDArray[np.float64]
    min: npt.NDArray[np.float64]
    max: npt.NDArray[np.float64]
    last: npt.NDArray[np.float64]
    last_ts_ns: npt.NDArray[np.int64]


def merge_buckets(
    keys: tuple[str, ...], parts: list[tuple[npt.NDArray[np.generic], ...]], bucket_ns: int
) -> BucketDeltas:
    ch, b, n, ng, s, est, mn, mx, last, last_ts = (
        np.concatenate(col) for col in zip(*parts, strict=True)
    )
    b_min = int(b.min()) if len(b) else 0
    slot = (b - b_min) // bucket_ns
    span = int(slot.max()) + 1 if len(b) else 1
    uniq, inv = np.unique(ch.astype(np.int64) * span + slot, return_inverse=True)
    m = len(uniq)
    out_n = np.zeros(m, np.int64)
    out_ng = np.zeros(m, np.int64)
    out_sum = np.zeros(m)
    out_est = np.zeros(m)
    out_min = np.full(m, np.nan)
    out_max = np.full(m, np.nan)
    np.add.at(out_n, inv, n)
    np.add.at(out_ng, inv, ng)
    np.add.at(out_sum, inv, s)
    np.add.at(out_est, inv, est)
    np.fmin.at(out_min, inv, mn)
    np.fmax.at(out_max, inv, mx)
    by_ts = np.argsort(last_ts, kind="stable")
    out_last = np.full(m, np.nan)
    out_last_ts = np.full(m, NO_TS, np.int64)
    has = last_ts[by_ts] != NO_TS
    out_last[inv[by_ts][has]] = last[by_ts][has]
    out_last_ts[inv[by_ts][has]] = last_ts[by_ts][has]
    return BucketDeltas(
        keys=keys,
        channel=(uniq // span).astype(np.int32),
        bucket_start_ns=(uniq % span) * bucket_ns + b_min,
        n=out_n,
        n_good=out_ng,
        sum=out_sum,
        estimated=out_est,
        min=out_min,
        max=out_max,
        last=out_last,
        last_ts_ns=out_last_ts,
    )


def bucket_columns(b: BucketDeltas) -> tuple[npt.NDArray[np.generic], ...]:
    """The columns in merge_buckets' part order."""
    return (
        b.channel,
        b.bucket_start_ns,
        b.n,
        b.n_good,
        b.sum,
        b.estimated,
        b.min,
        b.max,
        b.last,
        b.last_ts_ns,
    )


def select_buckets(b: BucketDeltas, index: npt.NDArray[np.bool_]) -> BucketDeltas:
    return BucketDeltas(
        keys=b.keys,
        channel=b.channel[index],
        bucket_start_ns=b.bucket_start_ns[index],
        n=b.n[index],
        n_good=b.n_good[index],
        sum=b.sum[index],
        estimated=b.estimated[index],
        min=b.min[index],
        max=b.max[index],
        last=b.last[index],
        last_ts_ns=b.last_ts_ns[index],
    )


def no_buckets(keys: tuple[str, ...]) -> BucketDeltas:
    return merge_buckets(keys, [_no_rows()], 1)


def _no_rows() -> tuple[npt.NDArray[np.generic], ...]:
    z = np.zeros(0, np.int64)
    f = np.zeros(0)
    return (z.astype(np.int32), z, z, z, f, f, f, f, f, z)

"""Aggregation step throughput: the numba kernels against their pure-Python twins and against a
bare numpy sort of the same readings (a floor no step can beat).

    python -m bench.aggregator [--readings N] [--channels C]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from unittest import mock

import numpy as np

from compute import aggregate, kernels
from compute.aggregate import ChannelSpec, step
from compute.model import NS_PER_S, Quality, ReadingBatch


def batches(n_readings: int, n_channels: int, per_batch: int = 20) -> list[ReadingBatch]:
    """Meters of `per_batch` channels polled once a second, counters and gauges half and half."""
    rng = np.random.default_rng(1)
    out = []
    polls = n_readings // n_channels
    for meter in range(n_channels // per_batch):
        ids = tuple(f"m{meter}.c{i}" for i in range(per_batch))
        idx = np.tile(np.arange(per_batch, dtype=np.uint16), polls)
        ts = np.repeat(np.arange(polls, dtype=np.int64) * NS_PER_S, per_batch)
        val = np.cumsum(rng.random(len(ts)))
        q = np.where(rng.random(len(ts)) < 0.01, Quality.BAD, Quality.GOOD).astype(np.uint8)
        out.append(
            ReadingBatch(
                meter_id=f"m{meter}",
                channel_ids=ids,
                channel_index=idx,
                ts_ns=ts,
                value=val,
                quality=q,
                server_ts_ns=ts,
                receive_ts_ns=0,
            )
        )
    return out


def best_of(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--readings", type=int, default=1_000_000)
    ap.add_argument("--channels", type=int, default=500)
    args = ap.parse_args()
    bs = batches(args.readings, args.channels)
    n = sum(b.size for b in bs)
    specs = {c: ChannelSpec(is_counter=i % 2 == 0) for b in bs for i, c in enumerate(b.channel_ids)}
    step(bs[:1], specs, {}, 60 * NS_PER_S)  # compile

    numba_s = best_of(lambda: step(bs, specs, {}, 60 * NS_PER_S), 3)
    all_ts = np.concatenate([b.ts_ns for b in bs])
    all_ch = np.concatenate([b.channel_index for b in bs])
    sort_s = best_of(lambda: np.lexsort((all_ts, all_ch)), 3)

    small = bs[: max(1, len(bs) // 20)]
    n_small = sum(b.size for b in small)
    twins = {
        "counter_deltas": kernels.counter_deltas_py,
        "spread_deltas": kernels.spread_deltas_py,
        "bucket_stats": kernels.bucket_stats_py,
    }
    with mock.patch.multiple(aggregate.kernels, **twins):
        python_s = best_of(lambda: step(small, specs, {}, 60 * NS_PER_S), 1) * n / n_small

    print(f"readings: {n:,} in {len(bs)} batches, {args.channels} channels")
    print(f"step (numba):           {numba_s:8.3f} s  {n / numba_s / 1e6:6.2f} M readings/s")
    rate = n / python_s / 1e6
    print(f"step (python twins):    {python_s:8.3f} s  {rate:6.2f} M readings/s (extrapolated)")
    print(f"numpy lexsort only:     {sort_s:8.3f} s  {n / sort_s / 1e6:6.2f} M readings/s")
    print(f"ratio numba / twins:    {python_s / numba_s:8.1f}x faster")
    print(f"ratio step / bare sort: {numba_s / sort_s:8.2f}x the time of sorting alone")


if __name__ == "__main__":
    main()

"""Kernel throughput: the numba kernels against a numpy sum over the bytes they read, the same
aggregation in idiomatic pandas (results checked equal), and scaling with the channel count.

    python -m bench.kernels [--readings N] [--channels C] [--repeat R]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from compute import kernels
from compute.aggregate import ChannelSpec, step
from compute.model import NO_TS, NS_PER_S, Quality, ReadingBatch

try:
    import pandas as pd
except ImportError:  # the pandas part is skipped, the rest still runs
    pd = None

Arr = npt.NDArray[Any]
BUCKET_NS = 60 * NS_PER_S
NEVER_NS = np.iinfo(np.int64).max
T0_NS = 1_767_225_600 * NS_PER_S  # 2026-01-01T00:00Z, on a minute boundary

# ---- adapters: the only code here that knows the kernels' signatures --------------------------
# Each *_args builds the arguments for channels seen for the first time with no rule but the
# wrap (no spike limit, no replacement, no gap); the timed call is the kernel call alone.


def counter_args(ch: Arr, ts_ns: Arr, value: Arr, good: Arr, modulus: Arr) -> tuple[Any, ...]:
    c = len(modulus)
    no_rebase = np.full(len(ch), np.nan)
    state_ts = np.full((c, 2), NO_TS, np.int64)
    no_limit = np.zeros(c)
    return (
        ch,
        ts_ns,
        value,
        good,
        no_rebase,
        modulus,
        no_limit,
        no_limit,
        state_ts,
        np.zeros((c, 2)),
    )


def counter_deltas(args: tuple[Any, ...]) -> tuple[Arr, Arr]:
    """(interval_start_ts_ns, delta) per reading."""
    out = kernels.counter_deltas(*args)
    return out[0], out[1]


def spread_args(
    ch: Arr, start_ns: Arr, end_ns: Arr, delta: Arr, n_channels: int
) -> tuple[Any, ...]:
    return (ch, start_ns, end_ns, delta, np.full(n_channels, NEVER_NS, np.int64), BUCKET_NS)


def spread_deltas(args: tuple[Any, ...]) -> tuple[Arr, Arr, Arr]:
    """(channel, bucket_start_ns, amount) per (channel, bucket) touched."""
    out = kernels.spread_deltas(*args)
    return out[0], out[1], out[2]


def stats_args(ch: Arr, ts_ns: Arr, value: Arr, good: Arr) -> tuple[Any, ...]:
    return (ch, ts_ns, value, good, BUCKET_NS)


def bucket_stats(args: tuple[Any, ...]) -> tuple[Arr, ...]:
    """(channel, bucket_start_ns, n, n_good, sum, min, max, last, last_ts_ns)."""
    return tuple(kernels.bucket_stats(*args))


# ---- workload ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Workload:
    """Readings sorted by (channel, ts), polled every second: even channels are counters (every
    fourth wraps at 1,000), odd ones gauges; 1 % of the readings are bad."""

    ch: Arr
    ts_ns: Arr
    value: Arr
    good: Arr
    is_counter: Arr
    modulus: Arr

    @property
    def size(self) -> int:
        return len(self.ts_ns)


def workload(n_readings: int, n_channels: int, t0_ns: int = T0_NS) -> Workload:
    rng = np.random.default_rng(7)
    polls = n_readings // n_channels
    n = polls * n_channels
    ch = np.repeat(np.arange(n_channels, dtype=np.int32), polls)
    ts = t0_ns + np.tile(np.arange(polls, dtype=np.int64) * NS_PER_S, n_channels)
    is_counter = np.arange(n_channels) % 2 == 0
    modulus = np.where(np.arange(n_channels) % 4 == 0, 1_000.0, 0.0)
    steps = rng.random((n_channels, polls)) * 2.0
    steps[~is_counter] -= 1.0  # gauges: a random walk
    walk = np.cumsum(steps, axis=1) + 500.0 * rng.random((n_channels, 1))
    wraps = modulus > 0
    walk[wraps] %= modulus[wraps, None]
    good = rng.random(n) >= 0.01
    return Workload(ch, ts, walk.reshape(-1), good, is_counter, modulus)


def channel_id(c: int) -> str:
    return f"c{c:06d}"  # zero-padded: step's sorted keys keep the channel numbers' order


def reading_batches(w: Workload, per_meter: int = 50, polls: int = 60) -> list[ReadingBatch]:
    """One batch per meter of `per_meter` channels and `polls` polls, in poll order."""
    n_channels = len(w.is_counter)
    total_polls = w.size // n_channels
    quality = np.where(w.good, Quality.GOOD, Quality.BAD).astype(np.uint8)
    grid = {
        name: a.reshape(n_channels, total_polls)
        for name, a in (("ts", w.ts_ns), ("v", w.value), ("q", quality))
    }
    out = []
    for m0 in range(0, n_channels, per_meter):
        chans = range(m0, min(m0 + per_meter, n_channels))
        ids = tuple(channel_id(c) for c in chans)
        for p0 in range(0, total_polls, polls):
            p1 = min(p0 + polls, total_polls)
            # transposed: a poll reads every channel of the meter at once
            ts = grid["ts"][m0 : m0 + len(ids), p0:p1].T.reshape(-1)
            out.append(
                ReadingBatch(
                    meter_id=f"m{m0 // per_meter}",
                    channel_ids=ids,
                    channel_index=np.tile(np.arange(len(ids), dtype=np.uint16), p1 - p0),
                    ts_ns=ts,
                    value=grid["v"][m0 : m0 + len(ids), p0:p1].T.reshape(-1),
                    quality=grid["q"][m0 : m0 + len(ids), p0:p1].T.reshape(-1),
                    server_ts_ns=ts,
                    receive_ts_ns=0,
                )
            )
    return out


def specs_of(w: Workload) -> dict[str, ChannelSpec]:
    return {
        channel_id(c): ChannelSpec(is_counter=bool(w.is_counter[c]), wrap_modulus=float(m))
        for c, m in enumerate(w.modulus)
    }


# ---- what is timed ----------------------------------------------------------------------------


def interleaved(fns: Sequence[Callable[[], object]], repeat: int) -> list[float]:
    """Best time of each function over `repeat` rounds that run them in turn, so a burst of load
    from another process slows every contender in its round rather than one of them."""
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t)
    return best


def per_reading(args: Sequence[Any], n: int) -> list[Arr]:
    """The arguments that hold one element per reading: what a kernel streams through."""
    return [a for a in args if isinstance(a, np.ndarray) and a.ndim == 1 and len(a) == n]


def read_all(arrays: Sequence[Arr]) -> int:
    """Sum every byte of the arrays, 8 at a time: as fast as numpy can stream them in."""
    total = 0
    for a in arrays:
        words = a.view(np.uint8)[: a.nbytes // 8 * 8].view(np.uint64)
        total += int(words.sum())
    return total


def ours(w: Workload) -> tuple[tuple[Arr, Arr, Arr], tuple[Arr, ...]]:
    """Counter deltas spread over buckets, gauge statistics: the kernels on sorted columns."""
    c_mask = w.is_counter[w.ch]
    cch, cts = w.ch[c_mask], w.ts_ns[c_mask]
    start, delta = counter_deltas(
        counter_args(cch, cts, w.value[c_mask], w.good[c_mask], w.modulus)
    )
    spread = spread_deltas(spread_args(cch, start, cts, delta, len(w.modulus)))
    g_mask = ~c_mask
    stats = bucket_stats(stats_args(w.ch[g_mask], w.ts_ns[g_mask], w.value[g_mask], w.good[g_mask]))
    return spread, stats


def pandas_frames(w: Workload) -> tuple[Any, Any]:
    """The pandas input: one row per reading, and one row of channel attributes per channel."""
    df = pd.DataFrame(
        {"ch": w.ch, "time": w.ts_ns.view("datetime64[ns]"), "value": w.value, "good": w.good}
    )
    meta = pd.DataFrame({"is_counter": w.is_counter, "modulus": w.modulus})
    return df, meta


def with_pandas(df: Any, meta: Any) -> tuple[Any, Any]:
    """The same aggregation written the way pandas is meant to be used."""
    d = df[df["good"]].join(meta, on="ch")
    c = d[d["is_counter"]]
    by_ch = c.groupby("ch", sort=False)
    prev_v = by_ch["value"].shift()
    prev_t = by_ch["time"].shift()
    advance = c["value"] - prev_v
    wrapped = c["modulus"] - prev_v + c["value"]
    plausible = (c["modulus"] > 0) & (wrapped >= 0) & (wrapped < 0.5 * c["modulus"])
    delta = advance.where(advance >= 0, wrapped.where(plausible))
    iv = pd.DataFrame({"ch": c["ch"], "start": prev_t, "end": c["time"], "delta": delta})
    iv = iv.dropna().reset_index(drop=True)
    iv["start"] = iv["start"].astype("int64")
    iv["end"] = iv["end"].astype("int64")
    iv["first"] = iv["start"] // BUCKET_NS
    iv["buckets"] = (iv["end"] - 1) // BUCKET_NS - iv["first"] + 1
    parts = iv.loc[iv.index.repeat(iv["buckets"])]  # a row per (interval, bucket it overlaps)
    parts["bucket"] = (parts["first"] + parts.groupby(level=0).cumcount()) * BUCKET_NS
    overlap = np.minimum(parts["end"], parts["bucket"] + BUCKET_NS) - np.maximum(
        parts["start"], parts["bucket"]
    )
    share = parts["delta"] * (overlap / (parts["end"] - parts["start"]))
    parts["amount"] = share.where(parts["buckets"] > 1, parts["delta"])
    spread = parts.groupby(["ch", "bucket"])["amount"].sum()
    g = d[~d["is_counter"]]
    gauges = g.groupby(["ch", pd.Grouper(key="time", freq="1min")])["value"].agg(
        ["count", "mean", "min", "max", "last"]
    )
    return spread, gauges


def check_agree(w: Workload, pandas_out: tuple[Any, Any], result: Any) -> None:
    """Our kernels, our whole step and pandas give the same buckets; AssertionError otherwise."""
    (s_ch, s_b, s_amt), stats = ours(w)
    p_spread, p_gauges = pandas_out
    close = {"rtol": 1e-9, "atol": 1e-9}
    np.testing.assert_array_equal(s_ch, p_spread.index.get_level_values("ch"))
    np.testing.assert_array_equal(s_b, p_spread.index.get_level_values("bucket"))
    np.testing.assert_allclose(s_amt, p_spread.to_numpy(), **close)
    ch, b, _n, n_good, total, mn, mx, last, _ = stats
    has = n_good > 0
    p_bucket = p_gauges.index.get_level_values("time").to_numpy().view(np.int64)
    np.testing.assert_array_equal(ch[has], p_gauges.index.get_level_values("ch"))
    np.testing.assert_array_equal(b[has], p_bucket)
    np.testing.assert_array_equal(n_good[has], p_gauges["count"])
    np.testing.assert_allclose(total[has] / n_good[has], p_gauges["mean"], **close)
    for ours_col, name in ((mn, "min"), (mx, "max"), (last, "last")):
        np.testing.assert_array_equal(ours_col[has], p_gauges[name])
    # the whole step: counter sums per bucket equal the spread, gauge statistics the same
    bk = result.buckets
    counter_row = w.is_counter[bk.channel]
    step_sums = pd.Series(
        bk.sum[counter_row], index=[bk.channel[counter_row], bk.bucket_start_ns[counter_row]]
    )
    np.testing.assert_allclose(step_sums.reindex(p_spread.index).to_numpy(), p_spread, **close)
    np.testing.assert_allclose(step_sums.drop(p_spread.index).to_numpy(), 0.0)
    gauge_row = ~counter_row & (bk.n_good > 0)
    np.testing.assert_array_equal(bk.bucket_start_ns[gauge_row], p_bucket)
    np.testing.assert_allclose(bk.sum[gauge_row] / bk.n_good[gauge_row], p_gauges["mean"], **close)
    np.testing.assert_array_equal(bk.last[gauge_row], p_gauges["last"])


# ---- report -----------------------------------------------------------------------------------


def kernel_table(w: Workload, repeat: int) -> None:
    c_mask = w.is_counter[w.ch]
    cch, cts, cval, cgood = (a[c_mask] for a in (w.ch, w.ts_ns, w.value, w.good))
    c_args = counter_args(cch, cts, cval, cgood, w.modulus)
    start, delta = counter_deltas(c_args)
    s_args = spread_args(cch, start, cts, delta, len(w.modulus))
    g_mask = ~c_mask
    b_args = stats_args(*(a[g_mask] for a in (w.ch, w.ts_ns, w.value, w.good)))
    print(f"\neach kernel on its own rows: counters or gauges (best of {repeat}, interleaved):")
    head = ("kernel", "rows", "B/row", "ns/row", "GB/s", "numpy sum GB/s", "ratio")
    print("{:<16}{:>11}{:>7}{:>8}{:>7}{:>16}{:>7}".format(*head))
    ratios = []
    for name, fn, args in (
        ("counter_deltas", counter_deltas, c_args),
        ("spread_deltas", spread_deltas, s_args),
        ("bucket_stats", bucket_stats, b_args),
    ):
        n = len(args[0])
        cols = per_reading(args, n)
        nbytes = sum(a.nbytes for a in cols)
        base_s, kern_s = interleaved(
            [lambda cols=cols: read_all(cols), lambda fn=fn, args=args: fn(args)], repeat
        )
        print(
            f"{name:<16}{n:>11,}{nbytes / n:>7.0f}{kern_s / n * 1e9:>8.2f}"
            f"{nbytes / kern_s / 1e9:>7.2f}{nbytes / base_s / 1e9:>16.2f}{base_s / kern_s:>7.3f}"
        )
        ratios.append(base_s / kern_s)
    cols = [w.ch, w.ts_ns, w.value, w.good]
    nbytes = sum(a.nbytes for a in cols)
    base_s, all_s = interleaved([lambda: read_all(cols), lambda: ours(w)], repeat)
    print(
        f"{'all three':<16}{w.size:>11,}{nbytes / w.size:>7.0f}{all_s / w.size * 1e9:>8.2f}"
        f"{nbytes / all_s / 1e9:>7.2f}{nbytes / base_s / 1e9:>16.2f}{base_s / all_s:>7.3f}"
    )
    print("  (B/row: bytes of the per-row columns the kernel reads; the numpy baseline sums them)")
    met = "met" if min(ratios) >= 0.5 else "not met"
    print(f"goal: every kernel >= 0.5 of the numpy sum's GB/s: {met} (worst {min(ratios):.3f})")


def pandas_table(w: Workload, repeat: int) -> None:
    n = w.size
    bs = reading_batches(w)
    specs = specs_of(w)
    if pd is None:
        print("\npandas is not installed (pip install pandas): the pandas comparison is skipped")
        return
    df, meta = pandas_frames(w)
    check_agree(w, with_pandas(df, meta), step(bs, specs, {}, BUCKET_NS))
    rounds = max(1, repeat - 2)
    pandas_s, ours_s, step_s = interleaved(
        [lambda: with_pandas(df, meta), lambda: ours(w), lambda: step(bs, specs, {}, BUCKET_NS)],
        rounds,
    )
    print(
        f"\ncounter deltas with wrap + 1-min spread, gauge mean/min/max/last per (channel, minute);"
        f"\n{n:,} readings, {len(w.modulus):,} channels; results checked equal"
        f" (best of {rounds} interleaved rounds):"
    )
    print(f"{'what':<44}{'time s':>9}{'M readings/s':>14}{'vs pandas':>11}")
    for what, t in (
        ("pandas (groupby / shift / repeat / Grouper)", pandas_s),
        ("ours: the three kernels on sorted columns", ours_s),
        (f"ours: compute.aggregate.step, {len(bs):,} batches", step_s),
    ):
        print(f"{what:<44}{t:>9.3f}{n / t / 1e6:>14.2f}{pandas_s / t:>10.1f}x")
    for what, t in (("kernels", ours_s), ("step", step_s)):
        met = "met" if pandas_s / t >= 10 else "not met"
        print(f"goal: {what} >= 10x pandas: {met} ({pandas_s / t:.1f}x)")


def scaling_table(n_readings: int, repeat: int) -> None:
    print(f"\nscaling at {n_readings:,} readings in total (best of {repeat}, interleaved):")
    print(f"{'channels':>10}{'readings/ch':>13}{'kernels M/s':>13}{'step M/s':>10}{'batches':>9}")
    for n_channels in (100, 1_000, 10_000, 100_000):
        w = workload(n_readings, n_channels)
        bs = reading_batches(w)
        specs = specs_of(w)
        k_s, s_s = interleaved(
            [lambda w=w: ours(w), lambda bs=bs, specs=specs: step(bs, specs, {}, BUCKET_NS)], repeat
        )
        print(
            f"{n_channels:>10,}{w.size // n_channels:>13,}{w.size / k_s / 1e6:>13.2f}"
            f"{w.size / s_s / 1e6:>10.2f}{len(bs):>9,}"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--readings", type=int, default=1 << 22)
    ap.add_argument("--channels", type=int, default=1_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    started = time.perf_counter()
    w = workload(args.readings, args.channels)
    small = workload(1_000, 10)
    ours(small)  # compile, or load numba's cache
    step(reading_batches(small), specs_of(small), {}, BUCKET_NS)
    print(f"workload: {w.size:,} readings, {args.channels:,} channels, 1 s polls, 1 % bad")
    kernel_table(w, args.repeat)
    pandas_table(w, args.repeat)
    scaling_table(w.size, max(1, args.repeat - 2))
    print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()

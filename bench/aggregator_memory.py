"""Aggregator memory per channel: the RSS a fresh process gains from the plant model, the
Aggregator (specs, channel check, live windows) and one step touching every channel, against the
bytes of the live windows' numpy arrays (the state the design sizes: 912 B of rings + demand).

    python -m bench.aggregator_memory [--sizes 100,1000,10000,100000]

Each size runs in its own process, so its RSS is clean. That process first runs the same path
on one meter (numba's kernels loaded, first-use allocations made), builds the input (the plant
mapping a loaded file would hold, one poll of every channel encoded as bus messages) and opens
an SqliteStore in a temp dir; then it reads VmRSS after gc and malloc_trim at each stage.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import dataclasses
import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.pipeline import PER_METER, plant_data, poll_batches
from compute import codec
from compute.model import NS_PER_S
from services.aggregator import Aggregator
from services.bus import Message
from services.bus.memory import MemoryBus
from services.live import LiveWindows
from services.store.sqlite import SqliteStore
from tests.plants import one_site

SIZES = (100, 1_000, 10_000, 100_000)
GOAL_B = 1024  # of aggregator state per channel at 100,000 channels

_trim: Any = None
with contextlib.suppress(OSError, AttributeError):  # not glibc: freed memory may stay in the RSS
    _trim = ctypes.CDLL("libc.so.6").malloc_trim


def rss_b() -> int:
    """VmRSS of this process after a collection, with the heap's free pages handed back."""
    gc.collect()
    if _trim is not None:
        _trim(0)
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def messages(n_channels: int) -> list[Message]:
    """One poll of every channel, one message per meter, as the aggregator's topic holds it."""
    t0_ns = (time.time_ns() // NS_PER_S - 2) * NS_PER_S
    return [
        Message(
            topic="readings", partition=0, offset=i, key=b.meter_id.encode(), value=codec.encode(b)
        )
        for i, b in enumerate(poll_batches(n_channels, 1, t0_ns))
    ]


async def feed(agg: Aggregator, msgs: list[Message]) -> None:
    """Handle the messages in polls of the aggregator's size, then build the live figures as
    publish_live does every few seconds (which creates the demand state)."""
    for i in range(0, len(msgs), agg.max_records):
        await agg.handle(msgs[i : i + agg.max_records])
    agg.live.snapshot(agg.clock_ns())


def array_bytes(live: LiveWindows) -> int:
    """Bytes of the live windows' numpy arrays: rings, demand, per-channel columns."""
    total = 0
    for obj in (live, live.state, live.demand):
        if obj is None:
            continue
        names = (
            [f.name for f in dataclasses.fields(obj)]
            if dataclasses.is_dataclass(obj)
            else list(vars(obj))
        )
        total += sum(a.nbytes for n in names if isinstance(a := getattr(obj, n), np.ndarray))
    return total


async def measure(n_channels: int, work: Path) -> dict[str, Any]:
    async with SqliteStore(work / "warm-up.db") as store:
        await feed(
            Aggregator(one_site(plant_data(PER_METER)), MemoryBus(), store, group="g", topic="t"),
            messages(PER_METER),
        )
    data, msgs = plant_data(n_channels), messages(n_channels)  # the input, held to the end
    async with SqliteStore(work / "store.db") as store:
        before = rss_b()
        plant = one_site(data)
        with_plant = rss_b()
        agg = Aggregator(plant, MemoryBus(), store, group="g", topic="readings")
        built = rss_b()
        await feed(agg, msgs)
        stepped = rss_b()
        arrays = array_bytes(agg.live)
        # what the memoised channel tables hold (the codec's, by raw bytes; the check's)
        codec._parse_table.cache_clear()
        agg.check._memo.clear()
        memo_cleared = rss_b()
        del agg
        dropped = rss_b()
    closed = rss_b()  # the store's connection (page cache, prepared statements) is gone
    return {
        "channels": n_channels,
        "before": before,
        "plant": with_plant - before,
        "built": built - with_plant,
        "step": stepped - built,
        "aggregator": stepped - dropped,
        "memo": stepped - memo_cleared,
        "store": dropped - closed,
        "arrays": arrays,
    }


def child(n_channels: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        print(json.dumps(asyncio.run(measure(n_channels, Path(d)))))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)))
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        cmd = [sys.executable, "-m", "bench.aggregator_memory", "--child", str(n)]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        if out.returncode:
            raise RuntimeError(f"{n:,} channels failed:\n{out.stderr[-3000:]}")
        rows.append(json.loads(out.stdout.splitlines()[-1]))
    report(rows)


def report(rows: list[dict[str, Any]]) -> None:
    print(
        "RSS per channel, in bytes, in a fresh process per size (VmRSS after gc and malloc_trim;"
        "\ninterpreter, imports, warm-up, the open store and the input subtracted):"
    )
    head = ("channels", "base RSS", "plant", "Aggregator()", "+ 1 step", "aggregator", "memo")
    more = ("store", "rest", "arrays", "ratio")
    print("{:>9}{:>10}{:>8}{:>14}{:>10}{:>12}{:>7}{:>8}{:>7}{:>8}{:>7}".format(*head, *more))
    for r in rows:
        n = r["channels"]
        rest = r["built"] + r["step"] - r["aggregator"] - r["store"]
        print(
            f"{n:>9,}{r['before'] / 2**20:>6.0f} MiB{r['plant'] / n:>8,.0f}"
            f"{r['built'] / n:>14,.0f}{r['step'] / n:>10,.0f}{r['aggregator'] / n:>12,.0f}"
            f"{r['memo'] / n:>7,.0f}{r['store'] / n:>8,.0f}{rest / n:>7,.0f}"
            f"{r['arrays'] / n:>8,.0f}{r['aggregator'] / r['arrays']:>7.2f}"
        )
    big = max(rows, key=lambda r: r["channels"])
    n, agg = big["channels"], big["aggregator"] / big["channels"]
    print(
        "plant: the pydantic plant model, configuration held by whatever loads it, not aggregator"
        "\n  state; Aggregator(): RSS gained by building it (specs, channel check, live windows;"
        "\n  numpy's zeroed rings are not resident until written); + 1 step: gained by handling one"
        "\n  poll of every channel and building the live figures (the store's growth included);"
        "\n  aggregator: freed when the aggregator and the codec's table memo are dropped, i.e. its"
        "\n  state; memo: of that, the memoised channel tables (codec, check); store: freed when"
        "\n  the SqliteStore closes; rest: gained but freed by neither (first-use allocations, heap"
        "\n  fragments); arrays (the baseline): the live windows' numpy arrays (rings, demand,"
        "\n  per-channel columns); ratio: aggregator / arrays."
        f"\nAt {n:,} channels: {agg:,.0f} B of aggregator state per channel, goal <= {GOAL_B:,} B:"
        f" {'met' if agg <= GOAL_B else 'not met'}; the plant model adds {big['plant'] / n:,.0f} B."
    )


if __name__ == "__main__":
    main()

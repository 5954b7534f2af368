"""Kafka -> 1-minute aggregates: our consumer path (KafkaBus poll, decode_all, aggregate.step)
against Quix Streams on the same readings, each used the way it is meant to be, on a real broker.

    python -m bench.quix_compare [--readings N] [--big-readings M] [--skip-quix]

Quix gets one JSON message per reading ({channel, ts, value}, key = channel, Kafka timestamp =
reading time) and sums each channel's values in tumbling 1-minute windows. We get one ReadingBatch
per meter per poll (50 channels, compute.codec, key = meter) and run the whole step: counter deltas
with wrap spread over 1-minute buckets, gauge statistics, channel state carried from poll to poll,
offsets committed after each step; no store. Topics are produced first; only consume + compute is
timed, from the first message in hand to the last reading handled. Needs Java 17 and Maven (the
test harness runs the broker) and `pip install quixstreams` (or `.[bench]`).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import logging
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from bench.kernels import BUCKET_NS, reading_batches, specs_of, workload
from compute import codec
from compute.aggregate import ChannelSpec, ChannelState, step
from compute.model import NS_PER_S, ReadingBatch
from services.aggregator import ChannelCheck, decode_all
from services.bus.kafka import KafkaBus
from tests.harness.kafka import kafka_broker

CHANNELS = 1_000
PER_METER = 50
PARTITIONS = 4
MAX_RECORDS = 2_000  # what services.aggregator.Aggregator polls at once
TIMEOUT_S = 120.0

# ---- adapter: the only code here that knows compute.aggregate.step's signature ----------------


def aggregate(
    batches: list[ReadingBatch], specs: dict[str, ChannelSpec], state: dict[str, ChannelState]
) -> None:
    """One step over a poll's batches; the channel state it returns feeds the next poll."""
    state.update(step(batches, specs, state, BUCKET_NS).state)


# ---- producing --------------------------------------------------------------------------------


def poll_batches(n_readings: int) -> list[ReadingBatch]:
    """One batch per meter per 1 s poll, in the order the gateways publish them."""
    t0_ns = (time.time_ns() // (60 * NS_PER_S) - 120) * 60 * NS_PER_S  # kept by the retention
    w = workload(n_readings, CHANNELS, t0_ns)
    return sorted(
        reading_batches(w, PER_METER, polls=1), key=lambda b: (int(b.ts_ns[0]), b.meter_id)
    )


async def produce_batches(bootstrap: str, topic: str, batches: list[ReadingBatch]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20)
    await producer.start()
    try:
        sends = [
            await producer.send(topic, codec.encode(b), key=b.meter_id.encode()) for b in batches
        ]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


def produce_json(bootstrap: str, topic: str, batches: list[ReadingBatch]) -> None:
    """One message per reading, as a per-reading stream would carry them."""
    from confluent_kafka import Producer  # comes with quixstreams

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1 << 20})
    for b in batches:
        for i, ts, v in zip(
            b.channel_index.tolist(), b.ts_ns.tolist(), b.value.tolist(), strict=True
        ):
            cid = b.channel_ids[i]
            value = json.dumps({"channel": cid, "ts": ts, "value": v}).encode()
            while True:
                try:
                    producer.produce(topic, value, key=cid.encode(), timestamp=ts // 1_000_000)
                    break
                except BufferError:
                    producer.poll(0.05)
        producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("the JSON messages were not all delivered")


# ---- consuming --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Run:
    readings: int
    wall_s: float
    cpu_s: float
    decode_s: float = 0.0  # ours only: in decode_all
    step_s: float = 0.0  # ours only: in compute.aggregate.step

    @property
    def rate(self) -> float:
        return self.readings / self.wall_s


async def ours(bootstrap: str, topic: str, n_readings: int, group: str) -> Run:
    """Our aggregator's consumer path less the store: poll, decode_all, step, commit."""
    specs = specs_of(workload(CHANNELS, CHANNELS))  # the same channels, specs only
    check = ChannelCheck(specs)
    state: dict[str, ChannelState] = {}
    done = 0
    started = cpu = decode_s = step_s = 0.0
    deadline = time.monotonic() + TIMEOUT_S
    async with KafkaBus(bootstrap) as bus, bus.subscribe(topic, group) as sub:
        while done < n_readings:
            if time.monotonic() > deadline:
                raise RuntimeError(f"ours: {done:,} of {n_readings:,} readings in {TIMEOUT_S} s")
            messages = await sub.poll(MAX_RECORDS, timeout_s=1.0)
            if not messages:
                continue
            if not done:
                started, cpu = time.perf_counter(), time.process_time()
            t0 = time.perf_counter()
            batches, rejected = decode_all(messages, check)
            t1 = time.perf_counter()
            if rejected:
                raise RuntimeError(f"rejected: {rejected[0].reason}")
            aggregate(batches, specs, state)
            decode_s, step_s = decode_s + t1 - t0, step_s + time.perf_counter() - t1
            await sub.commit(messages)
            done += sum(b.size for b in batches)
        wall_s = time.perf_counter() - started
        return Run(done, wall_s, time.process_time() - cpu, decode_s, step_s)


def quix(bootstrap: str, topic: str, n_readings: int, group: str, state_dir: Path) -> Run:
    """Quix Streams as its docs show it: a StreamingDataFrame with a tumbling window per key."""
    with warnings.catch_warnings(record=True):  # authlib, through quixstreams, warns on import
        from quixstreams import Application

    seen = 0
    started = cpu = 0.0
    ended = cpu_end = 0.0

    def processed(_topic: str, _partition: int, _offset: int) -> None:
        nonlocal seen, started, cpu, ended, cpu_end
        seen += 1
        if seen == 1:
            started, cpu = time.perf_counter(), time.process_time()
        elif seen == n_readings:
            ended, cpu_end = time.perf_counter(), time.process_time()
            app.stop()

    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        state_dir=state_dir,
        loglevel="WARNING",
        on_message_processed=processed,
    )
    sdf = app.dataframe(app.topic(topic, value_deserializer="json"))
    sdf = sdf.apply(lambda r: r["value"]).tumbling_window(timedelta(minutes=1)).sum().final()
    app.run()
    if seen < n_readings:
        raise RuntimeError(f"quix stopped after {seen:,} of {n_readings:,} readings")
    # the first message's own processing is not in the window: n - 1 readings were timed
    return Run(n_readings - 1, ended - started, cpu_end - cpu)


# ---- report -----------------------------------------------------------------------------------


def best(runs: list[Run]) -> Run:
    return max(runs, key=lambda r: r.rate)


def line(what: str, runs: list[Run]) -> None:
    r = best(runs)
    median = statistics.median(x.rate for x in runs)
    print(
        f"{what:<40}{r.readings:>11,}{r.wall_s:>8.2f}{r.rate:>12,.0f}{median:>12,.0f}"
        f"{r.cpu_s / r.wall_s:>7.2f}{r.readings / r.cpu_s:>12,.0f}"
    )


def breakdown(runs: list[Run]) -> None:
    r = best(runs)
    rest = r.wall_s - r.decode_s - r.step_s
    print(
        f"  best run: decode_all {r.decode_s:.2f} s ({r.decode_s / r.wall_s:.0%}),"
        f" step {r.step_s:.2f} s ({r.step_s / r.wall_s:.0%}),"
        f" Kafka poll + commit + rest {rest:.2f} s ({rest / r.wall_s:.0%});"
        f"\n  by themselves decode_all {r.readings / r.decode_s:,.0f} and step"
        f" {r.readings / r.step_s:,.0f} readings/s"
    )


def header() -> None:
    head = ("", "readings", "wall s", "best /s", "median /s", "cores", "/ CPU-s")
    print("{:<40}{:>11}{:>8}{:>12}{:>12}{:>7}{:>12}".format(*head))


def timed(what: str, fn: Callable[[], Any]) -> Any:
    t = time.perf_counter()
    out = fn()
    print(f"  {what}: {time.perf_counter() - t:.1f} s", file=sys.stderr)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--readings", type=int, default=100_000, help="for the comparison")
    ap.add_argument("--big-readings", type=int, default=2_000_000, help="for our throughput")
    ap.add_argument("--repeat", type=int, default=5, help="runs of ours; quix runs twice")
    ap.add_argument("--skip-quix", action="store_true", help="only our throughput")
    args = ap.parse_args()
    if not args.skip_quix and importlib.util.find_spec("quixstreams") is None:
        print(
            "quixstreams is not installed: `.venv/bin/pip install -e '.[bench]'` (or"
            " `pip install quixstreams`), or run with --skip-quix for our figures alone",
            file=sys.stderr,
        )
        sys.exit(1)
    logging.basicConfig(level=logging.WARNING)
    # aiokafka logs the broker's start-up (no leader yet, no coordinator yet) as errors; a real
    # failure still raises or times out
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        run(Path(d), args)
    print(f"\n(total {time.perf_counter() - started:.0f} s, broker start and producing included)")


def run(work: Path, args: argparse.Namespace) -> None:
    small, big = poll_batches(args.readings), poll_batches(args.big_readings)
    n_small, n_big = sum(b.size for b in small), sum(b.size for b in big)
    specs = specs_of(workload(CHANNELS, CHANNELS))
    aggregate(small[:100], specs, {})  # compile, or load numba's cache
    t = time.perf_counter()
    with kafka_broker(work / "kafka") as bootstrap:
        print(f"  Kafka broker started: {time.perf_counter() - t:.1f} s", file=sys.stderr)
        topics = {"batches": "bench.batches", "big": "bench.batches.big", "json": "bench.json"}

        async def prepare() -> None:
            async with KafkaBus(bootstrap) as bus:
                await bus.ensure_topics(list(topics.values()), PARTITIONS, 1)
            await produce_batches(bootstrap, topics["batches"], small)
            await produce_batches(bootstrap, topics["big"], big)

        timed("produced the batch topics", lambda: asyncio.run(prepare()))
        if not args.skip_quix:
            timed("produced the JSON topic", lambda: produce_json(bootstrap, topics["json"], small))
        ours_runs = [
            asyncio.run(ours(bootstrap, topics["batches"], n_small, f"ours-{i}"))
            for i in range(args.repeat)
        ]
        big_runs = [
            asyncio.run(ours(bootstrap, topics["big"], n_big, f"big-{i}"))
            for i in range(max(1, args.repeat // 2))
        ]
        quix_runs = [
            quix(bootstrap, topics["json"], n_small, f"quix-{i}", work / f"quix-{i}")
            for i in range(0 if args.skip_quix else 2)
        ]
    print(
        f"{CHANNELS:,} channels polled every second, {PER_METER} per meter,"
        f" {PARTITIONS} partitions;"
        f"\nconsume + compute only, timed from the first message in hand (best and median run;"
        f"\ncores = process CPU time / wall time, / CPU-s = readings per CPU second of the"
        f"\nbenchmark process, the figure that holds when other processes share the cores):"
    )
    header()
    line(f"ours, {len(small):,} ReadingBatch messages", ours_runs)
    breakdown(ours_runs)
    if quix_runs:
        line(f"Quix Streams, {n_small:,} JSON messages", quix_runs)
        ratio = best(ours_runs).rate / best(quix_runs).rate
        median_ratio = statistics.median(r.rate for r in ours_runs) / statistics.median(
            r.rate for r in quix_runs
        )
        o, q = best(ours_runs), best(quix_runs)
        cpu_ratio = (o.readings / o.cpu_s) / (q.readings / q.cpu_s)
        print(
            f"ratio ours / Quix: {ratio:.1f}x (best runs), {median_ratio:.1f}x (medians),"
            f" {cpu_ratio:.1f}x per CPU second; goal >= 5x: {'met' if ratio >= 5 else 'not met'}"
        )
    print("\naggregator throughput, Kafka -> compute, no store:")
    header()
    line(f"ours, {len(big):,} ReadingBatch messages", big_runs)
    breakdown(big_runs)
    r = best(big_runs)
    per_cpu_s = r.readings / r.cpu_s
    goal = "met" if max(r.rate, per_cpu_s) >= 1e6 else "not met"
    print(
        f"goal >= 1,000,000 readings/s on one core: {goal}"
        f" ({r.rate:,.0f}/s wall, {per_cpu_s:,.0f} per CPU second)"
    )


if __name__ == "__main__":
    main()

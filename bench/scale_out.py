"""Horizontal scale: Kafka -> N `plantpulse aggregator` processes (one consumer group) ->
PostgreSQL, readings/s with 1 and with 2 processes over the same messages in the same run.

    python -m bench.scale_out [--channels C] [--polls P] [--partitions K]

The readings of bench.pipeline are produced once into a topic of K partitions on the test
harness's broker. Each run starts its processes in a new consumer group with a fresh database,
and is timed from the moment the group is stable with every process owning partitions to the
commit of the last message; the readings committed before that moment are left out of the rate.
CPU of the broker, of PostgreSQL and of each aggregator over the same interval comes from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import yaml
from aiokafka.admin import AIOKafkaAdminClient

from bench.pipeline import (
    PER_METER,
    broker_pid,
    plant_data,
    poll_batches,
    process_cpu_s,
    stored_readings,
)
from bench.quix_compare import produce_batches
from compute.model import NS_PER_S
from services.bus.kafka import KafkaBus
from tests.harness.kafka import kafka_broker
from tests.harness.kafka_groups import group_assignment
from tests.harness.postgres import postgres_cluster

TOPIC = "bench.scale-out"
TIMEOUT_S = 300.0
POLL_S = 0.2


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    """One run: its processes, the readings timed and the CPU seconds each party used."""

    processes: int
    readings: int
    wall_s: float
    cpu_s: dict[str, float]

    @property
    def per_s(self) -> float:
        return self.readings / self.wall_s


@contextmanager
def aggregators(n: int, env: dict[str, str], logs: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """n `plantpulse aggregator` processes, stopped with SIGTERM at the end."""
    procs = []
    try:
        for i in range(n):
            log = (logs / f"aggregator-{n}-{i}.log").open("wb")
            cmd = [sys.executable, "-m", "services.cli", "aggregator"]
            procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT))
        yield procs
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)


def postmaster_pid(dsn: str) -> int:
    """The parent of one of the server's backends."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    stat = Path(f"/proc/{row[0]}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def fresh_database(dsn: str, name: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return psycopg.conninfo.make_conninfo(dsn, dbname=name)


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent outside idle and iowait, all processes included."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


async def committed(admin: AIOKafkaAdminClient, group: str) -> int:
    offsets = await admin.list_consumer_group_offsets(group)
    return sum(max(0, o.offset) for o in offsets.values())


async def measure(
    bootstrap: str, group: str, n: int, partitions: int, n_messages: int, pids: dict[str, int]
) -> tuple[int, float, dict[str, float]]:
    """Messages timed, wall seconds and CPU seconds per party, from a stable group to the end."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        state, owners = await group_assignment(bootstrap, group)
        every = sorted(p for ps in owners.values() for p in ps) == list(range(partitions))
        if state == "Stable" and len(owners) == n and all(owners.values()) and every:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"group {group} never stable with {n} members: {state} {owners}")
        await asyncio.sleep(POLL_S)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        cpu0 = {k: process_cpu_s(pid, children=k == "PostgreSQL") for k, pid in pids.items()}
        cpu0["machine (all)"] = machine_busy_s()
        t0, done0 = time.perf_counter(), await committed(admin, group)
        while (done := await committed(admin, group)) < n_messages:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{done:,} of {n_messages:,} messages committed")
            await asyncio.sleep(POLL_S)
        wall_s = time.perf_counter() - t0
        cpu1 = {k: process_cpu_s(pid, children=k == "PostgreSQL") for k, pid in pids.items()}
        cpu1["machine (all)"] = machine_busy_s()
    finally:
        await admin.close()
    return n_messages - done0, wall_s, {k: cpu1[k] - cpu0[k] for k in cpu0}


def one_run(
    n: int,
    bootstrap: str,
    cluster: str,
    env: dict[str, str],
    args: argparse.Namespace,
    n_messages: int,
    n_readings: int,
    work: Path,
) -> Run:
    dsn = fresh_database(cluster, f"scale_{n}")
    group = f"bench-scale-out-{n}"
    env = {**env, "PT_PG_DSN": dsn, "PT_CONSUMER_GROUP": group}
    pids = {"Kafka broker": broker_pid(str(work / "kafka")) or 0, "PostgreSQL": postmaster_pid(dsn)}
    with aggregators(n, env, work) as procs:
        pids |= {f"aggregator {i + 1}": p.pid for i, p in enumerate(procs)}
        messages, wall_s, cpu_s = asyncio.run(
            measure(bootstrap, group, n, args.partitions, n_messages, pids)
        )
    if (stored := asyncio.run(stored_readings(dsn))) != n_readings:
        raise RuntimeError(f"{n} aggregators stored {stored:,} readings, not {n_readings:,}")
    return Run(processes=n, readings=messages * PER_METER, wall_s=wall_s, cpu_s=cpu_s)


def run(work: Path, args: argparse.Namespace) -> list[Run]:
    t0_ns = (time.time_ns() // (60 * NS_PER_S)) * 60 * NS_PER_S - args.polls * NS_PER_S
    batches = poll_batches(args.channels, args.polls, t0_ns)
    n_readings = sum(b.size for b in batches)
    site = {"id": "s", "name": "S", "timezone": "UTC", "areas": [{"id": "u", "kind": "utility"}]}
    plant_file = work / "plant.yaml"
    plant_file.write_text(yaml.safe_dump({"sites": [site], "meters": plant_data(args.channels)}))
    with kafka_broker(work / "kafka") as bootstrap, postgres_cluster(work / "pg") as cluster:

        async def prepare() -> None:
            async with KafkaBus(bootstrap) as bus:
                await bus.ensure_topics([TOPIC, f"{TOPIC}.dlq"], args.partitions, 1)
            await produce_batches(bootstrap, TOPIC, batches)

        asyncio.run(prepare())
        env = {
            **os.environ,
            "PT_CONFIG": str(plant_file),
            "PT_KAFKA_BOOTSTRAP": bootstrap,
            "PT_READINGS_TOPIC": TOPIC,
            "PT_KAFKA_PARTITIONS": str(args.partitions),
            "PT_DATA_DIR": str(work / "data"),
            "PT_AGGREGATOR_METRICS_PORT": "0",  # several on this host: no probe server
        }
        return [
            one_run(n, bootstrap, cluster, env, args, len(batches), n_readings, work)
            for n in (1, 2)
        ]


def report(args: argparse.Namespace, runs: list[Run], load_start: float) -> None:
    n_readings = args.channels * args.polls
    print(
        f"{args.channels:,} channels polled every second for {args.polls:,} s: {n_readings:,}"
        f" readings in {n_readings // PER_METER:,} messages, {args.partitions} partitions;\n"
        f"broker, PostgreSQL and aggregators on this {os.cpu_count()}-core machine (load average"
        f" {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end)"
    )
    for r in runs:
        print(
            f"\n{r.processes} aggregator process(es): {r.readings:,} readings timed in"
            f" {r.wall_s:.2f} s: {r.per_s:,.0f} readings/s; CPU s (cores busy):"
        )
        for what, s in r.cpu_s.items():
            print(f"  {what:<16}{s:>7.2f} s {s / r.wall_s:>5.2f}")
        ours = sum(s for what, s in r.cpu_s.items() if what != "machine (all)")
        rest = r.cpu_s["machine (all)"] - ours
        for what, s in (("pipeline (sum)", ours), ("everything else", rest)):
            print(f"  {what:<16}{s:>7.2f} s {s / r.wall_s:>5.2f}")
    print(f"\nratio 2 / 1 aggregators: {runs[1].per_s / runs[0].per_s:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--channels", type=int, default=1_000)
    ap.add_argument("--polls", type=int, default=3_000, help="seconds of 1 s polls")
    ap.add_argument("--partitions", type=int, default=4)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # the broker's start-up noise
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as d:
        runs = run(Path(d), args)
    report(args, runs, load_start)


if __name__ == "__main__":
    main()

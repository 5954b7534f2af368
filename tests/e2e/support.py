"""Shared pieces of the end-to-end tests: a test plant on free ports, the plantpulse processes
of a test, what reached the topic and the store, and the ground-truth check."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import yaml
from aiokafka import AIOKafkaConsumer

from compute import codec
from compute.model import NS_PER_S
from compute.plant import ChannelKind, Plant
from ingest.simulator.model import PlantSimulator
from services.config import load_plant
from tests.harness import free_port

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "medtech-plant.yaml"
BUCKET_S = 10
BUCKET_NS = BUCKET_S * NS_PER_S


def plant_on_free_ports(tmp_path: Path) -> tuple[Plant, Path]:
    """The example plant on free ports, with the office meter a few Wh before its rollover."""
    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    opcua, modbus = free_port(), free_port()
    for m in data["meters"]:
        m["endpoint"] = m["endpoint"].replace(":4840/", f":{opcua}/").replace(":5020", f":{modbus}")
        if m["id"] == "office-meter":
            m["channels"][0]["simulate"]["start"] = 42949672.96 - 0.04
    path = tmp_path / "plant.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_plant(path), path


SPAN_SQL = (
    "SELECT channel_id, min(ts_ns), max(ts_ns) FROM readings WHERE quality = 0 GROUP BY channel_id"
)


def window(plant: Plant, spans: list[tuple[str, int, int]]) -> tuple[int, int]:
    """Whole buckets inside every counter's stored good readings (rows of SPAN_SQL), so each
    total is the counter's advance between readings on both sides; on a loaded machine the
    first and last readings can lag the run's start and stop by seconds.
    """
    counters = {k for k, r in plant.channels.items() if r.channel.kind is ChannelKind.COUNTER}
    first = max(lo for key, lo, _ in spans if key in counters)
    last = min(hi for key, _, hi in spans if key in counters)
    a = -(-first // BUCKET_NS) * BUCKET_NS
    b = last // BUCKET_NS * BUCKET_NS
    assert b - a >= 2 * BUCKET_NS, "the run was too short for a two-bucket window"
    return a, b


def iso(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / NS_PER_S, UTC).isoformat()


def resolution(plant: Plant, key: str) -> float:
    """A counter's resolution: its register scale, or 1e-6 of a unit for floating-point values."""
    reg = plant.channels[key].channel.modbus
    return reg.scale if reg is not None else 1e-6


def assert_totals_match_ground_truth(
    plant: Plant, sim: PlantSimulator, totals: dict[str, Any], a_ns: int, b_ns: int
) -> None:
    """Per channel and per utility, served totals equal the simulator's advance to the resolution.

    Two resolution steps: the register truncates at both ends of the period.
    """
    served = {c["channel_id"]: c["total"] for c in totals["channels"]}
    counters = [k for k, r in plant.channels.items() if r.channel.kind is ChannelKind.COUNTER]
    assert set(served) == set(counters)
    for key in counters:
        truth = sim.advance(key, a_ns, b_ns)
        assert truth > 0 or key.startswith("line-1-plc")
        assert abs(served[key] - truth) <= 2 * resolution(plant, key), (key, served[key], truth)
    for u in totals["utilities"]:
        truth = sum(sim.advance(k, a_ns, b_ns) for k in u["channels"])
        res = sum(2 * resolution(plant, k) for k in u["channels"])
        assert abs(u["total"] - truth) <= res, (u, truth)
        assert all(plant.channels[k].meter.parent is None for k in u["channels"])


class Procs:
    """plantpulse processes started by the test, all stopped at the end whatever happens."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.running: list[subprocess.Popen[bytes]] = []
        self.probe_port: dict[int, int] = {}  # by pid

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        """Start a process; an aggregator or alerting process serves its probes on a port of
        its own (probe_port), so several can run on this host."""
        log = (self.logs / f"{args[0]}-{len(self.running)}.log").open("wb")
        port = free_port()
        own = {"PT_AGGREGATOR_METRICS_PORT": str(port), "PT_ALERTING_METRICS_PORT": str(port)}
        p = subprocess.Popen(
            [sys.executable, "-m", "services.cli", *args],
            env={**self.env, **own},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.running.append(p)
        self.probe_port[p.pid] = port
        return p

    def run(self, *args: str) -> str:
        """Run a plantpulse command to its end; its stdout."""
        done = subprocess.run(
            [sys.executable, "-m", "services.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout.strip()

    def stop_all(self) -> None:
        for p in self.running:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.running:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)


async def topic_readings(bootstrap: str, topic: str) -> set[tuple[str, int]]:
    """Every (channel, ts_ns) published to the topic, read back with a throwaway group."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"check-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    out: set[tuple[str, int]] = set()
    try:
        while batch := await consumer.getmany(timeout_ms=3000):
            for records in batch.values():
                for r in records:
                    if r.value.startswith(b"PP"):
                        b = codec.decode(r.value)
                        out |= {
                            (b.channel_ids[i], int(t))
                            for i, t in zip(b.channel_index, b.ts_ns, strict=True)
                        }
    finally:
        await consumer.stop()
    return out


def stored(dsn: str) -> set[tuple[str, int]]:
    """Every (channel, ts_ns) in the readings table."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT channel_id, ts_ns FROM readings").fetchall()
    return {(str(c), int(t)) for c, t in rows}


async def until(predicate: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    """Poll the predicate every second until it holds, or fail after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(1.0)
    raise AssertionError(f"timed out waiting for {what}")

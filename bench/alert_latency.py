"""Alert latency: a breaching reading entering the bus -> the alert at a local webhook receiver and
on the API's SSE stream, under a background load of readings, against the bus round trip of the
same probe reading to a plain consumer in the same run.

    python -m bench.alert_latency [--channels C] [--rate R] [--probes P] [--interval S]

Everything runs in this one process, as `plantpulse demo` runs it: MemoryBus, SqliteStore in a
temporary directory, the real Alerting process (services.alerting, with a high limit on every
channel), the API on uvicorn with the alerts fed straight to its live hub, the webhook notifier
through the outbox, and a raw HTTP receiver. A probe channel goes above its limit and back every
`interval` seconds; each breach raises a new alert (non-latching rule, no on-delay).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn
import yaml

from compute import codec
from compute.alert_config import parse_rules
from compute.alert_state import alert_id
from compute.model import Quality, ReadingBatch
from compute.plant import Plant
from services.access import ALL_SITES, Role, issue
from services.alert_rulebook import seed
from services.alert_settings import AlertSettings, WebhookSettings
from services.alerting_setup import hub_sink, open_alerting
from services.api import create_app
from services.bus.memory import MemoryBus
from services.live_hub import LiveHub
from services.settings import Settings
from services.store.sqlite import SqliteStore
from tests.harness import free_port
from tests.plants import gauge, meter, one_site
from tests.unit.services.alert_support import SECRET, receiver

TOPIC = "plantpulse.readings"
PER_METER = 20
PROBE = "probe.level"
GOAL_P99_S = 1.0


def plant_of(n_channels: int) -> Plant:
    meters = [
        meter(
            f"m{m}",
            "opcua",
            "opc.tcp://plant:4840",
            [gauge(f"c{i:02d}", node_id=f"ns=2;s={i}") for i in range(PER_METER)],
        )
        for m in range(n_channels // PER_METER)
    ]
    meters.append(
        meter("probe", "opcua", "opc.tcp://plant:4840", [gauge("level", node_id="ns=2;s=p")])
    )
    return one_site(meters)


RULES = """
rules:
  - id: everything-high
    type: high_limit
    scope: {utility: environment}
    alert: 1000
    clear: 900
    latching: false
"""


async def load(bus: MemoryBus, plant: Plant, rate: float, stop: asyncio.Event) -> int:
    """Readings of every channel but the probe at `rate` per second in all, one batch per
    meter per round, values far below the limits."""
    meters = [m for m in plant.meters if m.id != "probe"]
    per_round = len(meters) * PER_METER
    period_s = per_round / rate
    sent, rnd = 0, 0
    start = time.perf_counter()
    rng = np.random.default_rng(1)
    while not stop.is_set():
        now_ns = time.time_ns()
        for m in meters:
            ids = tuple(f"{m.id}.{c.id}" for c in m.channels)
            b = ReadingBatch(
                meter_id=m.id,
                channel_ids=ids,
                channel_index=np.arange(len(ids), dtype=np.uint16),
                ts_ns=np.full(len(ids), now_ns, np.int64),
                value=rng.uniform(0, 100, len(ids)),
                quality=np.zeros(len(ids), np.uint8),
                server_ts_ns=np.full(len(ids), now_ns, np.int64),
                receive_ts_ns=now_ns,
            )
            await bus.publish(TOPIC, m.id.encode(), codec.encode(b))
            sent += len(ids)
        rnd += 1
        await asyncio.sleep(max(0.0, start + rnd * period_s - time.perf_counter()))
    return sent


def probe_batch(ts_ns: int, value: float) -> bytes:
    b = ReadingBatch.from_rows(
        meter_id="probe", receive_ts_ns=ts_ns, rows=[(PROBE, ts_ns, value, Quality.GOOD)]
    )
    return codec.encode(b)


async def plain_consumer(bus: MemoryBus, seen: dict[int, float], stop: asyncio.Event) -> None:
    """The baseline: a consumer group that only polls and notes when each probe arrives."""
    async with bus.subscribe(TOPIC, "bench-baseline") as sub:
        while not stop.is_set():
            messages = await sub.poll(2000, timeout_s=0.2)
            at = time.perf_counter()
            for m in messages:
                if m.key == b"probe":
                    b = codec.decode(m.value)
                    seen.setdefault(int(b.ts_ns[0]), at)
            if messages:
                await sub.commit(messages)


async def sse(base: str, token: str, seen: dict[str, float], stop: asyncio.Event) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx.AsyncClient(base_url=base, timeout=None, headers=headers) as client,
        client.stream("GET", "/v1/stream", params={"types": "alert"}) as r,
    ):
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                # the first event of the alert: a slow client gets only the newest state
                # of each alert, so its "active" may have become "cleared" meanwhile
                seen.setdefault(json.loads(line[6:])["id"], time.perf_counter())
            if stop.is_set():
                return


@contextlib.asynccontextmanager
async def api(plant: Plant, store: SqliteStore, hub: LiveHub) -> AsyncIterator[str]:
    port = free_port()
    app = create_app(plant, store, hub=hub)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):  # uvicorn has no event for it
        if server.started:
            break
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        hub.close()
        server.should_exit = True
        await task


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.array(xs), q)) if xs else float("nan")


async def run(channels: int, rate: float, probes: int, interval_s: float) -> dict[str, Any]:
    plant = plant_of(channels)
    bus = MemoryBus(partitions=4, retain=50_000)
    hub = LiveHub()
    stop = asyncio.Event()
    with tempfile.TemporaryDirectory() as tmp:
        async with receiver() as hook, SqliteStore(Path(tmp) / "s.sqlite3") as store:
            await seed(store, parse_rules(yaml.safe_load(RULES)), "bench", time.time_ns())
            tok, raw = issue(name="bench", role=Role.ADMIN, sites=(ALL_SITES,), created_at_ns=1)
            await store.add_token(tok, actor="bench", reason="bench")
            hooks = [WebhookSettings(url=hook.url, secret=SECRET)]  # type: ignore[arg-type]
            settings = Settings(alerts=AlertSettings(webhooks=hooks), poll_max_records=2000)
            baseline: dict[int, float] = {}
            on_sse: dict[str, float] = {}
            async with (
                api(plant, store, hub) as base,
                open_alerting(plant, bus, store, settings, live=hub_sink(hub)) as alerting,
                asyncio.TaskGroup() as tg,
            ):
                tasks = [
                    tg.create_task(alerting.run()),
                    tg.create_task(plain_consumer(bus, baseline, stop)),
                    tg.create_task(sse(base, raw, on_sse, stop)),
                ]
                loader = tg.create_task(load(bus, plant, rate, stop))
                await asyncio.sleep(3.0)  # warm up: numba, the first states, the SSE stream
                sent_at: dict[int, float] = {}
                t_start = time.perf_counter()
                for _ in range(probes):
                    ts = time.time_ns()
                    sent_at[ts] = time.perf_counter()
                    await bus.publish(TOPIC, b"probe", probe_batch(ts, 5000.0))
                    await asyncio.sleep(interval_s / 2)
                    await bus.publish(TOPIC, b"probe", probe_batch(time.time_ns(), 0.0))
                    await asyncio.sleep(interval_s / 2)
                wall_s = time.perf_counter() - t_start
                await asyncio.sleep(2.0)  # the last ones arrive
                stop.set()
                sent = await loader
                for t in tasks:
                    t.cancel()
            hook_at = {
                p["alert_id"]: t / 1e9 for p, t in zip(hook.posts, hook.arrived_ns, strict=True)
            }
    # arrival times: the receiver's wall clock; perf_counter for the rest (same process)
    offset = time.time() - time.perf_counter()
    lat_hook, lat_sse, lat_bus = [], [], []
    for ts, at in sent_at.items():
        aid = alert_id("everything-high", PROBE, ts)
        if aid in hook_at:
            lat_hook.append(hook_at[aid] - offset - at)
        if aid in on_sse:
            lat_sse.append(on_sse[aid] - at)
        if ts in baseline:
            lat_bus.append(baseline[ts] - at)
    return {
        "channels": channels,
        "load_readings_per_s": sent / (wall_s + 5.0),
        "probes": probes,
        "webhook": lat_hook,
        "sse": lat_sse,
        "bus": lat_bus,
        "events": alerting.events_total,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--channels", type=int, default=2000)
    p.add_argument("--rate", type=float, default=10_000.0, help="background readings per second")
    p.add_argument("--probes", type=int, default=200)
    p.add_argument("--interval", type=float, default=0.3, help="seconds between breaches")
    a = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    r = asyncio.run(run(a.channels, a.rate, a.probes, a.interval))
    print(
        f"background load: {r['load_readings_per_s']:,.0f} readings/s over {r['channels']:,}"
        f" channels (every one bound to a rule); {r['probes']} breaches, {r['events']} events"
    )
    print("| path | received | p50 | p99 | max |")
    print("|---|---|---|---|---|")
    for name, key in (
        ("baseline: bus round trip to a plain consumer", "bus"),
        ("breach -> alert at the webhook receiver", "webhook"),
        ("breach -> alert on SSE (/v1/stream)", "sse"),
    ):
        xs = r[key]
        print(
            f"| {name} | {len(xs)}/{r['probes']} | {pct(xs, 50) * 1000:.1f} ms"
            f" | {pct(xs, 99) * 1000:.1f} ms | {max(xs, default=float('nan')) * 1000:.1f} ms |"
        )
    worst = max(pct(r["webhook"], 99), pct(r["sse"], 99))
    print(
        f"p99 over both paths {worst * 1000:.0f} ms: goal < {GOAL_P99_S * 1000:.0f} ms"
        f" {'met' if worst < GOAL_P99_S else 'NOT met'}; p50 over the bus baseline:"
        f" webhook {pct(r['webhook'], 50) / pct(r['bus'], 50):.1f}x,"
        f" SSE {pct(r['sse'], 50) / pct(r['bus'], 50):.1f}x"
    )


if __name__ == "__main__":
    main()

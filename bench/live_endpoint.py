"""Live endpoint throughput: req/s of `GET /v1/live` (token, 300 channels) against a bare FastAPI
endpoint returning the same JSON payload, both on uvicorn on loopback in the same run.

    python -m bench.live_endpoint [--channels C] [--concurrency N] [--rounds R] [--round-s S]

The two servers run in one child process (one event loop, like the API process); this process
drives them with httpx keep-alive clients, in alternating rounds so machine load weighs on both.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing as mp
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from compute.aggregate import ChannelState, step
from compute.model import NS_PER_S, Quality, ReadingBatch
from compute.plant import Plant
from services.aggregator import channel_specs
from services.api import create_app
from services.store import StoreWrite
from services.store.sqlite import SqliteStore
from tests.harness import free_port
from tests.plants import gauge, meter, one_site
from tests.tokens import token_for

PER_METER = 20
GOAL = 0.7
log = logging.getLogger("bench.live_endpoint")


def plant_of(n_channels: int) -> Plant:
    meters = [
        meter(
            f"m{m}",
            "opcua",
            "opc.tcp://plant:4840",
            [gauge(f"c{i:02d}", node_id=f"ns=2;s={m}.{i}") for i in range(PER_METER)],
        )
        for m in range(max(1, n_channels // PER_METER))
    ]
    return one_site(meters)


async def _fill(store: SqliteStore, plant: Plant) -> None:
    """Latest values for every channel, as the aggregator writes them."""
    now_ns = time.time_ns()
    batches = [
        ReadingBatch.from_rows(
            meter_id=m.id,
            receive_ts_ns=now_ns,
            rows=[
                (f"{m.id}.{c.id}", now_ns, 20.0 + i, Quality.GOOD) for i, c in enumerate(m.channels)
            ],
        )
        for m in plant.meters
    ]
    r = step(batches, channel_specs(plant), dict[str, ChannelState](), 60 * NS_PER_S)
    await store.write(
        StoreWrite(readings=r.readings, buckets=r.buckets, state=r.state, events=r.events)
    )


async def started(server: uvicorn.Server) -> None:
    for _ in range(500):  # uvicorn has no event for it
        if server.started:
            return
        await asyncio.sleep(0.02)
    raise RuntimeError("uvicorn did not start within 10 s")


def bare_app(payload: list[dict[str, Any]]) -> FastAPI:
    """The baseline: a FastAPI route returning a JSON list of the same size, nothing else."""
    app = FastAPI()

    @app.get("/bare")
    async def bare() -> list[dict[str, Any]]:
        return payload

    return app


async def _serve(n_channels: int, conn: Connection) -> None:
    plant = plant_of(n_channels)
    with tempfile.TemporaryDirectory() as tmp:
        async with SqliteStore(Path(tmp) / "s.sqlite3") as store:
            await _fill(store, plant)
            token = await token_for(store)
            live_port, bare_port = free_port(), free_port()
            live = uvicorn.Server(
                uvicorn.Config(
                    create_app(plant, store), port=live_port, log_level="warning", lifespan="off"
                )
            )
            async with asyncio.TaskGroup() as tg:
                tg.create_task(live.serve())
                await started(live)
                async with httpx.AsyncClient() as c:
                    r = await c.get(
                        f"http://127.0.0.1:{live_port}/v1/live",
                        headers={"Authorization": f"Bearer {token}"},
                    )
                payload = r.json()
                bare = uvicorn.Server(
                    uvicorn.Config(
                        bare_app(payload), port=bare_port, log_level="warning", lifespan="off"
                    )
                )
                tg.create_task(bare.serve())
                await started(bare)
                conn.send((live_port, bare_port, token, len(r.content)))
                await asyncio.to_thread(conn.recv)  # until the parent is done
                live.should_exit = bare.should_exit = True


def _server_main(n_channels: int, conn: Connection) -> None:
    asyncio.run(_serve(n_channels, conn))


async def _load(url: str, headers: dict[str, str], concurrency: int, duration_s: float) -> int:
    """Requests completed in duration_s by `concurrency` keep-alive connections."""
    done = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=10.0) as client:
        await client.get(url)  # warm the connection and the server's caches
        end = time.perf_counter() + duration_s

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < end:
                r = await client.get(url)
                r.raise_for_status()
                done += 1

        async with asyncio.TaskGroup() as tg:
            for _ in range(concurrency):
                tg.create_task(worker())
    return done


async def _bench(args: argparse.Namespace, live_port: int, bare_port: int, token: str) -> None:
    totals = {"live": 0, "bare": 0}
    auth = {"Authorization": f"Bearer {token}"}
    for _ in range(args.rounds):
        totals["live"] += await _load(
            f"http://127.0.0.1:{live_port}/v1/live", auth, args.concurrency, args.round_s
        )
        totals["bare"] += await _load(
            f"http://127.0.0.1:{bare_port}/bare", {}, args.concurrency, args.round_s
        )
    seconds = args.rounds * args.round_s
    live_rps, bare_rps = totals["live"] / seconds, totals["bare"] / seconds
    print(f"baseline: bare FastAPI JSON endpoint   {bare_rps:8.0f} req/s")
    print(f"GET /v1/live (token, {args.channels} channels) {live_rps:8.0f} req/s")
    ratio = live_rps / bare_rps
    print(f"ratio: {ratio:.2f} (goal >= {GOAL}: {'met' if ratio >= GOAL else 'NOT met'})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--channels", type=int, default=300)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--round-s", type=float, default=2.5)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_server_main, args=(args.channels, child), daemon=True)
    server.start()
    try:
        live_port, bare_port, token, size_b = parent.recv()
        print(f"payload: {size_b / 1024:.0f} KiB of JSON, {args.concurrency} keep-alive clients")
        asyncio.run(_bench(args, live_port, bare_port, token))
    finally:
        parent.send("stop")
        server.join(10)
        if server.is_alive():
            server.terminate()


if __name__ == "__main__":
    main()

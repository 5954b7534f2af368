"""SSE fan-out: the API process's CPU share with 1,000 clients on `GET /v1/stream` while every
channel of a 40-channel plant updates at 1 Hz, against the same updates with no client connected.

    python -m bench.sse_fanout [--clients N] [--channels C] [--duration-s S]

The API (uvicorn, live hub, 1 Hz publisher) runs in its own process, whose CPU time is read from
/proc; the clients are raw asyncio sockets in another process, so their cost is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing as mp
import os
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

import uvicorn

from bench.live_endpoint import plant_of, started
from compute.model import NS_PER_S
from compute.plant import Plant
from services.api import create_app
from services.live_hub import LiveHub
from services.store.sqlite import SqliteStore
from tests.harness import free_port
from tests.tokens import token_for

log = logging.getLogger("bench.sse_fanout")


async def _publish(hub: LiveHub, plant: Plant, period_s: float) -> None:
    """Every channel's new value each period, as the live feed publishes it."""
    n = 0
    while True:
        n += 1
        now_ns = time.time_ns()
        for key, ref in plant.channels.items():
            hub.publish_channel(
                key,
                {"channel_id": key, "value": float(n), "quality": "good", "ts_ns": now_ns},
                site=ref.site.id,
                area=ref.area.id,
            )
        await asyncio.sleep(period_s - (time.time_ns() - now_ns) / NS_PER_S)


async def _serve(n_channels: int, conn: Connection) -> None:
    plant = plant_of(n_channels)
    hub = LiveHub()
    with tempfile.TemporaryDirectory() as tmp:
        async with SqliteStore(Path(tmp) / "s.sqlite3") as store:
            token = await token_for(store)
            port = free_port()
            config = uvicorn.Config(
                create_app(plant, store, hub=hub),
                port=port,
                log_level="warning",
                lifespan="off",
                backlog=4096,
            )
            server = uvicorn.Server(config)
            async with asyncio.TaskGroup() as tg:
                serving = tg.create_task(server.serve())
                publisher = tg.create_task(_publish(hub, plant, 1.0))
                await started(server)
                conn.send((os.getpid(), port, token))
                await asyncio.to_thread(conn.recv)
                hub.close()
                server.should_exit = True
                publisher.cancel()
                await serving


def _server_main(n_channels: int, conn: Connection) -> None:
    asyncio.run(_serve(n_channels, conn))


async def _client(port: int, token: str, received: list[int], stop: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET /v1/stream HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    try:
        while not stop.is_set():
            chunk = await reader.read(65536)
            if not chunk:
                return
            received[0] += len(chunk)
            received[1] += chunk.count(b"event: channel")
    finally:
        writer.close()


async def _clients(n: int, port: int, token: str, conn: Connection) -> None:
    received = [0, 0]  # bytes, channel events
    stop = asyncio.Event()
    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(_client(port, token, received, stop)))
        if i % 50 == 49:
            await asyncio.sleep(0.05)  # within the listen backlog
    conn.send("connected")
    await asyncio.to_thread(conn.recv)  # measuring starts
    start = list(received)
    await asyncio.to_thread(conn.recv)  # measuring ends
    conn.send((received[0] - start[0], received[1] - start[1], sum(not t.done() for t in tasks)))
    stop.set()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _clients_main(n: int, port: int, token: str, conn: Connection) -> None:
    asyncio.run(_clients(n, port, token, conn))


def _cpu_s(pid: int) -> float:
    """User plus system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _share(pid: int, duration_s: float) -> float:
    """The process's CPU share (1.0: one core) over the next duration_s."""
    cpu0, t0 = _cpu_s(pid), time.monotonic()
    time.sleep(duration_s)
    return (_cpu_s(pid) - cpu0) / (time.monotonic() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--channels", type=int, default=40)
    p.add_argument("--duration-s", type=float, default=30.0)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    ctx = mp.get_context("spawn")
    to_server, server_end = ctx.Pipe()
    server = ctx.Process(target=_server_main, args=(args.channels, server_end), daemon=True)
    server.start()
    pid, port, token = to_server.recv()
    try:
        time.sleep(2.0)  # settle
        idle = _share(pid, args.duration_s)
        to_clients, clients_end = ctx.Pipe()
        clients = ctx.Process(
            target=_clients_main, args=(args.clients, port, token, clients_end), daemon=True
        )
        clients.start()
        to_clients.recv()
        time.sleep(5.0)  # every client has its first state
        to_clients.send("start")
        busy = _share(pid, args.duration_s)
        to_clients.send("stop")
        got_b, events, open_streams = to_clients.recv()
        clients.join(30)
    finally:
        to_server.send("stop")
        server.join(15)
        if server.is_alive():
            server.terminate()
    per_client = (busy - idle) / args.clients
    per_event_us = (busy - idle) * args.duration_s / max(events, 1) * 1e6
    print(f"{args.channels} channels at 1 Hz, {args.duration_s:.0f} s per phase")
    print(f"baseline: the same updates, no client    CPU {idle * 100:6.1f} % of a core")
    print(
        f"{open_streams} SSE clients (of {args.clients})          CPU {busy * 100:6.1f} % of a core"
    )
    print(
        f"received {events / args.duration_s:,.0f} channel events/s, "
        f"{got_b / args.duration_s / 1e6:.1f} MB/s"
    )
    print(f"per client: {per_client * 100:.3f} % of a core; per event delivered: ", end="")
    print(f"{per_event_us:.1f} µs")


if __name__ == "__main__":
    main()

"""OPC UA subscription throughput: our OpcUaSource against a bare asyncua client subscribed to
the same nodes of the same server (a separate process), in one run.

    python -m bench.opcua_gateway [--tags N] [--rate-hz R] [--seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import multiprocessing
import resource
import time
from collections.abc import Callable
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.server.server import Server

from compute.plant import ChannelRef
from ingest.opcua_source import OpcUaSource
from tests.harness import free_port
from tests.plants import gauge, meter, one_site


async def _serve(port: int, tags: int, rate_hz: float) -> None:
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/bench/")
    idx = await server.register_namespace("urn:plantpulse:bench")
    folder = await server.nodes.objects.add_object(idx, "bench")
    ids = [
        (await folder.add_variable(ua.NodeId(f"t{i}", idx), f"t{i}", 0.0)).nodeid
        for i in range(tags)
    ]
    async with server:
        k = 0
        while True:
            k += 1
            for i, node_id in enumerate(ids):
                await server.write_attribute_value(node_id, ua.DataValue(ua.Variant(float(k + i))))
            await asyncio.sleep(1 / rate_hz)


def _server_process(port: int, tags: int, rate_hz: float) -> None:
    asyncio.run(_serve(port, tags, rate_hz))


def _channels(endpoint: str, tags: int, interval_s: float) -> list[ChannelRef]:
    channels = [
        gauge(f"t{i}", node_id=f"ns=2;s=t{i}", sampling={"queue_size": 1}) for i in range(tags)
    ]
    plant = one_site([meter("bench", "opcua", endpoint, channels, interval_s=interval_s)])
    return list(plant.channels.values())


class _Count:
    def __init__(self) -> None:
        self.n = 0

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        self.n += 1


async def _measure(
    run: Callable[[Callable[[int], None]], Any], seconds: float
) -> tuple[float, float]:
    """(readings/s, CPU µs per reading) of one client over `seconds` after a warm-up."""
    got = [0]
    task = asyncio.create_task(run(lambda n: got.__setitem__(0, got[0] + n)))
    await asyncio.sleep(3.0)  # connect and the first full publish
    n0, cpu0, t0 = got[0], time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    n, cpu, wall = got[0] - n0, time.process_time() - cpu0, time.perf_counter() - t0
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return n / wall, cpu / max(n, 1) * 1e6


async def main_async(tags: int, rate_hz: float, seconds: float) -> None:
    port = free_port()
    endpoint = f"opc.tcp://127.0.0.1:{port}/bench/"
    proc = multiprocessing.Process(target=_server_process, args=(port, tags, rate_hz), daemon=True)
    proc.start()
    try:
        await asyncio.sleep(4.0)
        interval_s = 1 / rate_hz

        async def bare(add: Callable[[int], None]) -> None:
            counter = _Count()
            async with Client(endpoint, timeout=10) as client:
                sub = await client.create_subscription(interval_s * 1000, counter)
                nodes = [client.get_node(f"ns=2;s=t{i}") for i in range(tags)]
                await sub.subscribe_data_change(
                    nodes, queuesize=1, sampling_interval=interval_s * 1000
                )
                last = 0
                while True:
                    await asyncio.sleep(0.1)
                    add(counter.n - last)
                    last = counter.n

        async def ours(add: Callable[[int], None]) -> None:
            source = OpcUaSource(
                endpoint, _channels(endpoint, tags, interval_s), publish_interval_s=interval_s
            )
            async for batch in source.batches():
                add(batch.size)

        bare_rate, bare_cpu = await _measure(bare, seconds)
        our_rate, our_cpu = await _measure(ours, seconds)
    finally:
        proc.terminate()
        proc.join(5)
    print(f"tags: {tags}, server updates every tag at {rate_hz:g} Hz, {seconds:g} s per client")
    print(f"bare asyncua client:  {bare_rate:10.0f} readings/s  {bare_cpu:7.1f} µs CPU per reading")
    print(f"OpcUaSource:          {our_rate:10.0f} readings/s  {our_cpu:7.1f} µs CPU per reading")
    print(
        f"ratio ours / bare:    {our_rate / bare_rate:10.2f} of the throughput, "
        f"{our_cpu / bare_cpu:.2f}x the CPU per reading"
    )
    cores = our_cpu * 10_000 / 1e6
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"per 10,000 tags at 1 Hz: {cores:.2f} cores; peak RSS of this process {rss_mib:.0f} MiB")


def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    ap = argparse.ArgumentParser()
    ap.add_argument("--tags", type=int, default=2000)
    ap.add_argument("--rate-hz", type=float, default=2.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    a = ap.parse_args()
    asyncio.run(main_async(a.tags, a.rate_hz, a.seconds))


if __name__ == "__main__":
    main()

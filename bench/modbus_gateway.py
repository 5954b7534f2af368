"""Modbus polls/s: our ModbusSource.poll (planned reads, decoding, a ReadingBatch) against a bare
pymodbus client loop reading the same registers from the same server (a separate process).

    python -m bench.modbus_gateway [--fields N] [--seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import struct
import time
from collections.abc import Awaitable, Callable, Sequence

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from ingest.modbus_source import ModbusSource
from tests.harness import free_port
from tests.plants import gauge, meter, one_site


async def _serve(port: int, registers: int) -> None:
    device = SimDevice(
        id=1,
        simdata=[SimData(address=0, count=registers, values=0x4049, datatype=DataType.REGISTERS)],
    )
    server = ModbusTcpServer([device], address=("127.0.0.1", port))
    await server.serve_forever()


def _server_process(port: int, registers: int) -> None:
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(_serve(port, registers))


def _source(endpoint: str, fields: int) -> ModbusSource:
    """`fields` float32 fields at consecutive addresses on one meter: 2 x fields registers."""
    channels = [
        gauge(f"f{i}", register={"address": 2 * i, "type": "float32"}) for i in range(fields)
    ]
    plant = one_site([meter("meter", "modbus_tcp", endpoint, channels)])
    return ModbusSource(endpoint, list(plant.channels.values()))


async def _rates(
    polls: Sequence[Callable[[], Awaitable[None]]], seconds: float, rounds: int = 10
) -> list[float]:
    """Polls/s of each loop, in alternating rounds, so that a change in the machine's load
    while the benchmark runs weighs on every loop alike."""
    for poll in polls:
        for _ in range(20):  # warm-up
            await poll()
    counts, spent = [0] * len(polls), [0.0] * len(polls)
    for _ in range(rounds):
        for i, poll in enumerate(polls):
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds / rounds:
                await poll()
                n += 1
            counts[i] += n
            spent[i] += time.perf_counter() - t0
    return [n / s for n, s in zip(counts, spent, strict=True)]


async def main_async(fields: int, seconds: float) -> None:
    port = free_port()
    endpoint = f"127.0.0.1:{port}"
    proc = multiprocessing.Process(target=_server_process, args=(port, 2 * fields), daemon=True)
    proc.start()
    try:
        await asyncio.sleep(2.0)
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=5)
        await client.connect()
        unpack = struct.Struct(f">{fields}f").unpack

        async def bare() -> None:
            words: list[int] = []
            for start in range(0, 2 * fields, 124):  # 125-register reads, whole fields
                count = min(124, 2 * fields - start)
                resp = await client.read_holding_registers(start, count=count, device_id=1)
                words += resp.registers
            unpack(struct.pack(f">{2 * fields}H", *words))

        source = _source(endpoint, fields)
        meter, refs = next(iter(source.meters.values()))

        async def ours() -> None:
            await source.poll(meter, refs)

        bare_rate, our_rate = await _rates([bare, ours], seconds)
        client.close()
        source.close()
    finally:
        proc.terminate()
        proc.join(5)
    print(
        f"fields: {fields} float32 on one unit ({2 * fields} registers),"
        f" {seconds:g} s each in alternating rounds"
    )
    print(f"bare pymodbus loop:   {bare_rate:8.0f} polls/s")
    print(f"ModbusSource.poll:    {our_rate:8.0f} polls/s")
    print(f"ratio ours / bare:    {our_rate / bare_rate:8.2f}")


def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    ap = argparse.ArgumentParser()
    ap.add_argument("--fields", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=5.0)
    a = ap.parse_args()
    asyncio.run(main_async(a.fields, a.seconds))


if __name__ == "__main__":
    main()

"""ModbusSource over each transport against our simulator: RTU on a serial line (a pseudo-terminal
pair joined in pure Python), RTU over TCP and Modbus TCP, many units on one connection.

A silent unit and a refused address make only their own channels BAD; the source only reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
import tty
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient

from compute.model import NS_PER_S, Quality, ReadingBatch
from compute.plant import Plant
from ingest import registers
from ingest.modbus_source import ModbusSource
from ingest.simulator.modbus_serial import serve_rtu_bus
from ingest.simulator.model import PlantSimulator
from ingest.simulator.servers import serve
from tests.harness import free_port
from tests.plants import meter, one_site

TIMEOUT_S = 20.0


def _gauge(cid: str, level: float, **reg: Any) -> dict[str, Any]:
    return {
        "id": cid,
        "unit": "x",
        "kind": "gauge",
        "utility": "electricity",
        "register": reg,
        "simulate": {"level": level},
    }


# Every type and order; constant gauges (no noise), some negative through their offset.
ALL_TYPES = [
    _gauge("i16", 10, address=0, type="int16", offset=1000),  # raw -990
    _gauge("u16", 4242, address=1, type="uint16", order="BADC"),
    _gauge("i32", 12.34, address=2, type="int32", order="DCBA", scale=0.01, offset=100000),
    _gauge("u32", 77120.123, address=4, type="uint32", order="CDAB", scale=0.001),
    _gauge("i64", 5, address=6, type="int64", order="BADC", offset=1e12),
    _gauge("u64", 1234567890123, address=10, type="uint64", order="DCBA"),
    _gauge("f32", 230.41, address=14, type="float32", order="CDAB"),
    _gauge("f64", 50.0625, address=16, type="float64", order="DCBA", scale=0.5, offset=1),
    _gauge("alarm", 1, address=20, type="bit", bit=3, order="BADC"),
    _gauge("ready", 0, address=20, type="bit", bit=4, order="BADC"),
    _gauge("inp", 21.5, address=0, type="float32", table="input"),
    _gauge("run", 1, address=5, type="bit", table="coil"),
    _gauge("trip", 0, address=6, type="bit", table="coil"),
    _gauge("door", 1, address=0, type="bit", table="discrete"),
    # not simulated, so the device refuses its address: illegal data address
    {**_gauge("refused", 0, address=100, type="uint16"), "simulate": None},
]
ENERGY = {
    "id": "energy",
    "unit": "kWh",
    "kind": "counter",
    "utility": "electricity",
    "register": {"address": 1, "type": "uint32", "scale": 0.01},  # address_base 1: wire 0
    "simulate": {"level": 500, "start": 1000},
}
SILENT = {**_gauge("v", 1, address=0, type="uint16"), "simulate": None}


def _plant(protocol: str, endpoint: str) -> Plant:
    def unit(mid: str, unit_id: int, channels: list[dict[str, Any]], **kw: Any) -> Any:
        options = {"timeout_s": 0.5, "retries": 1, **kw}
        return meter(mid, protocol, endpoint, channels, unit_id=unit_id, modbus=options)

    return one_site(
        [
            unit("all-types", 1, ALL_TYPES),
            unit("silent", 9, [SILENT], timeout_s=0.3),
            unit("energy", 2, [ENERGY], address_base=1),
        ]
    )


def _rows(batch: ReadingBatch) -> dict[str, tuple[int, float, Quality]]:
    return {
        batch.channel_ids[batch.channel_index[i]]: (
            int(batch.ts_ns[i]),
            float(batch.value[i]),
            Quality(int(batch.quality[i])),
        )
        for i in range(batch.size)
    }


def _expected(plant: Plant, sim: PlantSimulator, key: str, ts_ns: int) -> float:
    """What a gauge reads after the round trip through its register."""
    reg = plant.channels[key].channel.modbus
    assert reg is not None
    return registers.decode(registers.encode(sim.value(key, ts_ns), reg), reg)


async def _check_polls(plant: Plant, sim: PlantSimulator, source: ModbusSource) -> None:
    """Three rounds over all units: the silent one (it times out) and the refused address are
    BAD each time, everything else GOOD with exactly the simulated value; the counter goes up."""
    energy: list[float] = []
    async with asyncio.timeout(TIMEOUT_S):
        for _ in range(3):
            for meter, refs in source.meters.values():
                before_ns = time.time_ns()
                batch = await source.poll(meter, refs)
                took_s = (time.time_ns() - before_ns) / NS_PER_S
                # the silent unit times out, twice (one retry); the others answer at once
                assert took_s >= 0.6 if meter.id == "silent" else took_s < 0.3, (meter.id, took_s)
                rows = _rows(batch)
                assert set(rows) == {r.key for r in refs}
                for key, (ts_ns, value, quality) in rows.items():
                    assert before_ns <= ts_ns <= batch.receive_ts_ns
                    if key in ("silent.v", "all-types.refused"):
                        assert quality is Quality.BAD and math.isnan(value), key
                    elif key == "energy.energy":
                        assert quality is Quality.GOOD
                        energy.append(value)
                    else:
                        assert quality is Quality.GOOD, key
                        assert value == _expected(plant, sim, key, ts_ns), key
            await asyncio.sleep(0.3)
    assert energy == sorted(energy) and energy[0] >= 1000


def _sim(plant: Plant) -> PlantSimulator:
    return PlantSimulator(plant, seed=7, start_ns=time.time_ns() - 60 * NS_PER_S)


# --- RTU on a serial line ----------------------------------------------------------------------


@contextlib.contextmanager
def pty_pair() -> Iterator[tuple[str, str]]:
    """Two pseudo-terminals joined back to back like a null-modem cable, relayed on the running
    loop: bytes written to one device come out of the other. Pure Python, nothing to install.
    """
    loop = asyncio.get_running_loop()
    (m1, s1), (m2, s2) = os.openpty(), os.openpty()
    for fd in (s1, s2):
        tty.setraw(fd)  # no echo, no line editing, until the serial port sets its own mode
    for fd in (m1, m2):
        os.set_blocking(fd, False)

    def relay(src: int, dst: int) -> None:
        with contextlib.suppress(BlockingIOError):
            data = os.read(src, 4096)
            while data:  # frames are small; a full buffer would only delay them
                data = data[os.write(dst, data) :]

    loop.add_reader(m1, relay, m1, m2)
    loop.add_reader(m2, relay, m2, m1)
    try:
        yield os.ttyname(s1), os.ttyname(s2)
    finally:
        for fd in (m1, m2):
            loop.remove_reader(fd)
        for fd in (m1, s1, m2, s2):
            os.close(fd)


async def test_rtu_over_a_serial_line_with_a_silent_unit_on_the_bus() -> None:
    with pty_pair() as (server_device, meter_device):
        plant = _plant("modbus_rtu", meter_device)
        sim = _sim(plant)
        source = ModbusSource(meter_device, list(plant.channels.values()))
        assert source.protocol == "modbus_rtu"
        async with serve_rtu_bus(sim, meter_device, server_device):
            try:
                await _check_polls(plant, sim, source)
            finally:
                source.close()


# --- RTU over TCP and Modbus TCP ---------------------------------------------------------------


@contextlib.asynccontextmanager
async def _served(protocol: str) -> AsyncIterator[tuple[Plant, PlantSimulator, str]]:
    endpoint = f"127.0.0.1:{free_port()}"
    plant = _plant(protocol, endpoint)
    sim = _sim(plant)
    async with serve(sim):
        yield plant, sim, endpoint


async def test_rtu_over_tcp_with_a_silent_unit_on_the_connection() -> None:
    async with _served("modbus_rtu_tcp") as (plant, sim, endpoint):
        source = ModbusSource(endpoint, list(plant.channels.values()))
        try:
            await _check_polls(plant, sim, source)
        finally:
            source.close()


async def test_the_poll_loop_goes_on_past_a_silent_unit_which_turns_stale() -> None:
    async with _served("modbus_tcp") as (plant, _, endpoint):
        source = ModbusSource(
            endpoint, list(plant.channels.values()), interval_s=0.2, stale_after_intervals=5
        )
        seen: dict[str, list[Quality]] = {}
        stale_at: dict[str, int] = {}  # poll time of each meter's first STALE reading
        first_ns: dict[str, int] = {}
        batches = source.batches()
        async with contextlib.aclosing(batches), asyncio.timeout(TIMEOUT_S):
            async for batch in batches:
                rows = _rows(batch).values()
                seen.setdefault(batch.meter_id, []).extend(q for _, _, q in rows)
                first_ns.setdefault(batch.meter_id, batch.receive_ts_ns)
                if Quality.STALE in (q for _, _, q in rows):
                    stale_at.setdefault(batch.meter_id, batch.receive_ts_ns)
                if {"silent", "all-types"} <= set(stale_at) and len(seen["energy"]) >= 3:
                    break
        # BAD while it may just have missed a poll, then STALE for good once 5 intervals (1 s)
        # passed without a good value
        silent = seen["silent"]
        bad = silent.index(Quality.STALE)
        assert bad >= 1 and set(silent[:bad]) == {Quality.BAD}
        assert set(silent[bad:]) == {Quality.STALE}
        assert stale_at["silent"] - first_ns["silent"] >= 1.0 * NS_PER_S
        assert set(seen["energy"]) == {Quality.GOOD}
        refused = [q for q in seen["all-types"] if q is not Quality.GOOD]
        assert len(refused) == len(seen["all-types"]) // len(ALL_TYPES)
        assert refused[0] is Quality.BAD and refused[-1] is Quality.STALE


@contextlib.asynccontextmanager
async def _recording_proxy(upstream: str) -> AsyncIterator[tuple[str, list[int]]]:
    """A TCP proxy recording the function code of every Modbus TCP request passing through."""
    codes: list[int] = []
    host, _, port = upstream.rpartition(":")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 5)

        async def requests() -> None:
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                while True:
                    mbap = await reader.readexactly(7)  # transaction, protocol, length, unit
                    pdu = await reader.readexactly(int.from_bytes(mbap[4:6], "big") - 1)
                    codes.append(pdu[0])
                    up_writer.write(mbap + pdu)
                    await up_writer.drain()
            up_writer.close()

        async def replies() -> None:
            with contextlib.suppress(ConnectionError):
                while data := await up_reader.read(4096):
                    writer.write(data)
                    await writer.drain()
            writer.close()

        await asyncio.gather(requests(), replies())

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}", codes


async def test_a_full_poll_of_every_type_sends_only_read_function_codes() -> None:
    async with (
        _served("modbus_tcp") as (plant, sim, endpoint),
        _recording_proxy(endpoint) as (proxied, codes),
    ):
        source = ModbusSource(proxied, list(plant.channels.values()))
        try:
            await _check_polls(plant, sim, source)
        finally:
            source.close()
    assert set(codes) == {1, 2, 3, 4}, codes  # coils, discrete inputs, holding, input registers


async def test_the_simulated_meters_refuse_every_write() -> None:
    async with _served("modbus_tcp") as (_, _, endpoint):
        host, _, port = endpoint.rpartition(":")
        client = AsyncModbusTcpClient(host, port=int(port), timeout=2, retries=0)
        try:
            assert await client.connect()
            before = await client.read_holding_registers(0, count=2, device_id=1)
            writes = [
                client.write_register(0, 7, device_id=1),
                client.write_registers(0, [7, 7], device_id=1),
                client.write_coil(5, False, device_id=1),
                client.write_coils(5, [False, True], device_id=1),
            ]
            for write in writes:
                resp = await write
                assert resp.isError() and resp.exception_code == 1  # illegal function
            after = await client.read_holding_registers(0, count=2, device_id=1)
            assert after.registers == before.registers
        finally:
            client.close()


# --- Reconnection ------------------------------------------------------------------------------


async def test_reconnection_backs_off_exponentially_up_to_a_cap() -> None:
    endpoint = f"127.0.0.1:{free_port()}"
    plant = _plant("modbus_tcp", endpoint)
    refs = [r for r in plant.channels.values() if r.meter.id == "energy"]
    meter = refs[0].meter
    source = ModbusSource(
        endpoint, refs, reconnect_min_s=0.2, reconnect_max_s=0.8, stale_after_intervals=100
    )  # BAD, not STALE, throughout: this test is about reconnecting
    delays = []
    try:
        async with asyncio.timeout(TIMEOUT_S):
            for _ in range(4):  # nothing listens: every try fails and doubles the wait
                batch = await source.poll(meter, refs)
                assert {q for _, _, q in _rows(batch).values()} == {Quality.BAD}
                delays.append(source.reconnect_delay_s)
                started = time.monotonic()
                await source.poll(meter, refs)  # too early: no connection attempt
                assert time.monotonic() - started < 0.1
                assert source.reconnect_delay_s == delays[-1]
                await asyncio.sleep(source.reconnect_max_s + 0.05)  # the next try is due
            assert delays == [0.4, 0.8, 0.8, 0.8]
            async with serve(_sim(plant)):
                await asyncio.sleep(0.9)
                batch = await source.poll(meter, refs)
                assert {q for _, _, q in _rows(batch).values()} == {Quality.GOOD}
                assert source.reconnect_delay_s == 0.2
            # the server went away: BAD at once, and GOOD again once it is back
            batch = await source.poll(meter, refs)
            assert {q for _, _, q in _rows(batch).values()} == {Quality.BAD}
            async with serve(_sim(plant)):
                for _ in range(20):
                    batch = await source.poll(meter, refs)
                    if {q for _, _, q in _rows(batch).values()} == {Quality.GOOD}:
                        break
                    await asyncio.sleep(0.2)
                else:
                    pytest.fail("the source did not reconnect")
    finally:
        source.close()


async def test_concurrent_polls_share_one_bus_in_turn() -> None:
    async with _served("modbus_rtu_tcp") as (plant, _, endpoint):
        source = ModbusSource(endpoint, list(plant.channels.values()))
        try:
            meters = [m for m in source.meters.values() if m[0].id != "silent"]
            async with asyncio.timeout(TIMEOUT_S):
                batches = await asyncio.gather(*(source.poll(m, r) for m, r in meters * 3))
            for batch in batches:
                qualities = {k: q for k, (_, _, q) in _rows(batch).items()}
                assert all(q is Quality.GOOD for k, q in qualities.items() if "refused" not in k)
        finally:
            source.close()

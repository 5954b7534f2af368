"""Our OPC UA and Modbus sources against independent servers from npm (node-opcua, modbus-serial).

The servers and the values they serve are in tests/peers/; none of our own code serves them.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import struct
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any, cast

import pytest

from compute.model import Quality, ReadingBatch
from compute.plant import ChannelRef, parse_plant
from ingest.modbus_source import ModbusSource
from ingest.opcua_source import OpcUaSource
from tests.harness import free_port
from tests.peers.harness import (
    node_modbus_server,
    node_opcua_server,
)

pytestmark = pytest.mark.peers


# What tests/peers/opcua_server.js serves (ns=1).
OPC_TEMPERATURE = 21.5
OPC_PRESSURE_DIFF = 15.25
OPC_PARTICLES = 60000.0
OPC_COUNTER_START = 1000.0
OPC_COUNTER_STEP = 1.5

# What tests/peers/modbus_server.js serves (unit 1, holding registers).
MB_COUNTER_START = 0x12345678
MB_FLOAT = struct.unpack(">f", struct.pack(">f", 230.41))[0]  # the float32 the server stores
MB_UINT16 = 4242
MB_INT32 = -123456  # BADC
MB_FLOAT64 = -1234.5678  # DCBA
MB_INPUT_FLOAT = 21.5  # input registers 0-1, ABCD

RECENT_NS = 5_000_000_000  # a fresh source timestamp lies within 5 s of our clock


def _plant(meters: list[dict[str, Any]]) -> dict[str, ChannelRef]:
    plant = parse_plant(
        {
            "sites": [
                {
                    "id": "peer-site",
                    "name": "Independent peer plant",
                    "timezone": "Europe/Berlin",
                    "areas": [
                        {"id": "utility", "kind": "utility"},
                        {"id": "cleanroom", "kind": "cleanroom", "iso_class": 7},
                    ],
                }
            ],
            "meters": meters,
        }
    )
    return plant.channels


def _opcua_channels(endpoint: str) -> dict[str, ChannelRef]:
    def gauge(cid: str) -> dict[str, Any]:
        return {
            "id": cid,
            "node_id": f"ns=1;s=peer.{cid}",
            "unit": "x",
            "kind": "gauge",
            "utility": "environment",
        }

    return _plant(
        [
            {
                "id": "peer-incomer",
                "site": "peer-site",
                "area": "utility",
                "protocol": "opcua",
                "endpoint": endpoint,
                "channels": [
                    {
                        "id": "energy",
                        "node_id": "ns=1;s=peer.energy",
                        "unit": "kWh",
                        "kind": "counter",
                        "utility": "electricity",
                    }
                ],
            },
            {
                "id": "peer-env",
                "site": "peer-site",
                "area": "cleanroom",
                "protocol": "opcua",
                "endpoint": endpoint,
                "channels": [
                    gauge(c) for c in ("temperature", "pressure-diff", "humidity", "particles")
                ],
            },
        ]
    )


def _modbus_meter(
    meter_id: str, endpoint: str, unit_id: int, regs: dict[str, Any]
) -> dict[str, Any]:
    return {
        "id": meter_id,
        "site": "peer-site",
        "area": "utility",
        "protocol": "modbus_tcp",
        "endpoint": endpoint,
        "unit_id": unit_id,
        "channels": [
            {"id": cid, "register": reg, "unit": "kWh", "kind": "gauge", "utility": "electricity"}
            for cid, reg in regs.items()
        ],
    }


def _modbus_channels(endpoint: str) -> dict[str, ChannelRef]:
    return _plant(
        [
            _modbus_meter(
                "peer-meter",
                endpoint,
                1,
                {
                    "count": {"address": 0, "type": "uint32", "order": "ABCD"},
                    "energy": {"address": 0, "type": "uint32", "order": "ABCD", "scale": 0.01},
                    "power": {"address": 2, "type": "float32", "order": "CDAB"},
                    "status": {"address": 4, "type": "uint16"},
                    "i32": {"address": 5, "type": "int32", "order": "BADC"},
                    "f64": {"address": 7, "type": "float64", "order": "DCBA"},
                    "i16": {"address": 11, "type": "int16", "scale": 0.5, "offset": 10},
                    "bit1": {"address": 12, "type": "bit", "bit": 1},
                    "bit2": {"address": 12, "type": "bit", "bit": 2},
                    "inp": {"address": 0, "type": "float32", "table": "input"},
                    "coil0": {"address": 0, "type": "bit", "table": "coil"},
                    "coil1": {"address": 1, "type": "bit", "table": "coil"},
                    "di1": {"address": 1, "type": "bit", "table": "discrete"},
                },
            ),
            _modbus_meter(  # the server answers unit 1 only
                "silent-meter", endpoint, 7, {"count": {"address": 0, "type": "uint32"}}
            ),
            _modbus_meter(  # the server has 5 holding registers: 100-101 are refused
                "refused-meter", endpoint, 1, {"count": {"address": 100, "type": "uint32"}}
            ),
        ]
    )


def _generator(batches: AsyncIterator[ReadingBatch]) -> AsyncGenerator[ReadingBatch, None]:
    """The sources' batches() are async generators; say so, so they can be closed."""
    return cast(AsyncGenerator[ReadingBatch, None], batches)


def _rows(batch: ReadingBatch) -> Iterator[tuple[str, int, float, Quality]]:
    for i in range(batch.size):
        yield (
            batch.channel_ids[batch.channel_index[i]],
            int(batch.ts_ns[i]),
            float(batch.value[i]),
            Quality(int(batch.quality[i])),
        )


@pytest.fixture(scope="module")
def opcua_peer(peers_installed: None) -> Iterator[tuple[str, int]]:
    """The node-opcua endpoint and the wall-clock ns just before the server was started."""
    started_ns = time.time_ns()
    with node_opcua_server(free_port()) as endpoint:
        yield endpoint, started_ns


@pytest.fixture
def modbus_peer(peers_installed: None) -> Iterator[str]:
    """A fresh modbus-serial server per test, so its counter starts at MB_COUNTER_START."""
    with node_modbus_server(free_port()) as endpoint:
        yield endpoint


# --- OPC UA ------------------------------------------------------------------------------------


async def test_opcua_source_reads_node_opcua_server(opcua_peer: tuple[str, int]) -> None:
    endpoint, started_ns = opcua_peer
    channels = _opcua_channels(endpoint)
    source = OpcUaSource(endpoint, list(channels.values()), publish_interval_s=0.2)
    rows: dict[str, list[tuple[int, float, Quality, int]]] = {key: [] for key in channels}

    def done() -> bool:
        counter = {v for _, v, _, _ in rows["peer-incomer.energy"]}
        return all(rows.values()) and len(counter) >= 3

    async with contextlib.aclosing(_generator(source.batches())) as batches, asyncio.timeout(15):
        async for batch in batches:
            for key, ts_ns, value, quality in _rows(batch):
                assert key in channels, f"unknown channel {key!r}"
                assert channels[key].meter.id == batch.meter_id, f"{key} in {batch.meter_id}"
                rows[key].append((ts_ns, value, quality, batch.receive_ts_ns))
            if done():
                break
    now_ns = time.time_ns()

    def only(key: str) -> tuple[int, float, Quality, int]:
        assert rows[key], f"no reading of {key}"
        return rows[key][-1]

    assert only("peer-env.temperature")[1:3] == (OPC_TEMPERATURE, Quality.GOOD)
    assert only("peer-env.pressure-diff")[1:3] == (OPC_PRESSURE_DIFF, Quality.GOOD)
    # Bad and Uncertain status codes arrive with their quality and are not dropped.
    _, humidity, humidity_q, _ = only("peer-env.humidity")
    assert humidity_q is Quality.BAD
    assert humidity == 52.0 or math.isnan(humidity)  # the last value, or none at all
    _, particles, particles_q, _ = only("peer-env.particles")
    assert particles_q is Quality.UNCERTAIN
    assert particles == OPC_PARTICLES

    counter = rows["peer-incomer.energy"]
    values = [v for _, v, _, _ in counter]
    assert all(q is Quality.GOOD for _, _, q, _ in counter)
    assert values == sorted(values) and len(set(values)) >= 3, values
    for v in values:  # each one a value the server served: start + step * k
        k = (v - OPC_COUNTER_START) / OPC_COUNTER_STEP
        assert k >= 0 and k == int(k), f"counter value {v} was never served"
    stamps = [ts for ts, _, _, _ in counter]
    assert stamps == sorted(stamps)
    for ts, _, _, receive_ns in counter:
        assert abs(receive_ns - ts) < RECENT_NS, f"counter stamp {ts} vs receipt {receive_ns}"
    assert abs(now_ns - stamps[-1]) < RECENT_NS

    # Constant values keep the source timestamp the server set when it created them.
    for key, readings in rows.items():
        for ts, _, _, _ in readings:
            assert started_ns - RECENT_NS < ts < now_ns + RECENT_NS, f"{key} stamped {ts}"


# --- Modbus ------------------------------------------------------------------------------------


async def test_modbus_source_decodes_modbus_serial_registers(modbus_peer: str) -> None:
    channels = _modbus_channels(modbus_peer)
    refs = [r for r in channels.values() if r.meter.id == "peer-meter"]
    source = ModbusSource(modbus_peer, refs, interval_s=0.1, timeout_s=2.0)
    try:
        for n in range(3):
            before_ns = time.time_ns()
            batch = await asyncio.wait_for(source.poll(refs[0].meter, refs), timeout=10)
            got = {key: (value, q) for key, _, value, q in _rows(batch)}
            assert batch.meter_id == "peer-meter"
            assert got == {
                "peer-meter.count": (float(MB_COUNTER_START + n), Quality.GOOD),
                "peer-meter.energy": (float(MB_COUNTER_START + n) * 0.01, Quality.GOOD),
                "peer-meter.power": (MB_FLOAT, Quality.GOOD),
                "peer-meter.status": (float(MB_UINT16), Quality.GOOD),
                "peer-meter.i32": (float(MB_INT32), Quality.GOOD),
                "peer-meter.f64": (MB_FLOAT64, Quality.GOOD),
                "peer-meter.i16": (-2 * 0.5 + 10, Quality.GOOD),
                "peer-meter.bit1": (1.0, Quality.GOOD),
                "peer-meter.bit2": (0.0, Quality.GOOD),
                "peer-meter.inp": (MB_INPUT_FLOAT, Quality.GOOD),
                "peer-meter.coil0": (1.0, Quality.GOOD),
                "peer-meter.coil1": (0.0, Quality.GOOD),
                "peer-meter.di1": (1.0, Quality.GOOD),
            }
            assert all(before_ns <= ts <= batch.receive_ts_ns for ts in batch.ts_ns.tolist())
    finally:
        source.client.close()


async def test_modbus_unanswered_unit_reads_bad_nan_and_recovers(modbus_peer: str) -> None:
    channels = _modbus_channels(modbus_peer)
    good = [r for r in channels.values() if r.meter.id == "peer-meter"]
    silent = [r for r in channels.values() if r.meter.id == "silent-meter"]
    source = ModbusSource(modbus_peer, good + silent, interval_s=0.1, timeout_s=1.0)
    try:
        batch = await asyncio.wait_for(source.poll(silent[0].meter, silent), timeout=10)
        rows = list(_rows(batch))
        assert [(k, q) for k, _, _, q in rows] == [("silent-meter.count", Quality.BAD)]
        assert math.isnan(rows[0][2])
        # The same connection still serves the unit that answers.
        batch = await asyncio.wait_for(source.poll(good[0].meter, good), timeout=10)
        got = {key: (value, q) for key, _, value, q in _rows(batch)}
        assert got["peer-meter.count"] == (float(MB_COUNTER_START), Quality.GOOD)
        assert got["peer-meter.power"] == (MB_FLOAT, Quality.GOOD)
    finally:
        source.client.close()


async def test_modbus_refused_register_range_reads_bad_nan(modbus_peer: str) -> None:
    channels = _modbus_channels(modbus_peer)
    refused = [r for r in channels.values() if r.meter.id == "refused-meter"]
    good = [r for r in channels.values() if r.meter.id == "peer-meter"]
    source = ModbusSource(modbus_peer, refused + good, interval_s=0.1, timeout_s=2.0)
    try:
        batch = await asyncio.wait_for(source.poll(refused[0].meter, refused), timeout=10)
        rows = list(_rows(batch))
        assert [(k, q) for k, _, _, q in rows] == [("refused-meter.count", Quality.BAD)]
        assert math.isnan(rows[0][2])
        batch = await asyncio.wait_for(source.poll(good[0].meter, good), timeout=10)
        got = {key: (value, q) for key, _, value, q in _rows(batch)}
        assert got["peer-meter.count"] == (float(MB_COUNTER_START), Quality.GOOD)
    finally:
        source.client.close()


async def test_modbus_batches_keep_polling_past_failing_meters(modbus_peer: str) -> None:
    channels = _modbus_channels(modbus_peer)
    source = ModbusSource(modbus_peer, list(channels.values()), interval_s=0.1, timeout_s=1.0)
    seen: list[tuple[str, Quality]] = []
    counts: list[float] = []
    async with contextlib.aclosing(_generator(source.batches())) as batches, asyncio.timeout(20):
        async for batch in batches:
            for key, _, value, q in _rows(batch):
                seen.append((batch.meter_id, q))
                if key == "peer-meter.count":
                    counts.append(value)
            if len(counts) == 2:
                break
    assert ("silent-meter", Quality.BAD) in seen
    assert ("refused-meter", Quality.BAD) in seen
    assert counts == [float(MB_COUNTER_START), float(MB_COUNTER_START + 1)]

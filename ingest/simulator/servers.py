"""Serve a PlantSimulator over real protocols on loopback: an asyncua OPC UA server per endpoint
and a pymodbus Modbus TCP server per endpoint, one device per meter unit id.

Protocol servers only; the values come from the pure model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC
from functools import partial

from asyncua import ua
from asyncua.server.server import Server
from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from compute.model import NS_PER_S
from compute.plant import ChannelRef, Meter, Protocol
from ingest import registers
from ingest.simulator.model import PlantSimulator
from ingest.simulator.opcua_secure import SimulatorSecurity, secure_server

log = logging.getLogger(__name__)
NAMESPACE_URI = "urn:plantpulse:simulator"


def _by_endpoint(sim: PlantSimulator, protocol: Protocol) -> dict[str, list[Meter]]:
    out: dict[str, list[Meter]] = {}
    for m in sim.plant.meters:
        if m.protocol is protocol and any(f"{m.id}.{c.id}" in sim.channels for c in m.channels):
            out.setdefault(m.endpoint, []).append(m)
    return out


async def _serve_opcua(
    sim: PlantSimulator,
    endpoint: str,
    meters: list[Meter],
    security: SimulatorSecurity | None = None,
) -> None:
    server = Server()
    await server.init()
    server.set_endpoint(endpoint)
    server.set_server_name("plantpulse plant simulator")
    if security is not None:
        await secure_server(server, security)
    idx = await server.register_namespace(NAMESPACE_URI)
    refs: list[tuple[ChannelRef, ua.NodeId]] = []
    for m in meters:
        folder = await server.nodes.objects.add_object(idx, m.id)
        for ref in sim.plant.channels_of(m.id):
            if ref.key not in sim.channels or ref.channel.node_id is None:
                continue
            node_id = ua.NodeId.from_string(ref.channel.node_id)
            var = await folder.add_variable(node_id, ref.channel.id, 0.0, ua.VariantType.Double)
            refs.append((ref, var.nodeid))
    async with server:
        log.info("OPC UA simulator serving %d variables on %s (ns=%d)", len(refs), endpoint, idx)
        while True:
            t_ns = (time.time_ns() // sim.tick_ns) * sim.tick_ns
            stamp = ua.DateTime.fromtimestamp(t_ns / NS_PER_S, UTC)
            for ref, node_id in refs:
                dv = ua.DataValue(
                    ua.Variant(sim.value(ref.key, t_ns), ua.VariantType.Double),
                    SourceTimestamp=stamp,
                    ServerTimestamp=stamp,
                )
                await server.write_attribute_value(node_id, dv)
            await asyncio.sleep((t_ns + sim.tick_ns - time.time_ns()) / NS_PER_S)


async def _read_action(
    sim: PlantSimulator,
    meter: Meter,
    function_code: int,
    start_address: int,
    address: int,
    count: int,
    current_registers: list[int],
    set_values: list[int] | list[bool] | None,
) -> ExcCodes | None:
    """Fill the device's registers with the values at the instant of the request."""
    if set_values is not None:
        return ExcCodes.ILLEGAL_FUNCTION  # meters are read-only
    t_ns = time.time_ns()
    for ref in sim.plant.channels_of(meter.id):
        reg = ref.channel.modbus
        if reg is None or ref.key not in sim.channels:
            continue
        words = registers.encode(sim.value(ref.key, t_ns), reg)
        at = reg.address - start_address
        current_registers[at : at + len(words)] = words
    return None


def _device(sim: PlantSimulator, meter: Meter) -> SimDevice:
    size = max((c.modbus.address + c.modbus.words for c in meter.channels if c.modbus), default=1)
    return SimDevice(
        id=meter.unit_id,
        simdata=[SimData(address=0, count=size, values=0, datatype=DataType.REGISTERS)],
        action=partial(_read_action, sim, meter),
    )


async def _serve_modbus(sim: PlantSimulator, endpoint: str, meters: list[Meter]) -> None:
    host, _, port = endpoint.rpartition(":")
    server = ModbusTcpServer([_device(sim, m) for m in meters], address=(host, int(port)))
    log.info(
        "Modbus TCP simulator serving unit ids %s on %s", [m.unit_id for m in meters], endpoint
    )
    try:
        await server.serve_forever()
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]


async def serve_opcua_endpoint(sim: PlantSimulator, endpoint: str) -> None:
    """Serve one OPC UA endpoint of the plant until cancelled (tests restart it on its own)."""
    await _serve_opcua(sim, endpoint, _by_endpoint(sim, Protocol.OPCUA)[endpoint])


def _endpoints(sim: PlantSimulator) -> list[str]:
    return [*_by_endpoint(sim, Protocol.OPCUA), *_by_endpoint(sim, Protocol.MODBUS_TCP)]


async def _wait_listening(endpoint: str, timeout_s: float = 30.0) -> None:
    hostport = endpoint.removeprefix("opc.tcp://").split("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 1.0)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
        else:
            writer.close()
            return


@contextlib.asynccontextmanager
async def serve(
    sim: PlantSimulator, *, opcua_security: SimulatorSecurity | None = None
) -> AsyncIterator[None]:
    """Run every endpoint of the simulated plant until the context exits; OPC UA may be secured."""
    async with asyncio.TaskGroup() as tg:
        tasks = [
            tg.create_task(_serve_opcua(sim, ep, ms, opcua_security))
            for ep, ms in _by_endpoint(sim, Protocol.OPCUA).items()
        ] + [
            tg.create_task(_serve_modbus(sim, ep, ms))
            for ep, ms in _by_endpoint(sim, Protocol.MODBUS_TCP).items()
        ]
        try:
            await asyncio.gather(*(_wait_listening(ep) for ep in _endpoints(sim)))
            yield
        finally:
            for t in tasks:
                t.cancel()

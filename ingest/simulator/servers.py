"""Serve a PlantSimulator over real protocols on loopback: an asyncua OPC UA server per endpoint
and a pymodbus Modbus TCP (or RTU-over-TCP) server per endpoint, one device per meter unit id.

Protocol servers only; the values come from the pure model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC
from functools import partial

from asyncua import ua
from asyncua.server.server import Server
from pymodbus.constants import ExcCodes
from pymodbus.framer import FramerType
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from compute.modbus_config import Register, RegisterType, Table
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


_TABLE_OF_CODE = {1: Table.COIL, 2: Table.DISCRETE, 3: Table.HOLDING, 4: Table.INPUT}
_NO_BITS_AT = 65520  # where a device without coils / inputs keeps its one (unused) bit block


def _simulated(sim: PlantSimulator, meter: Meter) -> list[tuple[str, Register]]:
    return [
        (ref.key, ref.channel.modbus)
        for ref in sim.plant.channels_of(meter.id)
        if ref.channel.modbus is not None and ref.key in sim.channels
    ]


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
    """Fill the table's registers (for bits: 16 to a register) with the request instant's values."""
    table = _TABLE_OF_CODE.get(function_code)
    if set_values is not None or table is None:
        return ExcCodes.ILLEGAL_FUNCTION  # meters are read-only
    t_ns = time.time_ns()
    for key, reg in _simulated(sim, meter):
        if reg.table is not table:
            continue
        at = reg.address - meter.modbus.address_base
        words = registers.encode(sim.value(key, t_ns), reg)
        if table.is_bits:
            i, mask = at // 16 - start_address, 1 << (at % 16)
            current_registers[i] = (current_registers[i] & ~mask) | (mask if words[0] else 0)
        elif reg.type is RegisterType.BIT:
            i, mask = at - start_address, registers.bit_mask(reg)
            current_registers[i] = (current_registers[i] & ~mask) | words[0]
        else:
            i = at - start_address
            current_registers[i : i + len(words)] = words
    return None


def _spans(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping or adjacent [start, end) spans merged."""
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _block(table: Table, spans: list[tuple[int, int]]) -> list[SimData]:
    if table.is_bits:  # one block from the first bit to the last; bits in between read as off
        a, b = (spans[0][0], spans[-1][1]) if spans else (_NO_BITS_AT, _NO_BITS_AT + 16)
        return [SimData(address=a, values=[False] * (b - a), datatype=DataType.BITS)]
    if not spans:
        return [SimData(address=0, datatype=DataType.INVALID)]
    return [
        SimData(address=a, count=b - a, values=0, datatype=DataType.REGISTERS) for a, b in spans
    ]


def _device(sim: PlantSimulator, meter: Meter, unit_id: int | None = None) -> SimDevice:
    """The meter's simulated fields (none, as `unit_id`); other registers are illegal addresses."""
    base = meter.modbus.address_base
    spans: dict[Table, list[tuple[int, int]]] = {t: [] for t in Table}
    for _, r in _simulated(sim, meter) if unit_id is None else []:
        spans[r.table].append((r.address - base, r.address - base + r.words))
    c, d, h, i = (_block(t, _spans(spans[t])) for t in Table)
    return SimDevice(
        id=meter.unit_id if unit_id is None else unit_id,
        simdata=(c, d, h, i),
        action=partial(_read_action, sim, meter) if unit_id is None else None,
    )


def modbus_devices(sim: PlantSimulator, meters: list[Meter]) -> list[SimDevice]:
    """One device per meter, and unless a meter is unit 0, unit 0 catching every other unit."""
    devices = [_device(sim, m) for m in meters]
    if all(m.unit_id != 0 for m in meters):
        devices.append(_device(sim, meters[0], unit_id=0))
    return devices


def absent_units_silent(meters: list[Meter], framer: FramerType) -> Callable[[bool, bytes], bytes]:
    """A server packet trace that drops the replies of units no meter here has, so that such a
    unit stays silent, like an absent slave on a serial bus, and its requests time out.
    """
    served = {m.unit_id for m in meters}
    at = 0 if framer is FramerType.RTU else 6  # the unit id in an RTU frame / after the MBAP

    def trace(sending: bool, packet: bytes) -> bytes:
        return b"" if sending and len(packet) > at and packet[at] not in served else packet

    return trace


async def _serve_modbus(sim: PlantSimulator, endpoint: str, meters: list[Meter]) -> None:
    host, _, port = endpoint.rpartition(":")
    rtu = meters[0].protocol is Protocol.MODBUS_RTU_TCP
    framer = FramerType.RTU if rtu else FramerType.SOCKET
    server = ModbusTcpServer(
        modbus_devices(sim, meters),
        framer=framer,
        address=(host, int(port)),
        trace_packet=absent_units_silent(meters, framer),
    )
    log.info(
        "Modbus %s simulator serving unit ids %s on %s",
        "RTU-over-TCP" if rtu else "TCP",
        [m.unit_id for m in meters],
        endpoint,
    )
    try:
        await server.serve_forever()
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]


async def serve_opcua_endpoint(sim: PlantSimulator, endpoint: str) -> None:
    """Serve one OPC UA endpoint of the plant until cancelled (tests restart it on its own)."""
    await _serve_opcua(sim, endpoint, _by_endpoint(sim, Protocol.OPCUA)[endpoint])


def _modbus_tcp_endpoints(sim: PlantSimulator) -> dict[str, list[Meter]]:
    """Modbus endpoints on TCP, plain or with RTU frames (serial buses: see modbus_serial)."""
    return {**_by_endpoint(sim, Protocol.MODBUS_TCP), **_by_endpoint(sim, Protocol.MODBUS_RTU_TCP)}


def _endpoints(sim: PlantSimulator) -> list[str]:
    return [*_by_endpoint(sim, Protocol.OPCUA), *_modbus_tcp_endpoints(sim)]


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
            for ep, ms in _modbus_tcp_endpoints(sim).items()
        ]
        try:
            await asyncio.gather(*(_wait_listening(ep) for ep in _endpoints(sim)))
            yield
        finally:
            for t in tasks:
                t.cancel()

"""Serve the simulated meters of one Modbus RTU serial bus on a serial device: a real port, or
one end of a pseudo-terminal pair whose other end the meters' endpoint names.

Protocol server only; the values come from the pure model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer

from compute.plant import Protocol
from ingest.simulator.model import PlantSimulator
from ingest.simulator.servers import absent_units_silent, modbus_devices

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def serve_rtu_bus(
    sim: PlantSimulator, endpoint: str, device: str, *, open_timeout_s: float = 10.0
) -> AsyncIterator[None]:
    """Serve, on `device`, the simulated meters whose RTU bus is `endpoint`, until exit."""
    meters = [
        m
        for m in sim.plant.meters
        if m.protocol is Protocol.MODBUS_RTU
        and m.endpoint == endpoint
        and any(f"{m.id}.{c.id}" in sim.channels for c in m.channels)
    ]
    if not meters:
        raise ValueError(f"no simulated Modbus RTU meter on {endpoint!r}")
    line = meters[0].modbus
    server = ModbusSerialServer(
        modbus_devices(sim, meters),
        framer=FramerType.RTU,
        port=device,
        baudrate=line.baudrate,
        parity=line.parity.letter,
        stopbits=line.stopbits,
        bytesize=line.bytesize,
        trace_packet=absent_units_silent(meters, FramerType.RTU),
    )
    task = asyncio.create_task(server.serve_forever())
    try:
        deadline = time.monotonic() + open_timeout_s
        while not server.transport:  # the port is open once the transport exists
            if task.done():
                task.result()  # raises what stopped it
                raise OSError(f"cannot open {device}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{device} did not open within {open_timeout_s} s")
            await asyncio.sleep(0.02)
        log.info(
            "Modbus RTU simulator serving unit ids %s on %s",
            [m.unit_id for m in meters],
            device,
        )
        yield
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

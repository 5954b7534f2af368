"""ModbusSource: polls the meters that share one Modbus TCP endpoint, one read per meter and table.

A failed or garbled read yields the meter's channels as BAD with NaN, so gaps are visible.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from compute.model import Quality, ReadingBatch
from compute.plant import ChannelRef, Meter
from ingest import registers

log = logging.getLogger(__name__)


class ModbusSource:
    """Polls every `interval_s` the meters (unit ids) behind one Modbus TCP endpoint."""

    def __init__(
        self,
        endpoint: str,
        channels: Sequence[ChannelRef],
        *,
        interval_s: float = 1.0,
        timeout_s: float = 3.0,
    ) -> None:
        host, _, port = endpoint.rpartition(":")
        self.endpoint = endpoint
        self.client = AsyncModbusTcpClient(host, port=int(port), timeout=timeout_s, retries=0)
        self.interval_s = interval_s
        self.meters: dict[str, tuple[Meter, list[ChannelRef]]] = {}
        for ref in channels:
            self.meters.setdefault(ref.meter.id, (ref.meter, []))[1].append(ref)

    async def _read(self, meter: Meter, refs: list[ChannelRef], table: str) -> dict[str, float]:
        regs = [r for r in refs if r.channel.modbus and r.channel.modbus.table == table]
        if not regs:
            return {}
        specs = [r.channel.modbus for r in regs if r.channel.modbus]
        first = min(s.address for s in specs)
        count = max(s.address + s.words for s in specs) - first
        read = (
            self.client.read_holding_registers
            if table == "holding"
            else self.client.read_input_registers
        )
        resp = await read(first, count=count, device_id=meter.unit_id)
        if resp.isError():
            raise ModbusException(f"unit {meter.unit_id}: {resp}")
        words = list(resp.registers)
        out = {}
        for ref, spec in zip(regs, specs, strict=True):
            at = spec.address - first
            out[ref.key] = registers.decode(words[at : at + spec.words], spec)
        return out

    async def poll(self, meter: Meter, refs: list[ChannelRef]) -> ReadingBatch:
        """Read one meter once; the readings' timestamp is the midpoint of request and response."""
        sent_ns = time.time_ns()
        quality = Quality.GOOD
        try:
            if not self.client.connected:
                await self.client.connect()
            values = await self._read(meter, refs, "holding")
            values |= await self._read(meter, refs, "input")
        except (ModbusException, OSError, TimeoutError, ValueError) as e:
            log.warning("Modbus %s unit %d: %s", self.endpoint, meter.unit_id, e)
            values, quality = {}, Quality.BAD
        received_ns = time.time_ns()
        ts_ns = (sent_ns + received_ns) // 2
        rows = [(r.key, ts_ns, values.get(r.key, float("nan")), quality) for r in refs]
        return ReadingBatch.from_rows(meter_id=meter.id, receive_ts_ns=received_ns, rows=rows)

    async def batches(self) -> AsyncIterator[ReadingBatch]:
        try:
            next_ns = time.time_ns()
            while True:
                for meter, refs in self.meters.values():
                    yield await self.poll(meter, refs)
                next_ns += int(self.interval_s * 1e9)
                await asyncio.sleep(max(0.0, (next_ns - time.time_ns()) / 1e9))
        finally:
            self.client.close()

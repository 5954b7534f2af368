"""ModbusSource: polls the meters (unit ids) behind one Modbus connection: a TCP socket, RTU
frames over TCP, or an RTU serial line. It only reads (function codes 1-4); a failed read makes
only the channels it covers BAD (NaN), and the poll goes on.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType

from compute.modbus_config import Table
from compute.model import Quality, ReadingBatch
from compute.plant import ChannelRef, Meter, Protocol
from ingest import registers
from ingest.modbus_decode import ReadDecoder, read_decoder
from ingest.modbus_plan import Read, plan_channels

log = logging.getLogger(__name__)


class _Unanswered(Exception):
    """The unit did not answer in time, after every retry: skip its other reads this poll."""


class _Refused(Exception):
    """The unit answered this read with an exception code, or a reply that does not fit it."""


@dataclass(slots=True)
class _Done:
    values: list[int]
    sent_ns: int
    received_ns: int


def _client(protocol: Protocol, endpoint: str, meter: Meter, timeout_s: float) -> Any:
    """A pymodbus client that neither retries nor reconnects by itself: we do both."""
    common: dict[str, Any] = {"timeout": timeout_s, "retries": 0, "reconnect_delay": 0}
    if protocol is Protocol.MODBUS_RTU:
        opts = meter.modbus
        return AsyncModbusSerialClient(
            endpoint,
            framer=FramerType.RTU,
            baudrate=opts.baudrate,
            parity=opts.parity.letter,
            stopbits=opts.stopbits,
            bytesize=opts.bytesize,
            **common,
        )
    host, _, port = endpoint.rpartition(":")
    framer = FramerType.RTU if protocol is Protocol.MODBUS_RTU_TCP else FramerType.SOCKET
    return AsyncModbusTcpClient(host, port=int(port), framer=framer, **common)


def _raise_if_cancelled() -> None:
    """Honour a cancel that pymodbus' internal wait_for swallowed (a Python 3.11 race)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class ModbusSource:
    """Polls every `interval_s` the meters (unit ids) that share one Modbus connection or bus.

    `timeout_s`, when given, overrides every meter's own per-request timeout.
    """

    def __init__(
        self,
        endpoint: str,
        channels: Sequence[ChannelRef],
        *,
        interval_s: float = 1.0,
        timeout_s: float | None = None,
        reconnect_min_s: float = 0.5,
        reconnect_max_s: float = 30.0,
    ) -> None:
        self.endpoint = endpoint
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.meters: dict[str, tuple[Meter, list[ChannelRef]]] = {}
        for ref in channels:
            self.meters.setdefault(ref.meter.id, (ref.meter, []))[1].append(ref)
        first = next(iter(self.meters.values()))[0]
        if {m.protocol for m, _ in self.meters.values()} != {first.protocol}:
            raise ValueError(f"{endpoint}: meters of one connection share its protocol")
        self.protocol = first.protocol
        longest_s = max(self._timeout_s(m) for m, _ in self.meters.values())
        # pymodbus' own timeout stays longer than ours, so ours always fires first
        self.client = _client(self.protocol, endpoint, first, longest_s + 1.0)
        self.connect_timeout_s = longest_s
        self.bus_lock = asyncio.Lock()  # one request at a time on a connection or bus
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.reconnect_delay_s = reconnect_min_s
        self._reconnect_at = 0.0  # monotonic seconds
        self._failing: dict[tuple[str, int, int], str] = {}
        self._plans: dict[tuple[str, tuple[str, ...]], list[tuple[Read, ReadDecoder]]] = {}

    def _timeout_s(self, meter: Meter) -> float:
        return self.timeout_s if self.timeout_s is not None else meter.modbus.timeout_s

    async def _connected(self) -> bool:
        """Connect when due; failures push the next attempt back, doubling up to a cap."""
        if self.client.connected:
            return True
        now = time.monotonic()
        if now < self._reconnect_at:
            return False
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                ok = bool(await self.client.connect())
        except (TimeoutError, OSError, ModbusException) as e:
            log.debug("Modbus %s: connect failed: %s", self.endpoint, e)
            ok = False
        if ok:
            self.reconnect_delay_s = self.reconnect_min_s
            return True
        self.client.close()
        log.warning(
            "Modbus %s unreachable; next try in %.1f s", self.endpoint, self.reconnect_delay_s
        )
        self._reconnect_at = now + self.reconnect_delay_s
        self.reconnect_delay_s = min(2 * self.reconnect_delay_s, self.reconnect_max_s)
        return False

    async def _call(self, read: Read, unit_id: int) -> Any:
        kw = {"count": read.count, "device_id": unit_id}
        if read.table is Table.COIL:
            return await self.client.read_coils(read.address, **kw)
        if read.table is Table.DISCRETE:
            return await self.client.read_discrete_inputs(read.address, **kw)
        if read.table is Table.HOLDING:
            return await self.client.read_holding_registers(read.address, **kw)
        return await self.client.read_input_registers(read.address, **kw)

    async def _request(self, meter: Meter, read: Read) -> _Done:
        """One read, retried after timeouts; every wait is bounded by the meter's timeout."""
        opts = meter.modbus
        for attempt in range(opts.retries + 1):
            async with self.bus_lock:
                sent_ns = time.time_ns()
                try:
                    async with asyncio.timeout(self._timeout_s(meter)):
                        resp = await self._call(read, meter.unit_id)
                    break
                except (TimeoutError, ModbusIOException) as e:
                    _raise_if_cancelled()
                    if attempt == opts.retries:
                        raise _Unanswered(f"no answer after {attempt + 1} tries") from e
                finally:
                    if opts.pause_between_requests_s > 0:
                        await asyncio.sleep(opts.pause_between_requests_s)
        _raise_if_cancelled()
        received_ns = time.time_ns()
        if resp.isError():
            raise _Refused(f"exception code {getattr(resp, 'exception_code', '?')}")
        if read.table.is_bits:
            values = [int(b) for b in resp.bits[: read.count]]
        else:
            values = list(resp.registers)
        if len(values) != read.count:
            raise _Refused(f"{len(values)} values for {read.count} addresses")
        return _Done(values=values, sent_ns=sent_ns, received_ns=received_ns)

    def _note(self, meter: Meter, read: Read, problem: str | None) -> None:
        """Log a read's failure when it starts or changes, and its recovery, not every poll."""
        where = (meter.id, read.function_code, read.address)
        if problem is None:
            if self._failing.pop(where, None) is not None:
                log.info("Modbus %s unit %d: %s reads again", self.endpoint, meter.unit_id, where)
        elif self._failing.get(where) != problem:
            self._failing[where] = problem
            log.warning(
                "Modbus %s unit %d fc %d @%d+%d: %s",
                self.endpoint,
                meter.unit_id,
                read.function_code,
                read.address,
                read.count,
                problem,
            )

    def _plan(self, meter_id: str, refs: list[ChannelRef]) -> list[tuple[Read, ReadDecoder]]:
        """The meter's reads with their decoders, planned once (they depend on config alone)."""
        key = (meter_id, tuple(r.key for r in refs))
        if key not in self._plans:
            by_key = {r.key: r for r in refs}
            self._plans[key] = [(read, read_decoder(read, by_key)) for read in plan_channels(refs)]
        return self._plans[key]

    async def poll(self, meter: Meter, refs: list[ChannelRef]) -> ReadingBatch:
        """Read one meter once; each reading is stamped at the midpoint of the read that got it."""
        started_ns = time.time_ns()
        words: dict[Table, dict[int, int]] = {t: {} for t in Table}
        decoded: dict[str, float] = {}
        stamps: dict[str, int] = {}
        if await self._connected():
            for read, decoder in self._plan(meter.id, refs):
                try:
                    done = await self._request(meter, read)
                except _Refused as e:
                    self._note(meter, read, str(e))
                    continue
                except _Unanswered as e:
                    self._note(meter, read, str(e))
                    break  # the unit is silent: spare the bus its other reads
                except (ConnectionException, ModbusException, OSError) as e:
                    self._note(meter, read, f"connection lost: {e}")
                    self.client.close()
                    break
                self._note(meter, read, None)
                decoded.update(decoder.decode(done.values))
                words[read.table].update(enumerate(done.values, start=read.address))
                for key in read.keys:
                    stamps[key] = (done.sent_ns + done.received_ns) // 2
        received_ns = time.time_ns()
        poll_ns = (started_ns + received_ns) // 2
        rows = [self._row(ref, decoded, words, stamps.get(ref.key, poll_ns)) for ref in refs]
        return ReadingBatch.from_rows(meter_id=meter.id, receive_ts_ns=received_ns, rows=rows)

    @staticmethod
    def _row(
        ref: ChannelRef, decoded: dict[str, float], words: dict[Table, dict[int, int]], ts_ns: int
    ) -> tuple[str, int, float, Quality]:
        """A channel's reading: decoded with its read, or (split over reads) from the words."""
        bad = (ref.key, ts_ns, math.nan, Quality.BAD)
        value = decoded.get(ref.key)
        reg = ref.channel.modbus
        if value is None and reg is not None:
            at = reg.address - ref.meter.modbus.address_base
            table = words[reg.table]
            try:
                value = registers.decode([table[a] for a in range(at, at + reg.words)], reg)
            except (KeyError, ValueError):
                return bad
        if value is None or not math.isfinite(value):
            return bad
        return (ref.key, ts_ns, value, Quality.GOOD)

    async def batches(self) -> AsyncIterator[ReadingBatch]:
        try:
            next_s = time.monotonic()
            while True:
                for meter, refs in self.meters.values():
                    yield await self.poll(meter, refs)
                next_s = max(next_s + self.interval_s, time.monotonic() - self.interval_s)
                await asyncio.sleep(max(0.0, next_s - time.monotonic()))
        finally:
            self.close()

    def close(self) -> None:
        self.client.close()

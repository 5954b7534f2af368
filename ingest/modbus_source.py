"""ModbusSource: polls the meters (unit ids) behind one Modbus connection: a TCP socket, RTU
frames over TCP, or an RTU serial line. It only reads (function codes 1-4); a failed read makes
only the channels it covers BAD (NaN), and the poll goes on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType

from compute.modbus_config import Table
from compute.model import NS_PER_S, Quality, ReadingBatch
from compute.plant import ChannelRef, Meter, Protocol
from ingest.modbus_decode import MeterDecoder, meter_decoder
from ingest.modbus_plan import Read

log = logging.getLogger(__name__)


class _Unanswered(Exception):
    """The unit did not answer in time, after every retry: skip its other reads this poll."""


class _Refused(Exception):
    """The unit answered this read with an exception code, or a reply that does not fit it."""


# The only requests this source sends: reads, function codes 1-4.
_READS = {
    Table.COIL: "read_coils",
    Table.DISCRETE: "read_discrete_inputs",
    Table.HOLDING: "read_holding_registers",
    Table.INPUT: "read_input_registers",
}
_Fetch = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class _Plan:
    decoder: MeterDecoder
    fetches: tuple[_Fetch, ...]  # the client's read method of each of decoder.reads


def _client(protocol: Protocol, endpoint: str, meter: Meter) -> Any:
    """A pymodbus client that neither retries, reconnects nor times out by itself: we do all
    three. Our timeouts wrap each connect and each request whole, per meter, and on a timeout
    keep the connection for the other units; pymodbus' own (one per client) would be a second
    timer per request, would drop the connection after a few timeouts in a row, and its
    wait_for is the one that can swallow a cancel on Python 3.11. `None` turns it off.
    """
    common: dict[str, Any] = {"timeout": None, "retries": 0, "reconnect_delay": 0}
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
    """Honour a cancel that pymodbus swallowed: its internal wait_for can on Python 3.11. Kept
    though that wait_for now has no timeout of its own, for the awaits we do not see into."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class _RequestTimeout:
    """asyncio.timeout for the one request in flight on a connection (the bus lock keeps it
    one), reused request after request: `with timeout(timeout_s): ...`.

    asyncio.timeout makes a Timeout and arms and cancels a loop timer per request: about 6 µs,
    3% of a fast poll. This keeps one timer: a request only moves the deadline, and the timer,
    when it fires before the deadline of the request then in flight, is set again for it.
    Expiry and cancellation are asyncio.timeout's: the task is cancelled, and that cancel, and
    no other, comes out as TimeoutError.
    """

    __slots__ = ("_armed_at", "_cancelling", "_deadline", "_expired", "_loop", "_task", "_timer")

    def __init__(self) -> None:
        self._task: asyncio.Task[Any] | None = None
        self._cancelling = 0
        self._deadline = 0.0  # loop time
        self._expired = False
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the timer's
        self._armed_at = 0.0  # loop time the timer fires at

    def __call__(self, timeout_s: float) -> _RequestTimeout:
        if self._task is not None:
            raise RuntimeError("one request at a time")
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a request timeout needs a task")
        self._deadline = loop.time() + timeout_s
        self._task = task
        self._cancelling = task.cancelling()
        self._expired = False
        timer = self._timer
        if timer is None or self._armed_at > self._deadline or self._loop is not loop:
            if timer is not None:
                timer.cancel()
            self._arm(loop)
        return self

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if self._expired and task is not None:
            self._expired = False
            if task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
                raise TimeoutError from exc

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        self._armed_at = self._deadline
        self._timer = loop.call_at(self._deadline, self._fire)
        self._loop = loop

    def _fire(self) -> None:
        self._timer = None
        if self._task is None:
            return  # no request in flight: the next one sets the timer again
        if self._deadline > self._armed_at:  # set for an earlier request: wait for this one's
            self._arm(self._task.get_loop())  # the loop now running the timer
            return
        self._expired = True
        self._task.cancel()


class ModbusSource:
    """Polls every `interval_s` the meters (unit ids) that share one Modbus connection or bus.

    `timeout_s`, when given, overrides every meter's own per-request timeout. A reading that
    fails (timeout, exception code, garbage) is BAD; once its channel has had no good value for
    `stale_after_intervals` polls, it is STALE until a good one comes.
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
        stale_after_intervals: int = 3,
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
        self.client = _client(self.protocol, endpoint, first)
        self.connect_timeout_s = max(self._timeout_s(m) for m, _ in self.meters.values())
        self.bus_lock = asyncio.Lock()  # one request at a time on a connection or bus
        self._request_timeout = _RequestTimeout()  # so one timeout, for the request in flight
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.reconnect_delay_s = reconnect_min_s
        self._reconnect_at = 0.0  # monotonic seconds
        self._failing: dict[tuple[str, int, int], str] = {}
        self._plans: dict[tuple[str, tuple[str, ...]], _Plan] = {}
        self._last_plan: dict[str, tuple[list[ChannelRef], _Plan]] = {}  # per meter, a copy
        self.stale_after_ns = int(stale_after_intervals * interval_s * NS_PER_S)
        self._fresh_ns: dict[str, npt.NDArray[np.int64]] = {}  # per meter: channel's last good

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

    async def _request(self, meter: Meter, read: Read, fetch: _Fetch) -> tuple[Sequence[int], int]:
        """One read, retried after timeouts; every wait is bounded by the meter's timeout.

        Gives the values and the read's midpoint time.
        """
        opts = meter.modbus
        timeout_s = self._timeout_s(meter)
        for attempt in range(opts.retries + 1):
            async with self.bus_lock:
                sent_ns = time.time_ns()
                try:
                    with self._request_timeout(timeout_s):
                        resp = await fetch(read.address, count=read.count, device_id=meter.unit_id)
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
        bits = read.table.is_bits
        values: Sequence[int] = (
            [int(b) for b in resp.bits[: read.count]] if bits else resp.registers
        )
        if len(values) != read.count:
            raise _Refused(f"{len(values)} values for {read.count} addresses")
        return values, (sent_ns + received_ns) // 2

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

    def _plan(self, meter_id: str, refs: list[ChannelRef]) -> _Plan:
        """The meter's reads with their decoders, planned once (they depend on config alone)."""
        last = self._last_plan.get(meter_id)
        if last is not None and last[0] == refs:  # the refs of the last poll: the usual case
            return last[1]
        key = (meter_id, tuple([r.key for r in refs]))
        plan = self._plans.get(key)
        if plan is None:
            decoder = meter_decoder(refs)
            fetches = tuple(getattr(self.client, _READS[r.table]) for r in decoder.reads)
            plan = self._plans[key] = _Plan(decoder=decoder, fetches=fetches)
        self._last_plan[meter_id] = (list(refs), plan)
        return plan

    async def poll(self, meter: Meter, refs: list[ChannelRef]) -> ReadingBatch:
        """Read one meter once; each reading is stamped at the midpoint of the read that got it."""
        started_ns = time.time_ns()
        plan = self._plan(meter.id, refs)
        columns = plan.decoder.columns()
        if await self._connected():
            for i, read in enumerate(plan.decoder.reads):
                try:
                    values, ts_ns = await self._request(meter, read, plan.fetches[i])
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
                if self._failing:
                    self._note(meter, read, None)
                columns.add(i, values, ts_ns)
        received_ns = time.time_ns()
        poll_ns = (started_ns + received_ns) // 2
        batch = columns.batch(meter_id=meter.id, ts_ns=poll_ns, receive_ts_ns=received_ns)
        return self._mark_stale(batch, poll_ns)

    def _mark_stale(self, batch: ReadingBatch, now_ns: int) -> ReadingBatch:
        """STALE for the readings of channels without a good value for stale_after_ns."""
        fresh_ns = self._fresh_ns.get(batch.meter_id)
        if fresh_ns is None or len(fresh_ns) != len(batch.channel_ids):
            fresh_ns = self._fresh_ns[batch.meter_id] = np.full(
                len(batch.channel_ids), now_ns, np.int64
            )  # from the first poll on
        good = batch.quality == Quality.GOOD
        if good.all():
            fresh_ns[batch.channel_index] = now_ns
            return batch
        fresh_ns[batch.channel_index[good]] = now_ns
        stale = ~good & (now_ns - fresh_ns[batch.channel_index] > self.stale_after_ns)
        if not stale.any():
            return batch
        quality = np.where(stale, np.uint8(Quality.STALE), batch.quality).astype(np.uint8)
        return dataclasses.replace(batch, quality=quality)

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

"""OpcUaSource: the meters behind one OPC UA endpoint, by subscription or by polling.

One batch per meter per publish or poll. A heartbeat on ServerStatus/CurrentTime ends a dead
session; reconnection backs off and re-creates the subscription; while the server is out of
reach every channel yields STALE samples, so gaps are explicit. Knows nothing of the bus.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Coroutine, Sequence
from pathlib import Path
from typing import Any

from asyncua import ua
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.uaerrors import UaError

from compute.model import NO_TS, NS_PER_S, Quality, ReadingBatch
from compute.opcua_config import OpcUaOptions
from compute.opcua_sampling import Acquisition
from compute.plant import ChannelRef
from ingest import opcua_monitor
from ingest.opcua_monitor import Row
from ingest.opcua_security import (
    DEFAULT_PKI_DIR,
    NO_SECRETS,
    NO_SECURITY,
    OpcUaSecurityError,
    Secrets,
    make_client,
)

log = logging.getLogger(__name__)
_CURRENT_TIME = ua.NodeId.from_string(f"i={ObjectIds.Server_ServerStatus_CurrentTime}")


def _batches(rows: Sequence[tuple[ChannelRef, Row]], receive_ns: int) -> list[ReadingBatch]:
    by_meter: dict[str, list[Row]] = {}
    for ref, r in rows:
        by_meter.setdefault(ref.meter.id, []).append(r)
    return [
        ReadingBatch.from_rows(
            meter_id=m,
            receive_ts_ns=receive_ns,
            rows=[r[:4] for r in meter_rows],
            server_ts_ns=[r[4] for r in meter_rows],
        )
        for m, meter_rows in by_meter.items()
    ]


class _Collector:
    """Subscription handler: gathers one publish response's notifications into meter batches."""

    def __init__(self, source: OpcUaSource, by_node: dict[str, ChannelRef]) -> None:
        self.source = source
        self.by_node = by_node
        self.pending: list[tuple[ChannelRef, Row]] = []
        self.flush_scheduled = False

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        ref = self.by_node.get(node.nodeid.to_string())
        if ref is None:
            return
        self.pending.append(
            (ref, opcua_monitor.row(ref, data.monitored_item.Value, time.time_ns()))
        )
        if not self.flush_scheduled:  # one flush per publish response
            self.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self.flush_scheduled = False
        rows, self.pending = self.pending, []
        self.source.emit(_batches(rows, time.time_ns()))

    def status_change_notification(self, status: Any) -> None:
        log.warning("OPC UA subscription status changed: %s", status)


class OpcUaSource:
    """Reads every channel of the meters that share one OPC UA endpoint."""

    def __init__(
        self,
        endpoint: str,
        channels: Sequence[ChannelRef],
        *,
        publish_interval_s: float = 1.0,
        timeout_s: float = 5.0,
        max_backoff_s: float = 30.0,
        stale_after_intervals: int = 3,
        security: OpcUaOptions = NO_SECURITY,
        pki_dir: Path = DEFAULT_PKI_DIR,
        secrets: Secrets = NO_SECRETS,
    ) -> None:
        self.endpoint = endpoint
        self.channels = list(channels)
        self.publish_interval_s = publish_interval_s
        self.timeout_s = timeout_s
        self.max_backoff_s = max_backoff_s
        self.stale_after_ns = int(stale_after_intervals * publish_interval_s * NS_PER_S)
        self.polled = [r for r in self.channels if r.meter.acquisition is Acquisition.POLL]
        self.subscribed = [r for r in self.channels if r.meter.acquisition is Acquisition.SUBSCRIBE]
        self.alive_ns = 0
        self.out: asyncio.Queue[ReadingBatch | Exception] = asyncio.Queue()
        self.security, self.pki_dir, self.secrets = security, pki_dir, secrets

    def emit(self, batches: list[ReadingBatch]) -> None:
        self.alive_ns = time.time_ns()
        for b in batches:
            self.out.put_nowait(b)

    async def _session(self) -> None:
        client = await make_client(
            self.endpoint,
            self.security,
            pki_dir=self.pki_dir,
            secrets=self.secrets,
            timeout_s=self.timeout_s,
        )
        async with client:
            limits = await opcua_monitor.read_limits(client, self.timeout_s)
            if self.subscribed:
                by_node = {
                    ua.NodeId.from_string(r.channel.node_id or "").to_string(): r
                    for r in self.subscribed
                }
                sub = await client.create_subscription(
                    self.publish_interval_s * 1000, _Collector(self, by_node)
                )
                await opcua_monitor.monitor(sub, self.subscribed, self.publish_interval_s, limits)
            log.info(
                "OPC UA %s: %d subscribed, %d polled, limits %s",
                self.endpoint,
                len(self.subscribed),
                len(self.polled),
                limits,
            )
            while True:
                next_ns = time.time_ns() + int(self.publish_interval_s * NS_PER_S)
                if self.polled:
                    rows = await opcua_monitor.read_rows(
                        client, self.polled, limits, self.timeout_s
                    )
                    self.emit(
                        _batches(
                            [(r, x) for r, x in zip(self.polled, rows, strict=True)], time.time_ns()
                        )
                    )
                await self._heartbeat(client)
                await asyncio.sleep(max(0.0, (next_ns - time.time_ns()) / NS_PER_S))

    async def _heartbeat(self, client: Any) -> None:
        """ServerStatus/CurrentTime must answer in time, or the session is given up."""
        async with asyncio.timeout(self.timeout_s):  # not wait_for: it can swallow a cancel
            await client.get_node(_CURRENT_TIME).read_value()
        self.alive_ns = time.time_ns()

    def _stale(self, now_ns: int) -> list[ReadingBatch]:
        rows = [(r, (r.key, now_ns, math.nan, Quality.STALE, NO_TS)) for r in self.channels]
        return _batches(rows, now_ns)

    async def _watch_staleness(self) -> None:
        """While no publish, poll or heartbeat succeeds, emit STALE samples every interval."""
        while True:
            await asyncio.sleep(self.publish_interval_s)
            now_ns = time.time_ns()
            if now_ns - self.alive_ns > self.stale_after_ns:
                for b in self._stale(now_ns):
                    self.out.put_nowait(b)

    async def _connect_forever(self) -> None:
        backoff_s = 0.5
        while True:
            started_ns = time.time_ns()
            try:
                await self._session()
            except (OSError, TimeoutError, UaError, ConnectionError) as e:
                if self.alive_ns > started_ns:
                    backoff_s = 0.5  # the session worked for a while: start backing off anew
                log.warning("OPC UA %s: %s; reconnecting in %.1f s", self.endpoint, e, backoff_s)
            except OpcUaSecurityError as e:
                # an operator must act (trust a certificate, set a password): retry slowly
                backoff_s = self.max_backoff_s
                log.error("OPC UA %s: %s; retrying in %.1f s", self.endpoint, e, backoff_s)
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, self.max_backoff_s)

    async def _reporting(self, work: Coroutine[Any, Any, None]) -> None:
        """Run a worker; its unexpected failure goes into the queue, so batches() raises it."""
        try:
            await work
        except Exception as e:
            self.out.put_nowait(e)

    async def batches(self) -> AsyncIterator[ReadingBatch]:
        self.alive_ns = time.time_ns()
        workers = [
            asyncio.create_task(self._reporting(self._connect_forever())),
            asyncio.create_task(self._reporting(self._watch_staleness())),
        ]
        try:
            while True:
                item = await self.out.get()
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            for w in workers:
                w.cancel()

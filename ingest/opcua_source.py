"""OpcUaSource: subscribes to a server's channel nodes and yields one batch per meter per publish.

Reconnects with capped exponential backoff when the session drops. Knows nothing of the bus.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.ua.uaerrors import UaError

from compute.model import Quality, ReadingBatch
from compute.plant import ChannelRef
from ingest.source import opcua_quality

log = logging.getLogger(__name__)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ts_ns(stamp: datetime | None, fallback_ns: int) -> int:
    """Exact ns since the epoch of an OPC UA timestamp (naive ones are UTC)."""
    if stamp is None:
        return fallback_ns
    aware = stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    return (aware - _EPOCH) // timedelta(microseconds=1) * 1000


class _Collector:
    """Subscription handler: gathers one publish response's notifications into meter batches."""

    def __init__(self, by_node: dict[str, ChannelRef], out: asyncio.Queue[ReadingBatch]) -> None:
        self.by_node = by_node
        self.out = out
        self.pending: list[tuple[ChannelRef, int, float, Quality]] = []
        self.flush_scheduled = False

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        ref = self.by_node.get(node.nodeid.to_string())
        if ref is None:
            return
        dv = data.monitored_item.Value
        quality = opcua_quality(dv.StatusCode.value if dv.StatusCode is not None else 0)
        try:
            value = float(val) if val is not None else float("nan")
        except (TypeError, ValueError):
            value, quality = float("nan"), Quality.BAD
        self.pending.append((ref, _ts_ns(dv.SourceTimestamp, time.time_ns()), value, quality))
        if not self.flush_scheduled:
            self.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self.flush_scheduled = False
        rows, self.pending = self.pending, []
        receive_ns = time.time_ns()
        by_meter: dict[str, list[tuple[str, int, float, Quality]]] = {}
        for ref, ts_ns, value, quality in rows:
            by_meter.setdefault(ref.meter.id, []).append((ref.key, ts_ns, value, quality))
        for meter_id, meter_rows in by_meter.items():
            self.out.put_nowait(
                ReadingBatch.from_rows(meter_id=meter_id, receive_ts_ns=receive_ns, rows=meter_rows)
            )

    def status_change_notification(self, status: Any) -> None:
        log.warning("OPC UA subscription status changed: %s", status)


class OpcUaSource:
    """Subscribes to every channel of the meters that share one OPC UA endpoint."""

    def __init__(
        self,
        endpoint: str,
        channels: Sequence[ChannelRef],
        *,
        publish_interval_s: float = 1.0,
        timeout_s: float = 5.0,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.endpoint = endpoint
        self.channels = list(channels)
        self.publish_interval_s = publish_interval_s
        self.timeout_s = timeout_s
        self.max_backoff_s = max_backoff_s

    async def _session(self, out: asyncio.Queue[ReadingBatch]) -> None:
        client = Client(self.endpoint, timeout=self.timeout_s)
        async with client:
            by_node = {
                ua.NodeId.from_string(r.channel.node_id or "").to_string(): r for r in self.channels
            }
            sub = await client.create_subscription(
                self.publish_interval_s * 1000, _Collector(by_node, out)
            )
            nodes = [client.get_node(n) for n in by_node]
            results: list[int | ua.StatusCode] = await sub.subscribe_data_change(
                nodes, queuesize=100, sampling_interval=ua.Double(self.publish_interval_s * 1000)
            )
            for node, res in zip(nodes, results, strict=True):
                if isinstance(res, ua.StatusCode):
                    log.error("cannot monitor %s on %s: %s", node, self.endpoint, res)
            log.info("subscribed to %d nodes on %s", len(nodes), self.endpoint)
            while True:  # watchdog: the session must keep answering
                await asyncio.sleep(self.publish_interval_s * 2)
                await asyncio.wait_for(client.check_connection(), self.timeout_s)

    async def batches(self) -> AsyncIterator[ReadingBatch]:
        out: asyncio.Queue[ReadingBatch] = asyncio.Queue()
        backoff_s = 0.5

        async def run() -> None:
            nonlocal backoff_s
            while True:
                try:
                    await self._session(out)
                except (OSError, TimeoutError, UaError, ConnectionError) as e:
                    log.warning(
                        "OPC UA %s: %s; reconnecting in %.1f s", self.endpoint, e, backoff_s
                    )
                    await asyncio.sleep(backoff_s)
                    backoff_s = min(backoff_s * 2, self.max_backoff_s)

        task = asyncio.create_task(run())
        try:
            while True:
                if task.done():
                    task.result()
                batch = await out.get()
                backoff_s = 0.5
                yield batch
        finally:
            task.cancel()

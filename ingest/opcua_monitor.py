"""OPC UA acquisition mechanics: monitored items with per-node options and a deadband fallback,
batched reads within the server's operation limits, and DataValue to reading rows.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from asyncua import ua
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds

from compute.model import NO_TS, Quality
from compute.opcua_sampling import NodeSampling
from compute.plant import ChannelRef
from ingest.source import opcua_quality

log = logging.getLogger(__name__)
T = TypeVar("T")
Row = tuple[str, int, float, Quality, int]  # key, source ts, value, quality, server ts
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DEADBAND_TYPE = {"absolute": 1, "percent": 2}
_FIRST_HANDLE = 1_000_000  # clear of the handles asyncua's own helpers hand out


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """The server's OperationLimits; 0 means the server sets none."""

    max_nodes_per_read: int = 0
    max_monitored_items_per_call: int = 0


def chunks(items: Sequence[T], size: int) -> Iterator[list[T]]:
    """Consecutive slices of at most `size` items (all at once when size is 0)."""
    step = size if size > 0 else max(1, len(items))
    for i in range(0, len(items), step):
        yield list(items[i : i + step])


async def read_limits(client: Any, timeout_s: float) -> Limits:
    """Read MaxNodesPerRead and MaxMonitoredItemsPerCall; a server without them gets no limits."""
    ids = (
        ObjectIds.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead,
        ObjectIds.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall,
    )
    nodes = [client.get_node(ua.NodeId.from_string(f"i={i}")) for i in ids]
    async with asyncio.timeout(timeout_s):  # not wait_for: it can swallow a cancel in 3.11
        values = await client.read_attributes(nodes)
    found = [
        int(dv.Value.Value) if dv.StatusCode is None or dv.StatusCode.is_good() else 0
        for dv in values
    ]
    return Limits(max_nodes_per_read=found[0] or 0, max_monitored_items_per_call=found[1] or 0)


def ts_ns(stamp: datetime | None) -> int | None:
    """Exact ns since the epoch of an OPC UA timestamp (naive ones are UTC)."""
    if stamp is None:
        return None
    aware = stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    return (aware - _EPOCH) // timedelta(microseconds=1) * 1000


def row(ref: ChannelRef, dv: Any, receive_ns: int) -> Row:
    """A reading from a DataValue: bad values are kept with their quality, never dropped.

    The source timestamp is the reading's time; without one, the server's, then the receive time.
    The server timestamp is kept beside it (NO_TS when the server sent none).
    """
    quality = opcua_quality(dv.StatusCode.value if dv.StatusCode is not None else 0)
    raw = dv.Value.Value if dv.Value is not None else None
    try:
        value = float(raw) if raw is not None else math.nan
    except (TypeError, ValueError):
        value, quality = math.nan, Quality.BAD
    server_ns = ts_ns(dv.ServerTimestamp)
    stamp = ts_ns(dv.SourceTimestamp) or server_ns or receive_ns
    return (ref.key, stamp, value, quality, NO_TS if server_ns is None else server_ns)


def _request(
    ref: ChannelRef, handle: int, default_interval_s: float, with_deadband: bool
) -> ua.MonitoredItemCreateRequest:
    sampling = ref.channel.sampling or NodeSampling()
    params = ua.MonitoringParameters()
    params.ClientHandle = handle
    interval_s = default_interval_s if sampling.interval_s is None else sampling.interval_s
    params.SamplingInterval = interval_s * 1000
    params.QueueSize = sampling.queue_size
    params.DiscardOldest = True
    if with_deadband and sampling.deadband is not None:
        band = ua.DataChangeFilter()
        band.Trigger = ua.DataChangeTrigger.StatusValue
        band.DeadbandType = _DEADBAND_TYPE[sampling.deadband.kind]
        band.DeadbandValue = sampling.deadband.value
        params.Filter = band
    read = ua.ReadValueId()
    read.NodeId = ua.NodeId.from_string(ref.channel.node_id or "")
    read.AttributeId = AttributeIds.Value
    req = ua.MonitoredItemCreateRequest()
    req.ItemToMonitor = read
    req.MonitoringMode = ua.MonitoringMode.Reporting
    req.RequestedParameters = params
    return req


async def monitor(
    sub: Any, refs: Sequence[ChannelRef], default_interval_s: float, limits: Limits
) -> list[str]:
    """Create a monitored item per channel, in calls the server accepts; return those that failed.

    A server that rejects a deadband gets the item again without one, and a warning says so.
    """
    handles = itertools.count(_FIRST_HANDLE)
    rejected: list[ChannelRef] = []
    failed: list[str] = []
    for part in chunks(refs, limits.max_monitored_items_per_call):
        reqs = [_request(r, next(handles), default_interval_s, True) for r in part]
        for ref, res in zip(part, await sub.create_monitored_items(reqs), strict=True):
            if not isinstance(res, ua.StatusCode):
                continue
            if ref.channel.sampling is not None and ref.channel.sampling.deadband is not None:
                log.warning("%s: deadband rejected (%s); monitoring without it", ref.key, res.name)
                rejected.append(ref)
            else:
                log.error("%s: cannot monitor %s: %s", ref.key, ref.channel.node_id, res.name)
                failed.append(ref.key)
    for part in chunks(rejected, limits.max_monitored_items_per_call):
        reqs = [_request(r, next(handles), default_interval_s, False) for r in part]
        for ref, res in zip(part, await sub.create_monitored_items(reqs), strict=True):
            if isinstance(res, ua.StatusCode):
                log.error("%s: cannot monitor %s: %s", ref.key, ref.channel.node_id, res.name)
                failed.append(ref.key)
    return failed


async def read_rows(
    client: Any, refs: Sequence[ChannelRef], limits: Limits, timeout_s: float
) -> list[Row]:
    """Read every channel once, in Read calls of at most MaxNodesPerRead nodes."""
    rows: list[Row] = []
    for part in chunks(refs, limits.max_nodes_per_read):
        nodes = [client.get_node(ua.NodeId.from_string(r.channel.node_id or "")) for r in part]
        async with asyncio.timeout(timeout_s):
            values = await client.read_attributes(nodes)
        receive_ns = time.time_ns()
        rows.extend(row(r, dv, receive_ns) for r, dv in zip(part, values, strict=True))
    return rows

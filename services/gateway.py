"""The gateway process: run a Source per field endpoint and publish each batch as one bus message.

Keyed by meter id, so a meter's batches stay in order on one partition. While the bus is
unreachable the batches wait in a disk buffer, and they are flushed in order when it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path

from compute.plant import ChannelRef, Plant, Protocol
from ingest.modbus_source import ModbusSource
from ingest.opcua_security import DEFAULT_PKI_DIR, NO_SECRETS, Secrets
from ingest.opcua_source import OpcUaSource
from ingest.source import Source
from services.buffer import MEMORY, DiskBuffer
from services.metrics import Registry
from services.publisher import GatewayMetrics, Publisher, PublishingBus

log = logging.getLogger(__name__)

MEMORY_BUFFER_MAX_BYTES = 64 << 20


def sources_for(
    plant: Plant, *, pki_dir: Path = DEFAULT_PKI_DIR, secrets: Secrets = NO_SECRETS
) -> list[Source]:
    """One source per endpoint: meters that share an endpoint share its connection.

    `pki_dir` keeps the OPC UA client certificate; `secrets` resolves passwords named in config.
    """
    groups: dict[tuple[Protocol, str], list[ChannelRef]] = {}
    for ref in plant.channels.values():
        groups.setdefault((ref.meter.protocol, ref.meter.endpoint), []).append(ref)
    sources: list[Source] = []
    for (protocol, endpoint), refs in groups.items():
        interval_s = min(r.meter.interval_s for r in refs)
        if protocol is Protocol.OPCUA:
            sources.append(
                OpcUaSource(
                    endpoint,
                    refs,
                    publish_interval_s=interval_s,
                    security=refs[0].meter.opcua,  # alike for one endpoint (checked)
                    pki_dir=pki_dir,
                    secrets=secrets,
                )
            )
        else:
            sources.append(ModbusSource(endpoint, refs, interval_s=interval_s))
    return sources


async def pump(source: Source, publisher: Publisher) -> None:
    async for batch in source.batches():
        await publisher.publish(batch)


async def _log_summaries(metrics: GatewayMetrics, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        log.info("gateway: %s", metrics.summary())


async def run_sources(
    sources: Sequence[Source], publisher: Publisher, *, summary_interval_s: float | None = None
) -> None:
    """Pump every source into the publisher and flush its buffer, until cancelled."""
    async with asyncio.TaskGroup() as tg:
        tg.create_task(publisher.flush_forever())
        if summary_interval_s is not None:
            tg.create_task(_log_summaries(publisher.metrics, summary_interval_s))
        for s in sources:
            tg.create_task(pump(s, publisher))


async def run_gateway(
    plant: Plant,
    bus: PublishingBus,
    topic: str = "plantpulse.readings",
    *,
    buffer: DiskBuffer | None = None,
    registry: Registry | None = None,
    publish_timeout_s: float = 10.0,
    summary_interval_s: float | None = None,
    pki_dir: Path = DEFAULT_PKI_DIR,
    secrets: Secrets = NO_SECRETS,
) -> None:
    """Read every meter of the plant and publish until cancelled.

    Without a buffer, an in-memory one of MEMORY_BUFFER_MAX_BYTES stands in: enough for an
    in-process bus, which is never unreachable.
    """
    sources = sources_for(plant, pki_dir=pki_dir, secrets=secrets)
    log.info("gateway reading %d endpoints, %d channels", len(sources), len(plant.channels))
    with contextlib.ExitStack() as stack:
        if buffer is None:
            buffer = stack.enter_context(DiskBuffer(MEMORY, max_bytes=MEMORY_BUFFER_MAX_BYTES))
        metrics = GatewayMetrics(registry or Registry(), buffer)
        publisher = Publisher(bus, topic, buffer, metrics, timeout_s=publish_timeout_s)
        await run_sources(sources, publisher, summary_interval_s=summary_interval_s)

"""The gateway process: run a Source per field endpoint and publish each batch as one bus message.

Keyed by meter id, so a meter's batches stay in order on one partition.
"""

from __future__ import annotations

import asyncio
import logging

from compute import codec
from compute.errors import PlantPulseError
from compute.model import ReadingBatch
from compute.plant import ChannelRef, Plant, Protocol
from ingest.modbus_source import ModbusSource
from ingest.opcua_source import OpcUaSource
from ingest.source import Source
from services.bus import Bus

log = logging.getLogger(__name__)


def sources_for(plant: Plant) -> list[Source]:
    """One source per endpoint: meters that share an endpoint share its connection."""
    groups: dict[tuple[Protocol, str], list[ChannelRef]] = {}
    for ref in plant.channels.values():
        groups.setdefault((ref.meter.protocol, ref.meter.endpoint), []).append(ref)
    sources: list[Source] = []
    for (protocol, endpoint), refs in groups.items():
        interval_s = min(r.meter.interval_s for r in refs)
        if protocol is Protocol.OPCUA:
            sources.append(OpcUaSource(endpoint, refs, publish_interval_s=interval_s))
        else:
            sources.append(ModbusSource(endpoint, refs, interval_s=interval_s))
    return sources


async def publish(bus: Bus, topic: str, batch: ReadingBatch, max_backoff_s: float = 30.0) -> None:
    """Publish one batch, retrying with backoff while the bus is unavailable."""
    backoff_s = 0.5
    payload = codec.encode(batch)
    while True:
        try:
            await bus.publish(topic, batch.meter_id.encode(), payload)
            return
        except (PlantPulseError, OSError) as e:
            log.warning(
                "publish of %s failed, retrying in %.1f s: %s", batch.meter_id, backoff_s, e
            )
            await asyncio.sleep(backoff_s)
            backoff_s = min(2 * backoff_s, max_backoff_s)


async def _pump(source: Source, bus: Bus, topic: str) -> None:
    async for batch in source.batches():
        await publish(bus, topic, batch)


async def run_gateway(plant: Plant, bus: Bus, topic: str = "plantpulse.readings") -> None:
    """Read every meter of the plant and publish until cancelled."""
    sources = sources_for(plant)
    log.info("gateway reading %d endpoints, %d channels", len(sources), len(plant.channels))
    async with asyncio.TaskGroup() as tg:
        for s in sources:
            tg.create_task(_pump(s, bus, topic))

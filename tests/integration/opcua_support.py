"""Shared by the OPC UA integration tests: a one-meter plant and a timed collection of batches."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from compute.model import ReadingBatch
from compute.plant import ChannelRef
from ingest.opcua_source import OpcUaSource
from tests.plants import gauge, meter, one_site


def one_meter(
    endpoint: str,
    node_ids: dict[str, str],
    *,
    acquisition: str = "subscribe",
    interval_s: float = 0.5,
    sampling: dict[str, dict[str, Any]] | None = None,
) -> list[ChannelRef]:
    """Gauge channels named by `node_ids` keys on one OPC UA meter called "peer"."""
    channels = [
        gauge(
            name,
            node_id=node_id,
            **({"sampling": sampling[name]} if sampling and name in sampling else {}),
        )
        for name, node_id in node_ids.items()
    ]
    m = meter("peer", "opcua", endpoint, channels, acquisition=acquisition, interval_s=interval_s)
    return list(one_site([m]).channels.values())


async def collect(source: OpcUaSource, seconds: float) -> list[ReadingBatch]:
    """Every batch the source yields within `seconds`."""
    got: list[ReadingBatch] = []

    async def pump() -> None:
        async for b in source.batches():
            got.append(b)

    task = asyncio.create_task(pump())
    await asyncio.sleep(seconds)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return got


def channels_in(batches: Sequence[ReadingBatch]) -> set[str]:
    return {b.channel_ids[i] for b in batches for i in b.channel_index}

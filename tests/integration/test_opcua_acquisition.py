"""OPC UA acquisition against the independent node-opcua server: polling within a small
MaxNodesPerRead, and a rejected deadband falling back to plain monitoring.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from asyncua import ua
from asyncua.client.client import Client

from compute.model import Quality, ReadingBatch
from compute.plant import ChannelRef, parse_plant
from ingest.opcua_source import OpcUaSource
from tests.harness import free_port
from tests.peers.harness import node_opcua_server

pytestmark = pytest.mark.peers
NAMES = ("temperature", "pressure-diff", "energy", "humidity", "particles")


def _channels(endpoint: str, acquisition: str, sampling: dict[str, Any] | None) -> list[ChannelRef]:
    channels = [
        {
            "id": name,
            "node_id": f"ns=1;s=peer.{name}",
            "unit": "x",
            "kind": "gauge",
            "utility": "environment",
            **({"sampling": sampling} if sampling and name == "temperature" else {}),
        }
        for name in NAMES
    ]
    plant = parse_plant(
        {
            "sites": [
                {
                    "id": "s",
                    "name": "peer",
                    "timezone": "UTC",
                    "areas": [{"id": "u", "kind": "utility"}],
                }
            ],
            "meters": [
                {
                    "id": "peer",
                    "site": "s",
                    "area": "u",
                    "protocol": "opcua",
                    "endpoint": endpoint,
                    "acquisition": acquisition,
                    "interval_s": 0.5,
                    "channels": channels,
                }
            ],
        }
    )
    return list(plant.channels.values())


@contextlib.contextmanager
def _server(peers_installed: None, max_nodes_per_read: int = 0) -> Iterator[str]:
    with node_opcua_server(free_port(), max_nodes_per_read) as endpoint:
        yield endpoint


async def _first_seconds(source: OpcUaSource, seconds: float) -> list[ReadingBatch]:
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


def _seen(batches: list[ReadingBatch]) -> dict[str, set[Quality]]:
    out: dict[str, set[Quality]] = {}
    for b in batches:
        for i, q in zip(b.channel_index, b.quality, strict=True):
            out.setdefault(b.channel_ids[i], set()).add(Quality(int(q)))
    return out


async def test_polling_respects_a_small_max_nodes_per_read(peers_installed: None) -> None:
    with _server(peers_installed, max_nodes_per_read=2) as endpoint:
        async with Client(endpoint, timeout=5) as bare:  # the limit is real: 5 nodes are refused
            nodes = [bare.get_node(f"ns=1;s=peer.{n}") for n in NAMES]
            with pytest.raises(ua.UaStatusCodeError, match="BadTooManyOperations"):
                await bare.read_attributes(nodes)
        refs = _channels(endpoint, "poll", None)
        source = OpcUaSource(endpoint, refs, publish_interval_s=0.5, timeout_s=5)
        batches = await _first_seconds(source, 4)
    seen = _seen(batches)
    assert set(seen) == {r.key for r in refs}
    assert seen["peer.temperature"] == {Quality.GOOD}
    assert seen["peer.humidity"] == {Quality.BAD}  # kept, with its quality
    assert seen["peer.particles"] == {Quality.UNCERTAIN}
    polls = [b for b in batches if b.size == len(NAMES)]
    assert len(polls) >= 4, "one batch per poll, every channel in it"
    assert all(abs(int(t) - time.time_ns()) < 30 * 10**9 for b in polls for t in b.ts_ns)


async def test_a_rejected_deadband_falls_back_to_plain_monitoring(
    peers_installed: None, caplog: pytest.LogCaptureFixture
) -> None:
    percent = {"deadband": {"kind": "percent", "value": 5}, "queue_size": 5}
    with _server(peers_installed) as endpoint:
        refs = _channels(endpoint, "subscribe", percent)
        source = OpcUaSource(endpoint, refs, publish_interval_s=0.5, timeout_s=5)
        with caplog.at_level(logging.WARNING, logger="ingest.opcua_monitor"):
            batches = await _first_seconds(source, 4)
    assert "peer.temperature: deadband rejected" in caplog.text
    assert set(_seen(batches)) == {r.key for r in refs}
    assert _seen(batches)["peer.temperature"] == {Quality.GOOD}

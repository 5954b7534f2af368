"""OPC UA acquisition against the independent node-opcua server: polling within a small
MaxNodesPerRead, and a rejected deadband falling back to plain monitoring.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

import pytest
from asyncua import ua
from asyncua.client.client import Client

from compute.model import Quality, ReadingBatch
from ingest.opcua_source import OpcUaSource
from tests.harness import free_port
from tests.integration.opcua_support import collect, one_meter
from tests.peers.harness import node_opcua_server

pytestmark = pytest.mark.peers
NAMES = ("temperature", "pressure-diff", "energy", "humidity", "particles")
NODES = {n: f"ns=1;s=peer.{n}" for n in NAMES}


@contextlib.contextmanager
def _server(peers_installed: None, max_nodes_per_read: int = 0) -> Iterator[str]:
    with node_opcua_server(free_port(), max_nodes_per_read) as endpoint:
        yield endpoint


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
        refs = one_meter(endpoint, NODES, acquisition="poll")
        source = OpcUaSource(endpoint, refs, publish_interval_s=0.5, timeout_s=5)
        batches = await collect(source, 4)
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
        refs = one_meter(endpoint, NODES, sampling={"temperature": percent})
        source = OpcUaSource(endpoint, refs, publish_interval_s=0.5, timeout_s=5)
        with caplog.at_level(logging.WARNING, logger="ingest.opcua_monitor"):
            batches = await collect(source, 4)
    assert "peer.temperature: deadband rejected" in caplog.text
    assert set(_seen(batches)) == {r.key for r in refs}
    assert _seen(batches)["peer.temperature"] == {Quality.GOOD}

"""The OPC UA gateway never writes: a server that records every Write service call sees none
from a full run of subscription and polling, while a plain client's write is recorded.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.callback import CallbackType
from asyncua.server.server import Server

from ingest.opcua_source import OpcUaSource
from tests.harness import free_port
from tests.integration.opcua_support import channels_in, collect, one_meter


@contextlib.asynccontextmanager
async def _recording_server(endpoint: str, writes: list[Any]) -> AsyncIterator[None]:
    server = Server()
    await server.init()
    server.set_endpoint(endpoint)
    idx = await server.register_namespace("urn:plantpulse:read-only-test")
    folder = await server.nodes.objects.add_object(idx, "line")
    for name in ("a", "b", "c"):
        var = await folder.add_variable(ua.NodeId(f"line.{name}", idx), name, 1.0)
        await var.set_writable()  # writable, so a write would succeed if anyone sent one

    def record(event: Any, _: Any) -> None:
        if event.is_external:  # a client's Write, not the server updating its own status
            writes.append(event.request_params)

    server.subscribe_server_callback(CallbackType.PreWrite, record)
    async with server:
        yield


async def test_a_full_acquisition_run_sends_no_write(tmp_path: Any) -> None:
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/ro/"
    writes: list[Any] = []
    async with _recording_server(endpoint, writes):
        nodes = {n: f"ns=2;s=line.{n}" for n in ("a", "b", "c")}
        for acquisition in ("subscribe", "poll"):
            refs = one_meter(endpoint, nodes, acquisition=acquisition, interval_s=0.2)
            batches = await collect(OpcUaSource(endpoint, refs, publish_interval_s=0.2), 3)
            assert channels_in(batches) == {"peer.a", "peer.b", "peer.c"}
        assert writes == [], "the gateway sent a Write"
        async with Client(endpoint, timeout=5) as client:  # the hook does see writes
            await client.get_node("ns=2;s=line.a").write_value(2.0)
    assert len(writes) == 1

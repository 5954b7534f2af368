"""GET /v1/stream (SSE) and /v1/ws on a real uvicorn server on loopback: filters, tokens, a slow
client's coalesced state, slots freed on disconnect, and a shutdown that open streams do not hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
import websockets
from websockets.exceptions import InvalidStatus

from compute.plant import Plant
from services.access import Role
from services.api import create_app
from services.api_live import LiveServer
from services.live_hub import LiveHub
from services.store.sqlite import SqliteStore
from tests.harness import free_port
from tests.tokens import token_for

ROOM_A = "area=cleanroom-a"


@dataclass
class Served:
    base: str
    ws: str
    token: str
    hub: LiveHub
    server: uvicorn.Server
    task: asyncio.Task[None]
    plant: Plant

    def url(self, query: str = "", *, ws: bool = False) -> str:
        path = f"{self.ws}/v1/ws" if ws else f"{self.base}/v1/stream"
        return f"{path}?token={self.token}&{query}"


def publish_all(hub: LiveHub, plant: Plant, value: float, pad: str = "") -> None:
    for key, ref in plant.channels.items():
        data = {"channel_id": key, "value": value, "pad": pad}
        hub.publish_channel(key, data, site=ref.site.id, area=ref.area.id)


@pytest.fixture
async def served(plant: Plant, tmp_path: Path) -> AsyncIterator[Served]:
    async with SqliteStore(tmp_path / "s.sqlite3") as store:
        token = await token_for(store, Role.VIEWER)
        hub = LiveHub()
        app = create_app(plant, store, hub=hub)
        port = free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
        server = LiveServer(config, hub)
        task = asyncio.create_task(server.serve())
        await until(lambda: server.started)
        yield Served(
            f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}", token, hub, server, task, plant
        )
        server.should_exit = True
        async with asyncio.timeout(10):
            await task


async def sse(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, object]]]:
    """(event, data) of a text/event-stream response; comments come as ("comment", {})."""
    event, data = "message", ""
    async for line in response.aiter_lines():
        if line.startswith(":"):
            yield "comment", {}
        elif line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and data:
            yield event, json.loads(data)
            event, data = "message", ""


async def take(
    events: AsyncIterator[tuple[str, dict[str, object]]], n: int
) -> list[tuple[str, dict[str, object]]]:
    out = []
    async with asyncio.timeout(10):
        async for e in events:
            if e[0] not in ("comment", "heartbeat"):
                out.append(e)
                if len(out) == n:
                    return out
    return out


async def until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


async def test_sse_sends_the_filtered_state_then_only_matching_changes(served: Served) -> None:
    plant, hub = served.plant, served.hub
    publish_all(hub, plant, 1.0)
    room_a = sorted(k for k, r in plant.channels.items() if r.area.id == "cleanroom-a")
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("GET", served.url(f"{ROOM_A}&types=channel,alert")) as r,
    ):
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = sse(r)
        first = await take(events, len(room_a))
        assert sorted(str(d["channel_id"]) for _, d in first) == room_a
        assert {e for e, _ in first} == {"channel"}
        hub.publish_site("suzhou", {"power": 1})  # not asked for
        other = plant.channels["cleanroom-b-env.humidity"]
        hub.publish_channel(other.key, {"value": 9}, site="suzhou", area=other.area.id)
        hub.publish_channel(
            room_a[0], {"channel_id": room_a[0], "value": 2.0}, site="suzhou", area="cleanroom-a"
        )
        ((event, data),) = await take(events, 1)
        assert (event, data) == ("channel", {"channel_id": room_a[0], "value": 2.0})


@pytest.mark.parametrize(
    ("query", "status", "reason"),
    [
        ("site=nowhere", 422, "unknown site 'nowhere'"),
        ("area=roof", 422, "unknown area 'roof'"),
        ("utility=steam", 422, "unknown utility 'steam'"),
        ("channel=main-incomer.energy-import,x.y", 422, "unknown channel 'x.y'"),
        ("keepalive_s=0", 422, "keepalive_s"),
    ],
)
async def test_bad_filters_are_refused_before_the_stream_starts(
    served: Served, query: str, status: int, reason: str
) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.get(served.url(query))
        assert r.status_code == status and reason in r.text
        with pytest.raises(InvalidStatus) as refused:
            async with websockets.connect(served.url(query, ws=True)):
                pass
        assert refused.value.response.status_code == status
        assert reason in refused.value.response.body.decode()


async def test_a_stream_needs_a_token(served: Served) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.get(f"{served.base}/v1/stream")
        assert r.status_code == 401 and "missing API token" in r.text
        r = await client.get(f"{served.base}/v1/stream?token=ptk_000000000000_{'x' * 43}")
        assert r.status_code == 401 and "unknown API token" in r.text
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(f"{served.ws}/v1/ws"):
            pass
    assert refused.value.response.status_code == 401


async def test_websocket_streams_the_same_events(served: Served) -> None:
    plant, hub = served.plant, served.hub
    publish_all(hub, plant, 1.0)
    key = "main-incomer.energy-import"
    async with websockets.connect(served.url(f"channel={key}", ws=True)) as ws:
        first = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert first["event"] == "channel" and first["data"]["channel_id"] == key
        assert len(served.hub.clients) == 1
        hub.publish_channel(key, {"channel_id": key, "value": 7.0}, site="suzhou", area="utility")
        got = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert got["data"] == {"channel_id": key, "value": 7.0} and got["id"] > first["id"]
    await until(lambda: not served.hub.clients)


async def test_keepalives_come_while_nothing_changes(served: Served) -> None:
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("GET", served.url("keepalive_s=1")) as r,
    ):
        seen = []
        async with asyncio.timeout(5):
            async for e, data in sse(r):
                seen.append(e)
                if e == "heartbeat":
                    assert isinstance(data["now_ns"], int)
                    break
        assert "comment" in seen


async def test_a_disconnected_client_frees_its_slot(served: Served) -> None:
    publish_all(served.hub, served.plant, 1.0)
    async with httpx.AsyncClient(timeout=10) as client:
        for _ in range(3):
            async with client.stream("GET", served.url(ROOM_A)) as r:
                await take(sse(r), 1)
                assert len(served.hub.clients) == 1
            await until(lambda: not served.hub.clients)


async def test_a_slow_client_gets_the_newest_state_and_holds_one_event_per_key(
    served: Served,
) -> None:
    """A client that does not read while thousands of large updates are published: the socket
    buffers fill, its pending events stay at one per key, and when it reads it gets the newest."""
    plant, hub = served.plant, served.hub
    room_a = [k for k, r in plant.channels.items() if r.area.id == "cleanroom-a"]
    host, port = served.base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port), limit=1 << 22)
    path = served.url(ROOM_A).removeprefix(served.base)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    await writer.drain()
    await until(lambda: len(hub.clients) == 1)
    (client,) = hub.clients
    bound = client.scope.key_bound(hub.max_alerts)
    peak = 0
    pad = "x" * 20_000
    for i in range(2_000):
        publish_all(hub, plant, float(i), pad)
        peak = max(peak, len(client.pending))
        if i % 50 == 0:
            await asyncio.sleep(0)  # let the server write what the socket takes
    assert client.coalesced > 1_000  # it fell behind
    assert peak <= len(room_a) <= bound
    newest: dict[str, float] = {}
    received = 0
    async with asyncio.timeout(20):
        while any(newest.get(k) != 1999.0 for k in room_a):
            line = await reader.readline()
            if line.startswith(b"data: {"):
                d = json.loads(line[6:])
                newest[d["channel_id"]] = d["value"]
                received += 1
    assert received < 2_000 * len(room_a) / 10  # most updates were skipped, not queued
    writer.close()
    await until(lambda: not hub.clients)


async def test_shutdown_ends_open_streams_at_once(served: Served) -> None:
    publish_all(served.hub, served.plant, 1.0)
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("GET", served.url(ROOM_A)) as r,
        websockets.connect(served.url(ROOM_A, ws=True)) as ws,
    ):
        events = sse(r)
        await take(events, 1)
        await ws.recv()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        served.server.should_exit = True
        async with asyncio.timeout(4):  # under uvicorn's 5 s graceful timeout: no cancellation
            await served.task
            with contextlib.suppress(httpx.HTTPError):
                async for _ in events:
                    pass
            with contextlib.suppress(websockets.ConnectionClosed):
                while True:
                    await ws.recv()
        assert loop.time() - t0 < 2.0
    assert not served.hub.clients


async def test_overview_and_dashboard_pages(served: Served) -> None:
    async with httpx.AsyncClient(timeout=10, base_url=served.base) as client:
        auth = {"token": served.token}
        o = (await client.get("/v1/sites/suzhou/overview", params=auth)).json()
        assert o["name"] == "Suzhou sterile-device plant"
        rooms = {r["area"]: r for r in o["cleanrooms"]}
        assert rooms["cleanroom-a"]["iso_class"] == 7
        limits = {c["label"]: c["limits"] for c in rooms["cleanroom-a"]["channels"]}
        assert limits["Particles ≥0.5 µm"]["action_high"] == 352_000
        assert limits["Pressure differential"]["action_low"] == 10
        assert set(o["figures"]["utilities"]) == {"electricity", "natural_gas", "water"}
        assert (await client.get("/v1/sites/nowhere/overview", params=auth)).status_code in (
            403,
            404,
        )
        sites = (await client.get("/v1/dashboard/sites", params=auth)).json()
        assert [s["id"] for s in sites] == ["suzhou"]
        page = await client.get("/dashboard/suzhou")
        assert page.status_code == 200 and 'data-site="suzhou"' in page.text
        assert "http" not in page.text.replace(served.base, "")  # nothing external
        assert (await client.get("/dashboard/nowhere")).status_code == 404
        picker = await client.get("/dashboard")
        assert picker.status_code == 200
        for text in (page.text, picker.text):  # the shared token prompt is in place
            assert text.count('<dialog id="token-dialog">') == 1 and "{{" not in text
        js = await client.get("/dashboard/static/dashboard.js")
        assert js.headers["content-type"].startswith("text/javascript")
        assert (await client.get("/dashboard/static/..%2Fapi.py")).status_code == 404

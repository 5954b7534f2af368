"""Serves the API together with the feed of its live hub, and ends the live streams as soon as
the server begins to stop, so that a shutdown never waits on an open stream."""

from __future__ import annotations

import asyncio
import socket

import uvicorn

from compute.plant import Plant
from services.live_feed import FeedSettings, LiveFeed, OpenBus
from services.live_hub import LiveHub
from services.settings import Settings
from services.store import Store

# uvicorn waits this long for open connections at shutdown before cancelling them: a backstop,
# since LiveServer ends the streams first.
GRACEFUL_SHUTDOWN_S = 5


class LiveServer(uvicorn.Server):
    """uvicorn's server, closing the live hub (and so every stream) when its shutdown begins."""

    def __init__(self, config: uvicorn.Config, hub: LiveHub) -> None:
        super().__init__(config)
        self.hub = hub

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.hub.close()
        await super().shutdown(sockets)


def feed_settings(settings: Settings) -> FeedSettings:
    return FeedSettings(bucket_s=settings.bucket_s, metrics_topic=settings.metrics_topic)


async def serve_live(
    server: uvicorn.Server,
    plant: Plant,
    store: Store,
    hub: LiveHub,
    settings: FeedSettings,
    open_bus: OpenBus | None = None,
) -> None:
    """Run the server and the hub's feed until the server stops."""
    feed = LiveFeed(plant, store, hub, settings)
    async with asyncio.TaskGroup() as tg:
        feeding = tg.create_task(feed.run(open_bus))
        try:
            await server.serve()
        finally:
            hub.close()
            feeding.cancel()

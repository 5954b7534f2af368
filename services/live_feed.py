"""Feeds an API process's live hub with what changed: latest values and site figures from the
store, rolling figures from the metrics topic, alerts from an alerts topic. Never writes; a
failing source is retried with backoff without stopping the API."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from compute.errors import PlantPulseError
from compute.model import NS_PER_S
from compute.plant import Plant
from services.bus import Bus, Message
from services.live_hub import AlertEvent, LiveError, LiveHub
from services.live_payloads import channel_payload
from services.live_site import site_figures
from services.store import Latest, Store

log = logging.getLogger(__name__)

OpenBus = Callable[[], AbstractAsyncContextManager[Bus]]


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedSettings:
    bucket_s: int = 60
    poll_s: float = 1.0  # how often the store's latest values are read
    sites_every_s: float = 5.0  # how often the site figures are recomputed
    stale_after_intervals: int = 5
    metrics_max_age_s: float = 120.0  # older snapshots (a replayed topic) are skipped
    metrics_topic: str = "plantpulse.metrics"
    alerts_topic: str | None = None  # JSON AlertEvent messages, when an alerting process runs
    max_backoff_s: float = 30.0


class LiveFeed:
    def __init__(
        self,
        plant: Plant,
        store: Store,
        hub: LiveHub,
        settings: FeedSettings,
        *,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.plant = plant
        self.store = store
        self.hub = hub
        self.settings = settings
        self.clock_ns = clock_ns
        self.latest: dict[str, Latest] = {}
        self.figures: dict[str, dict[str, object]] = {}  # per channel, from the metrics topic
        self.rolling: dict[str, tuple[int, object]] = {}  # per site: (ts_ns, windows)
        self.sent: dict[str, object] = {}  # per key: what was last published, to skip repeats

    def publish_channels(self, keys: list[str] | None = None) -> int:
        """Publish the channels whose payload changed (age aside); return how many."""
        now_ns = self.clock_ns()
        n = 0
        for key in self.plant.channels if keys is None else keys:
            ref = self.plant.channels[key]
            data = channel_payload(
                ref,
                self.latest.get(key),
                self.figures.get(key),
                now_ns,
                self.settings.stale_after_intervals,
            )
            fingerprint = {k: v for k, v in data.items() if k != "age_s"}
            if self.sent.get(f"channel:{key}") != fingerprint:
                self.sent[f"channel:{key}"] = fingerprint
                self.hub.publish_channel(key, data, site=ref.site.id, area=ref.area.id)
                n += 1
        return n

    async def refresh_latest(self) -> None:
        self.latest = {x.channel_id: x for x in await self.store.latest()}
        self.publish_channels()

    async def refresh_sites(self) -> None:
        bucket_ns = self.settings.bucket_s * NS_PER_S
        for site in self.plant.sites:
            data = await site_figures(self.plant, self.store, site.id, self.clock_ns(), bucket_ns)
            self.publish_site(site.id, data)

    def publish_site(self, site: str, data: dict[str, object] | None = None) -> None:
        key = f"site:{site}"
        if data is None:
            last = self.sent.get(key)
            if not isinstance(last, dict):
                return  # the store's figures come first
            data = dict(last)
        rolling = self.rolling.get(site)
        data["rolling"] = None if rolling is None else rolling[1]
        self.sent[key] = data
        self.hub.publish_site(site, data)

    def on_metrics(self, message: Message) -> None:
        """Keep each channel's newest rolling figures (by data_until_ns) and each site's newest
        windows; publish what changed."""
        snapshot = json.loads(message.value)
        ts_ns = int(snapshot["ts_ns"])
        if self.clock_ns() - ts_ns > self.settings.metrics_max_age_s * NS_PER_S:
            return
        changed = []
        for key, figures in snapshot.get("channels", {}).items():
            if key not in self.plant.channels:
                continue
            held = self.figures.get(key)
            if held is None or int(figures["data_until_ns"]) >= _int(held["data_until_ns"]):
                self.figures[key] = figures
                changed.append(key)
        self.publish_channels(changed)
        for site, windows in snapshot.get("sites", {}).items():
            if self.plant.site(site) is not None and ts_ns >= self.rolling.get(site, (0, None))[0]:
                self.rolling[site] = (ts_ns, windows)
                self.publish_site(site)

    def on_alert(self, message: Message) -> None:
        self.hub.publish_alert(AlertEvent.from_json(json.loads(message.value)))

    async def run(self, open_bus: OpenBus | None = None) -> None:
        """Every source until cancelled; the topics only with a bus (opened, and re-opened after
        a failure, by open_bus)."""
        s = self.settings
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._every("latest values", s.poll_s, self.refresh_latest))
            tg.create_task(self._every("site figures", s.sites_every_s, self.refresh_sites))
            if open_bus is not None:
                tg.create_task(self._consume(open_bus, s.metrics_topic, self.on_metrics))
                if s.alerts_topic is not None:
                    tg.create_task(self._consume(open_bus, s.alerts_topic, self.on_alert))

    async def _every(self, what: str, period_s: float, step: Callable[[], Awaitable[None]]) -> None:
        backoff_s = period_s
        while True:
            try:
                await step()
                backoff_s = period_s
            except (PlantPulseError, OSError) as e:
                log.warning("live feed: %s failed, retrying in %.1f s: %s", what, backoff_s, e)
                backoff_s = min(2 * backoff_s, self.settings.max_backoff_s)
            await asyncio.sleep(backoff_s)

    async def _consume(
        self, open_bus: OpenBus, topic: str, handle: Callable[[Message], None]
    ) -> None:
        """Read the topic as a group of our own, so every API process sees every message."""
        group = f"plantpulse-api-live-{uuid.uuid4().hex[:12]}"
        backoff_s = 0.5
        while True:
            try:
                async with open_bus() as bus, bus.subscribe(topic, group) as sub:
                    while True:
                        messages = await sub.poll(500, timeout_s=1.0)
                        for m in messages:
                            try:
                                handle(m)
                            except (ValueError, KeyError, TypeError, LiveError) as e:
                                log.warning("live feed: skipped a message of %s: %s", topic, e)
                        if messages:
                            await sub.commit(messages)  # lets the bus prune what we have read
                        backoff_s = 0.5
            except (PlantPulseError, OSError) as e:
                log.warning("live feed: %s failed, retrying in %.1f s: %s", topic, backoff_s, e)
                await asyncio.sleep(backoff_s)
                backoff_s = min(2 * backoff_s, self.settings.max_backoff_s)


def _int(x: object) -> int:
    return int(x) if isinstance(x, int | float | str) else 0

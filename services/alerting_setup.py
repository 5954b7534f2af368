"""Builds the alerting process from settings for the composition root: rules file seeded into the
store, outbox targets (webhooks and e-mail from services.notify_setup, the alerts topic) and the
live hub's feed. Owns the HTTP client it opens."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from compute.alert_config import AlertConfigError
from compute.plant import Plant
from services import notify_setup
from services.alert_outbox import Outbox, RouteTarget, Target, TopicTarget
from services.alert_rulebook import load_rules_file, seed
from services.alert_view import hub_event, hub_event_of_row
from services.alerting import Alerting, AlertingOptions, LiveSink
from services.bus import Bus
from services.live_hub import LiveHub
from services.metrics import Registry
from services.notify import MeteredLog, channel_sites
from services.progress import Progress
from services.settings import Settings
from services.store import Store

log = logging.getLogger(__name__)


async def seed_rules(store: Store, path: Path, *, at_ns: int | None = None) -> int:
    """Load a rules file into the store (see services.alert_rulebook.seed); raises
    AlertConfigError naming every bad key, OSError when it cannot be read."""
    changed = await seed(store, load_rules_file(path), str(path), at_ns or time.time_ns())
    log.info("rules file %s: %d rules new or changed", path, changed)
    return changed


def hub_sink(hub: LiveHub) -> LiveSink:
    """Alert transitions straight onto a live hub in this process (the embedded demo)."""

    def publish(payloads: Sequence[Mapping[str, Any]]) -> None:
        for p in payloads:
            if (e := hub_event(p)) is not None:
                hub.publish_alert(e)

    return publish


async def fill_hub(hub: LiveHub, store: Store) -> int:
    """The open alerts into a fresh hub, so streams show them before the next transition."""
    rows = await store.alerts(closed=False, limit=10_000)
    for row in reversed(rows):  # oldest first: the hub keeps alerts in update order
        hub.publish_alert(hub_event_of_row(row))
    return len(rows)


def options(settings: Settings) -> AlertingOptions:
    return AlertingOptions(
        group=settings.alerting_group,
        topic=settings.readings_topic,
        max_records=settings.poll_max_records,
        bucket_s=settings.bucket_s,
    )


@contextlib.asynccontextmanager
async def open_alerting(
    plant: Plant,
    bus: Bus,
    store: Store,
    settings: Settings,
    *,
    live: LiveSink | None = None,
    registry: Registry | None = None,
    extra_targets: Sequence[Target] = (),
    clock_ns: Callable[[], int] = time.time_ns,
    progress: Progress | None = None,
) -> AsyncIterator[Alerting]:
    """The alerting process over a bus and a store, delivering to the configured targets
    (settings.alerts: webhooks, SMTP, the alerts topic) and extra_targets."""
    metered = MeteredLog(store, registry)
    sites = channel_sites(plant)
    async with httpx.AsyncClient() as client:
        routes = notify_setup.routes(settings.alerts, client=client, log=metered, sites=sites)
        targets: list[Target] = [RouteTarget(r) for r in routes]
        if settings.alerts.publish:
            targets.append(TopicTarget(bus, settings.alerts.topic, metered))
        targets += extra_targets
        outbox = Outbox(store, targets, clock_ns=clock_ns, max_queued=settings.alerts.queue_size)
        yield Alerting(
            plant,
            bus,
            store,
            outbox,
            options=options(settings),
            clock_ns=clock_ns,
            live=live,
            progress=progress,
        )


async def seed_demo_rules(store: Store, path: Path | None) -> None:
    """The demo's rules file, if it is there and valid; the demo runs on without it."""
    if path is None:
        return
    try:
        await seed_rules(store, path)
    except (AlertConfigError, OSError) as e:
        log.warning("alert rules %s not loaded, alerting runs on the stored rules: %s", path, e)

"""Composition root: builds buses, stores and processes from settings and runs them."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import uvicorn
from psycopg.conninfo import conninfo_to_dict

from compute.errors import PlantPulseError
from compute.model import NS_PER_S
from compute.plant import Plant
from ingest.simulator.model import PlantSimulator
from ingest.simulator.servers import serve
from services.access import ALL_SITES, Role, issue
from services.aggregator import Aggregator
from services.alerting_setup import fill_hub, hub_sink, open_alerting, seed_demo_rules, seed_rules
from services.api import create_app
from services.api_live import GRACEFUL_SHUTDOWN_S, LiveServer, feed_settings, serve_live
from services.buffer import DiskBuffer
from services.bus import Bus
from services.bus.kafka import KafkaBus
from services.bus.memory import MemoryBus
from services.export import Exported, export
from services.gateway import run_gateway
from services.live_hub import LiveHub
from services.metrics import Registry
from services.metrics_http import metrics_server
from services.progress import Progress
from services.publisher import LazyBus, PublishingBus
from services.settings import Settings, StoreKind
from services.store import Store
from services.store.migrate import MigrationStatus, status_of
from services.store.records import channel_configs
from services.store.sqlite import SqliteStore
from services.store.timescale import TimescaleStore

log = logging.getLogger(__name__)


class SettingsError(PlantPulseError):
    """A setting needed by this process is missing or wrong."""


def _warn_deprecated(settings: Settings) -> None:
    if settings.pg_dsn and settings.store.url is None:
        log.warning("PT_PG_DSN is deprecated: set PT_STORE__URL=postgresql://... instead")
    elif settings.pg_dsn:
        log.warning("PT_PG_DSN is ignored: PT_STORE__URL is set")


def _store(settings: Settings, *, migrate: bool) -> SqliteStore | TimescaleStore:
    _warn_deprecated(settings)
    if (dsn := settings.postgres_dsn) is not None:
        return TimescaleStore(dsn, timeout_s=settings.io_timeout_s, migrate=migrate)
    return SqliteStore(settings.sqlite_path, migrate=migrate)


@contextlib.asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[Store]:
    """The store of PT_STORE__URL, its schema migrated to the latest version."""
    async with _store(settings, migrate=True) as store:
        yield store


def describe_store(settings: Settings) -> str:
    """The store's kind and location, without its password, for operators."""
    if (dsn := settings.postgres_dsn) is None:
        return f"sqlite {settings.sqlite_path}"
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:
        return "postgresql (unparsable DSN)"
    shown = " ".join(f"{k}={v}" for k, v in params.items() if "password" not in k and v)
    return f"postgresql {shown}"


async def migration_status(settings: Settings) -> MigrationStatus:
    """Read-only: applies nothing, and creates no SQLite file where there is none yet."""
    if settings.store_kind is StoreKind.SQLITE and not settings.sqlite_path.exists():
        _warn_deprecated(settings)
        return status_of("sqlite", [])
    async with _store(settings, migrate=False) as store:
        return await store.migration_status()


async def upgrade_store(settings: Settings) -> tuple[list[int], MigrationStatus]:
    """Apply the pending migrations; return the versions applied and the state after."""
    async with _store(settings, migrate=False) as store:
        applied = await store.migrate()
        return applied, await store.migration_status()


def require_kafka(settings: Settings) -> str:
    if not settings.kafka_bootstrap:
        raise SettingsError(
            "PT_KAFKA_BOOTSTRAP is required: this process talks to the others through Kafka"
        )
    return settings.kafka_bootstrap


@contextlib.asynccontextmanager
async def open_kafka(settings: Settings) -> AsyncIterator[Bus]:
    s = settings
    async with KafkaBus(require_kafka(settings), timeout_s=settings.io_timeout_s) as bus:
        await bus.ensure_topics(
            [s.readings_topic, s.dlq_topic, s.metrics_topic, s.alerts.topic],
            settings.kafka_partitions,
            settings.kafka_replication,
        )
        yield bus


def aggregator(
    plant: Plant, bus: Bus, store: Store, settings: Settings, progress: Progress | None = None
) -> Aggregator:
    return Aggregator(
        plant,
        bus,
        store,
        group=settings.consumer_group,
        topic=settings.readings_topic,
        bucket_s=settings.bucket_s,
        max_records=settings.poll_max_records,
        allowed_lateness_s=settings.allowed_lateness_s,
        metrics_topic=settings.metrics_topic,
        progress=progress,
    )


def api_server(
    plant: Plant,
    store: Store,
    settings: Settings,
    registry: Registry | None = None,
    hub: LiveHub | None = None,
    bus: PublishingBus | None = None,
) -> uvicorn.Server:
    """With a bus, the API publishes imported and manual readings and meter replacements."""
    hub = hub or LiveHub()
    app = create_app(
        plant,
        store,
        bucket_s=settings.bucket_s,
        registry=registry,
        hub=hub,
        bus=bus,
        readings_topic=settings.readings_topic,
    )
    config = uvicorn.Config(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_level="warning",
        log_config=None,  # uvicorn's loggers go to the root handler: PT_LOG_FORMAT applies
        lifespan="off",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    return LiveServer(config, hub)


def gateway_buffer(settings: Settings) -> DiskBuffer:
    return DiskBuffer(
        settings.gateway_buffer_path,
        max_bytes=settings.buffer_max_bytes,
        max_batches=settings.buffer_max_batches,
        overflow=settings.buffer_overflow,
    )


async def run_gateway_process(plant: Plant, settings: Settings) -> None:
    """Kafka is opened lazily: the gateway starts and buffers even while Kafka is down."""
    require_kafka(settings)
    registry = Registry()
    with gateway_buffer(settings) as buffer:
        async with LazyBus(lambda: open_kafka(settings)) as bus, asyncio.TaskGroup() as tg:
            if settings.gateway_metrics_port:
                server = metrics_server(
                    registry, settings.gateway_metrics_host, settings.gateway_metrics_port
                )
                tg.create_task(server.serve())
            await run_gateway(
                plant,
                bus,
                settings.readings_topic,
                buffer=buffer,
                registry=registry,
                publish_timeout_s=settings.publish_timeout_s,
                summary_interval_s=settings.metrics_log_interval_s,
                pki_dir=settings.data_dir / "opcua-pki",
                secrets=os.environ,
            )


async def record_plant(store: Store, plant: Plant) -> None:
    """Append each channel whose configuration changed since the last start to its history."""
    changed = await store.record_config(channel_configs(plant), time.time_ns())
    if changed:
        log.info("configuration recorded for %d channels (new or changed)", changed)


async def demo_admin_token(store: Store) -> str:
    """A new admin token for all sites, stored hashed; the demo prints it once at start."""
    token, raw = issue(
        name="demo admin", role=Role.ADMIN, sites=(ALL_SITES,), created_at_ns=time.time_ns()
    )
    await store.add_token(token, actor="plantpulse demo", reason="the demo's token, made at start")
    return raw


@contextlib.asynccontextmanager
async def serving_probes(
    registry: Registry, progress: Progress, host: str, port: int
) -> AsyncIterator[None]:
    """GET /metrics, /healthz and /readyz (progress) on host:port while the block runs, from
    before it connects to Kafka and the store; port 0 serves nothing."""
    if not port:
        yield
        return
    progress.register(registry)
    server = metrics_server(registry, host, port, progress.not_ready)
    task = asyncio.create_task(server.serve())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def run_aggregator_process(plant: Plant, settings: Settings) -> None:
    progress = Progress("aggregator")
    host, port = settings.aggregator_metrics_host, settings.aggregator_metrics_port
    async with (
        serving_probes(Registry(), progress, host, port),
        open_kafka(settings) as bus,
        open_store(settings) as store,
    ):
        await record_plant(store, plant)
        await aggregator(plant, bus, store, settings, progress).run()


async def run_api_process(plant: Plant, settings: Settings) -> None:
    """With PT_KAFKA_BOOTSTRAP, the live streams carry the aggregators' rolling figures too."""
    async with open_store(settings) as store, LazyBus(lambda: open_kafka(settings)) as producer:
        hub = LiveHub()
        kafka = (lambda: open_kafka(settings)) if settings.kafka_bootstrap else None
        bus = producer if settings.kafka_bootstrap else None  # imports need Kafka (else 503)
        server = api_server(plant, store, settings, Registry(), hub=hub, bus=bus)
        await fill_hub(hub, store)  # then the alerts topic brings the alerting process's news
        feed = dataclasses.replace(feed_settings(settings), alerts_topic=settings.alerts.topic)
        await serve_live(server, plant, store, hub, feed, kafka)


async def run_alerting_process(plant: Plant, settings: Settings, rules: Path | None) -> None:
    """The rules file (--rules, else PT_ALERT_RULES) goes into the store first; then the rules
    in the store are evaluated, and changes made through the API are picked up."""
    registry, progress = Registry(), Progress("alerting")  # delivery counters, /readyz
    host, port = settings.alerting_metrics_host, settings.alerting_metrics_port
    async with (
        serving_probes(registry, progress, host, port),
        open_kafka(settings) as bus,
        open_store(settings) as store,
    ):
        if (path := rules or settings.alert_rules) is not None:
            await seed_rules(store, path)
        alerting = open_alerting(plant, bus, store, settings, registry=registry, progress=progress)
        async with alerting as process:
            await process.run()


def _simulator_epoch(data_dir: Path, seed: int) -> int:
    """The simulated plant's start time, kept in the data dir so counters continue across runs."""
    path = data_dir / "simulator.json"
    try:
        saved = json.loads(path.read_text())
        if saved.get("seed") == seed:
            return int(saved["start_ns"])
    except (OSError, ValueError, KeyError):
        pass
    start_ns = time.time_ns()
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"seed": seed, "start_ns": start_ns}))
    return start_ns


async def run_demo(
    plant: Plant, settings: Settings, *, seed: int, rules: Path | None = None
) -> None:
    """Simulators, gateway, MemoryBus, aggregator, alerting, SqliteStore and API in one
    process; alerts reach the live hub directly."""
    sim = PlantSimulator(plant, seed=seed, start_ns=_simulator_epoch(settings.data_dir, seed))
    async with serve(sim), MemoryBus() as bus, SqliteStore(settings.sqlite_path) as store:
        await record_plant(store, plant)
        token = await demo_admin_token(store)
        registry = Registry()
        hub = LiveHub()
        server = api_server(plant, store, settings, registry, hub, bus)
        await seed_demo_rules(store, rules)
        await fill_hub(hub, store)
        alerting = open_alerting(plant, bus, store, settings, live=hub_sink(hub), registry=registry)
        async with alerting as alerts, asyncio.TaskGroup() as tg:
            tasks = [
                tg.create_task(
                    run_gateway(
                        plant,
                        bus,
                        settings.readings_topic,
                        registry=registry,
                        pki_dir=settings.data_dir / "opcua-pki",
                        secrets=os.environ,
                    )
                ),
                tg.create_task(aggregator(plant, bus, store, settings).run()),
                tg.create_task(alerts.run()),
            ]
            base = f"http://{settings.api_host}:{settings.api_port}"
            log.info(
                "plantpulse demo: %d meters, %d channels; data in %s\n"
                "  live values    %s/v1/live\n"
                "  totals         %s/v1/sites/%s/totals?start=...&end=...\n"
                "  metrics        %s/metrics\n"
                "  OpenAPI docs   %s/docs\n  Ctrl-C stops it; the data stays for the next run.\n"
                '  /v1 needs the admin token below: curl -H "Authorization: Bearer $TOKEN" ...',
                len(plant.meters),
                len(plant.channels),
                settings.data_dir.resolve(),
                base,
                base,
                plant.sites[0].id,
                base,
                base,
            )
            log.info("admin token: %s", token)
            log.info("dashboard: %s/dashboard/%s?token=%s", base, plant.sites[0].id, token)
            await serve_live(
                server,
                plant,
                store,
                hub,
                feed_settings(settings),
                lambda: contextlib.nullcontext(bus),
            )
            for t in tasks:
                t.cancel()


async def run_export(
    settings: Settings, channel_ids: list[str], start_ns: int, end_ns: int, out_dir: Path
) -> Exported:
    async with open_store(settings) as store:
        return await export(
            store, channel_ids, start_ns, end_ns, settings.bucket_s * NS_PER_S, out_dir
        )

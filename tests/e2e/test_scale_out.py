"""Horizontal scale over real Kafka and PostgreSQL: aggregator processes share the partitions of
the readings topic as one consumer group; one is SIGKILLed, the survivor takes every partition
over, a new one joins and takes some back, and every reading is stored exactly once.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from ingest.simulator.model import PlantSimulator
from ingest.simulator.servers import serve
from tests.e2e.support import (
    SPAN_SQL,
    Procs,
    assert_totals_match_ground_truth,
    iso,
    plant_on_free_ports,
    stored,
    topic_readings,
    until,
    window,
)
from tests.harness.kafka_groups import group_assignment

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

PARTITIONS = 4
DUPLICATES_SQL = (
    "SELECT channel_id, ts_ns, count(*) FROM readings GROUP BY 1, 2 HAVING count(*) > 1"
)


async def test_aggregators_scale_in_and_out_with_every_reading_stored_once(
    tmp_path: Path, procs: Procs, kafka_bootstrap: str, pg_dsn: str
) -> None:
    plant, plant_file = plant_on_free_ports(tmp_path)
    procs.env["PT_CONFIG"] = str(plant_file)
    procs.env["PT_KAFKA_PARTITIONS"] = str(PARTITIONS)
    topic, group = procs.env["PT_READINGS_TOPIC"], procs.env["PT_CONSUMER_GROUP"]
    base = f"http://127.0.0.1:{procs.env['PT_API_PORT']}"
    sim = PlantSimulator(plant, seed=29, start_ns=time.time_ns())
    token = procs.run("token", "create", "--name", "e2e", "--role", "viewer", "--site", "suzhou")
    owners: dict[str, set[int]] = {}

    async def shared_by(n: int) -> bool:
        """The group is stable with n members, each owning partitions, together all of them."""
        nonlocal owners
        state, owners = await group_assignment(kafka_bootstrap, group)
        parts = [p for ps in owners.values() for p in ps]
        return (
            state == "Stable"
            and len(owners) == n
            and all(owners.values())
            and sorted(parts) == list(range(PARTITIONS))
        )

    headers = {"Authorization": f"Bearer {token}"}
    async with serve(sim), httpx.AsyncClient(base_url=base, timeout=10, headers=headers) as api:
        procs.start("api")
        survivor = procs.start("aggregator")
        victim = procs.start("aggregator")
        gateway = procs.start("gateway")

        async def healthy() -> bool:
            try:
                return (await api.get("/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        await until(healthy, 60, "the API")
        await until(lambda: shared_by(2), 60, "two aggregators to share the partitions")

        async def ready(p: subprocess.Popen[bytes]) -> bool:
            url = f"http://127.0.0.1:{procs.probe_port[p.pid]}/readyz"
            try:
                async with httpx.AsyncClient(timeout=2) as c:
                    return (await c.get(url)).status_code == 200
            except httpx.TransportError:
                return False

        await until(lambda: ready(survivor), 30, "the first aggregator's /readyz")
        await until(lambda: ready(victim), 30, "the second aggregator's /readyz")
        await asyncio.sleep(6)  # both store readings
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        # the broker drops the dead member after its session timeout (10 s) and rebalances
        await until(lambda: shared_by(1), 60, "the survivor to own every partition")
        (survivor_id,) = owners
        await asyncio.sleep(4)  # the survivor alone stores everything
        newcomer = procs.start("aggregator")
        await until(lambda: shared_by(2), 60, "the new aggregator to take partitions over")
        assert survivor_id in owners  # the survivor gave partitions up and kept the rest
        await asyncio.sleep(8)  # both store readings again
        gateway.send_signal(signal.SIGTERM)
        assert gateway.wait(timeout=15) == 0

        published = await topic_readings(kafka_bootstrap, topic)

        async def caught_up() -> bool:
            return stored(pg_dsn) == published

        await until(caught_up, 90, "the aggregators to store every published reading")
        with psycopg.connect(pg_dsn) as conn:
            (rows,) = conn.execute("SELECT count(*) FROM readings").fetchone() or (0,)
            duplicates = conn.execute(DUPLICATES_SQL).fetchall()
            a, b = window(plant, conn.execute(SPAN_SQL).fetchall())
        totals = (
            await api.get("/v1/sites/suzhou/totals", params={"start": iso(a), "end": iso(b)})
        ).json()

    assert survivor.poll() is None and newcomer.poll() is None  # both ran to the end
    assert duplicates == [] and rows == len(published)  # every reading stored exactly once
    assert_totals_match_ground_truth(plant, sim, totals, a, b)

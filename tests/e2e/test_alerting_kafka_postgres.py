"""`plantpulse alerting` and `plantpulse api` as separate processes over a real Kafka broker and a
real PostgreSQL: a flapping breach pages a local webhook once and reaches the API's SSE through
the alerts topic; the alerting process is SIGKILLed mid-alert and restarted without a repeated
or a lost page; an acknowledgement without a comment is refused, one with a comment applied."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from compute.model import NS_PER_S
from tests.e2e.test_kafka_postgres import Procs
from tests.harness import free_port
from tests.unit.services.alert_support import SECRET, batch, receiver

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

PLANT = Path(__file__).resolve().parents[2] / "deploy" / "examples" / "medtech-plant.yaml"
TEMP = "cleanroom-a-env.temperature"
RULES = """
rules:
  - id: room-a-warm
    type: high_limit
    scope: {channel: cleanroom-a-env.temperature}
    alert: 25
    clear: 24
    severity: high
"""


@pytest.fixture
def procs(tmp_path: Path, kafka_bootstrap: str, pg_dsn: str) -> Iterator[Procs]:
    env = {
        **os.environ,
        "PT_CONFIG": str(PLANT),
        "PT_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "PT_PG_DSN": pg_dsn,
        "PT_READINGS_TOPIC": f"e2e-{uuid.uuid4().hex[:8]}",
        "PT_ALERTS__TOPIC": f"e2e-alerts-{uuid.uuid4().hex[:8]}",
        "PT_ALERTING_GROUP": f"e2e-{uuid.uuid4().hex[:8]}",
        "PT_API_PORT": str(free_port()),
        "PT_DATA_DIR": str(tmp_path / "data"),
    }
    p = Procs(env, tmp_path)
    try:
        yield p
    finally:
        p.stop_all()
        for f in sorted(tmp_path.glob("*.log")):
            sys.stderr.write(f"--- {f.name}\n{f.read_text(errors='replace')[-3000:]}\n")


async def _sse(client: httpx.AsyncClient, seen: list[dict[str, Any]]) -> None:
    async with client.stream("GET", "/v1/stream", params={"types": "alert"}) as r:
        event = ""
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "alert":
                seen.append(json.loads(line[6:]))


async def _until(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def test_alerting_over_kafka_and_postgres_survives_a_kill(
    tmp_path: Path, procs: Procs, kafka_bootstrap: str
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    topic = procs.env["PT_READINGS_TOPIC"]
    base = f"http://127.0.0.1:{procs.env['PT_API_PORT']}"
    async with receiver() as hook:
        procs.env["PT_ALERTS__WEBHOOKS"] = json.dumps([{"url": hook.url, "secret": SECRET}])
        token = procs.run("token", "create", "--name", "ehs", "--role", "engineer", "--site", "*")
        headers = {"Authorization": f"Bearer {token}"}
        alerting = procs.start("alerting", "--rules", str(rules))
        procs.start("api")
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        sse: list[dict[str, Any]] = []
        async with httpx.AsyncClient(base_url=base, timeout=30, headers=headers) as api:

            async def healthy() -> bool:
                try:
                    return (await api.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await _until(healthy, 90, "the API")
            stream = asyncio.create_task(_sse(api, sse))

            async def send(values: list[float], t0_ns: int) -> int:
                for i, v in enumerate(values):
                    row = [(TEMP, t0_ns + i * NS_PER_S, v)]
                    await producer.send_and_wait(
                        topic, batch("cleanroom-a-env", row), key=b"cleanroom-a-env"
                    )
                return t0_ns + len(values) * NS_PER_S

            # the alerting process may join its group after the first sends: it reads from
            # the beginning of the topic, so nothing is missed
            t = (time.time_ns() // NS_PER_S - 300) * NS_PER_S
            t = await send([20.0, 26.0, 24.5, 25.5, 23.0, 26.2, 24.4], t)

            async def paged() -> bool:
                return len(hook.posts) >= 1 and any(a.get("state") == "active" for a in sse)

            await _until(paged, 120, "the page and the SSE event")
            (alert,) = (await api.get("/v1/alerts")).json()
            alerting.send_signal(signal.SIGKILL)  # mid-alert, no clean shutdown
            alerting.wait(timeout=10)
            t = await send([26.5, 25.1, 23.9, 26.0], t)
            procs.start("alerting", "--rules", str(rules))
            no_comment = await api.post(f"/v1/alerts/{alert['id']}/ack", json={"comment": " "})
            ack = await api.post(
                f"/v1/alerts/{alert['id']}/ack", json={"comment": "HVAC reset by shift lead"}
            )
            if ack.status_code == 202:  # the restarted process had not started reading yet

                async def applied() -> bool:
                    got = (await api.get(f"/v1/alerts/{alert['id']}")).json()
                    return bool(got["phase"] == "acknowledged")

                await _until(applied, 60, "the acknowledgement to be applied")

            async def acked_on_sse() -> bool:
                return any(a.get("state") == "acknowledged" for a in sse)

            await _until(acked_on_sse, 60, "the acknowledgement on SSE")
            detail = (await api.get(f"/v1/alerts/{alert['id']}")).json()
            await asyncio.sleep(3)  # time for a repeated page to show, if there were one
            stream.cancel()
        await producer.stop()
    assert no_comment.status_code == 422 and "needs a comment" in no_comment.json()["detail"]
    assert ack.status_code in (200, 202), ack.text
    assert len(hook.posts) == 1 and hook.posts[0]["alert_id"] == alert["id"]
    assert hook.posts[0]["kind"] == "raised" and hook.posts[0]["site"] == "suzhou"
    assert detail["phase"] == "acknowledged" and detail["ack_comment"] == "HVAC reset by shift lead"
    events = [h["event"] for h in detail["history"]]
    assert events[0] == "raised" and events[-1] == "acknowledged" and events.count("raised") == 1

"""The live dashboard in headless Chromium: on the running demo the page loads, the site power
appears and changes over SSE, cleanrooms show their status, and a screenshot is saved under
test-output/; fed by a hub, it renders alerts and shows a lost connection, then recovers.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import uvicorn

from compute.plant import Plant
from services.access import Role
from services.api import create_app
from services.api_live import LiveServer
from services.live_hub import AlertEvent, AlertState, LiveHub
from services.store.sqlite import SqliteStore
from tests.e2e.support import plant_on_free_ports
from tests.harness import free_port
from tests.harness.chromium import ChromiumMissing, Page, chromium
from tests.tokens import token_for

OUT = Path(__file__).resolve().parents[2] / "test-output"
TOKEN = re.compile(r"admin token: (ptk_\S+)")


@pytest.fixture
async def browser() -> AsyncIterator[Page]:
    try:
        async with chromium(1920, 1080) as page:
            yield page
    except ChromiumMissing as e:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the dashboard test needs Chromium in CI: {e}")
        pytest.skip(str(e))


def _text(selector: str) -> str:
    return f"((document.querySelector({selector!r}) || {{}}).textContent || '')"


async def _wait_http(url: str, timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=5) as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
    raise AssertionError(f"timed out waiting for {url}:\n{_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text()[-3000:]


def _start_demo(plant_file: Path, port: int, data_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PT_BUCKET_S": "10"}  # site power over 10 s buckets: it moves quickly
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli", "demo", "--config", str(plant_file), "--port",
         str(port), "--data-dir", str(data_dir)],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env=env,
    )  # fmt: skip


async def test_dashboard_shows_the_demo_plant_live(browser: Page, tmp_path: Path) -> None:
    _, plant_file = plant_on_free_ports(tmp_path)
    port, log = free_port(), tmp_path / "demo.log"
    base = f"http://127.0.0.1:{port}"
    demo = _start_demo(plant_file, port, tmp_path / "data", log)
    try:
        await _wait_http(f"{base}/healthz", 120, log)
        token = TOKEN.search(await asyncio.to_thread(log.read_text))
        assert token, _tail(log)
        await browser.goto(f"{base}/dashboard/suzhou?token={token[1]}")
        first = await browser.wait_for(
            "(t => /^[0-9,.]+$/.test(t) && t)(document.getElementById('power-value').textContent)",
            90,
            "the site power",
        )
        changed = await browser.wait_for(
            f"(t => t !== {first!r} && /^[0-9,.]+$/.test(t) && t)"
            "(document.getElementById('power-value').textContent)",
            60,
            "the site power to change",
        )
        assert float(changed.replace(",", "")) > 0
        badge = await browser.wait_for(
            "(b => b && b.textContent !== 'NO DATA' && b.className)"
            "(document.querySelector('#room-cleanroom-a .badge'))",
            30,
            "cleanroom-a's status",
        )
        assert re.search(r"status-(green|amber|red)", badge)
        dp = await browser.eval(_text("tr[data-channel='cleanroom-a-env.pressure-diff'] td.v"))
        assert dp.endswith(" Pa") and dp != "– Pa"
        assert "LIVE" in await browser.eval(_text("#conn"))
        assert "kWh" in await browser.eval(_text("#tile-energy"))
        assert re.match(r"\d+ of 19 channels good", await browser.eval(_text("#data-quality")))
        assert "token" not in await browser.eval("location.search")  # kept in sessionStorage
        assert await browser.eval("sessionStorage.getItem('plantpulse.token')") == token[1]
        await asyncio.sleep(1.5)  # one more tick of the ages and the clock
        await browser.screenshot(OUT / "dashboard-suzhou.png")
        assert browser.errors == []
    finally:
        demo.send_signal(signal.SIGINT)
        assert await asyncio.to_thread(demo.wait, 30) == 0, _tail(log)


async def _serve(
    plant: Plant, store: SqliteStore, hub: LiveHub, port: int
) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    app = create_app(plant, store, hub=hub)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = LiveServer(config, hub)
    task = asyncio.create_task(server.serve())
    for _ in range(250):
        if server.started:
            break
        await asyncio.sleep(0.02)
    return server, task


async def test_dashboard_renders_alerts_and_a_lost_connection(
    browser: Page, plant: Plant, tmp_path: Path
) -> None:
    async with SqliteStore(tmp_path / "s.sqlite3") as store:
        token = await token_for(store, Role.VIEWER)
        port = free_port()
        hub = LiveHub()
        server, task = await _serve(plant, store, hub, port)
        try:
            await browser.goto(f"http://127.0.0.1:{port}/dashboard/suzhou?token={token}")
            await browser.wait_for(f"{_text('#conn')}.includes('LIVE')", 30, "the stream")
            assert await browser.eval(_text("#alert-list")) == "No active alerts"
            dp = AlertEvent(
                id="dp-a",
                site="suzhou",
                area="cleanroom-a",
                channel_id="cleanroom-a-env.pressure-diff",
                state=AlertState.ACTIVE,
                severity="action",
                message="cleanroom-a: pressure differential 8.2 Pa, below 10 Pa",
                ts_ns=time.time_ns(),
            )
            particles = AlertEvent(
                id="pc-b",
                site="suzhou",
                area="cleanroom-b",
                state=AlertState.ACTIVE,
                severity="alert",
                message="cleanroom-b: particles ≥0.5 µm above the alert limit",
                ts_ns=time.time_ns(),
            )
            hub.publish_alert(dp)
            hub.publish_alert(particles)
            await browser.wait_for(f"{_text('#alert-count')} === '2'", 10, "two alerts")
            shown = await browser.eval(_text("#alert-list li[data-alert='dp-a']"))
            assert "below 10 Pa" in shown and "ACTION" in shown
            hub.publish_alert(
                replace(particles, state=AlertState.ACKNOWLEDGED, acknowledged_by="operator 7")
            )
            await browser.wait_for(
                f"{_text('#alert-list li.acknowledged')}.includes('acknowledged by operator 7')",
                10,
                "the acknowledgement",
            )
            await browser.screenshot(OUT / "dashboard-suzhou-alerts.png")
            hub.publish_alert(replace(particles, state=AlertState.CLEARED))
            await browser.wait_for(f"{_text('#alert-count')} === '1'", 10, "the cleared alert")

            server.should_exit = True
            await asyncio.wait_for(task, 10)
            await browser.wait_for(
                "/conn-(reconnecting|lost)/.test(document.getElementById('conn').className)",
                10,
                "the reconnecting state",
            )
            await browser.wait_for(
                "document.getElementById('conn').className.includes('conn-lost')",
                30,
                "the connection-lost state",
            )
            assert "Connection lost" in await browser.eval(_text("#conn")) or "unreachable" in (
                await browser.eval(_text("#conn"))
            )
            await browser.screenshot(OUT / "dashboard-suzhou-lost.png")

            hub = LiveHub()
            server, task = await _serve(plant, store, hub, port)
            await browser.wait_for(f"{_text('#conn')}.includes('LIVE')", 60, "the reconnection")
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 10)
    assert [e for e in browser.errors if "ERR_CONNECTION_REFUSED" not in e] == []

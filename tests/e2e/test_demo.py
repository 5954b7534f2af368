"""`plantpulse demo` as a user runs it: serves within minutes, totals grow, Ctrl-C stops it
cleanly, and a second run keeps the data of the first.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import httpx

from tests.e2e.support import plant_on_free_ports
from tests.harness import free_port


def _admin_token(log: Path) -> str:
    """The admin token the demo printed last at start."""
    tokens = re.findall(r"admin token: (ptk_\S+)", log.read_text())
    assert tokens, "the demo printed no admin token"
    return str(tokens[-1])


def _electricity_today(base: str, token: str) -> float:
    today = date.today()
    params = {
        "start": f"{today - timedelta(days=1)}T00:00",
        "end": f"{today + timedelta(days=2)}T00:00",
    }
    headers = {"Authorization": f"Bearer {token}"}
    r = httpx.get(f"{base}/v1/sites/suzhou/totals", params=params, headers=headers, timeout=10)
    r.raise_for_status()
    (elec,) = [u for u in r.json()["utilities"] if u["utility"] == "electricity"]
    total: float = elec["total"]
    return total


def _wait(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _start(plant_file: Path, data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "services.cli",
            "demo",
            "--config",
            str(plant_file),
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def test_demo_serves_keeps_its_data_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    plant, plant_file = plant_on_free_ports(tmp_path)
    port, data_dir, log = free_port(), tmp_path / "data", tmp_path / "demo.log"
    base = f"http://127.0.0.1:{port}"

    def all_live() -> bool:
        live = httpx.get(f"{base}/v1/live", headers=headers, timeout=5).json()
        return len(live) == len(plant.channels) and all(c["quality"] == "good" for c in live)

    demo = _start(plant_file, data_dir, port, log)
    try:
        _wait(lambda: httpx.get(f"{base}/healthz", timeout=5).status_code == 200, 120, "/healthz")
        token = _admin_token(log)
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{base}/v1/live", timeout=5).status_code == 401  # no token, no data
        _wait(all_live, 60, "every channel live")
        first = _electricity_today(base, token)
        _wait(lambda: _electricity_today(base, token) > first, 30, "totals to grow")
        before_stop = _electricity_today(base, token)
        metrics = httpx.get(f"{base}/metrics", timeout=5).text.splitlines()
        assert any(m.startswith("plantpulse_gateway_batches_read_total ") for m in metrics)
        assert "plantpulse_gateway_batches_read_total 0" not in metrics
        demo.send_signal(signal.SIGINT)
        assert demo.wait(timeout=20) == 0
        banner = log.read_text()
        assert f"{base}/v1/live" in banner and "/docs" in banner
        assert "Traceback" not in banner and banner.rstrip().endswith("plantpulse: stopped")

        demo = _start(plant_file, data_dir, port, log)
        _wait(
            lambda: httpx.get(f"{base}/healthz", timeout=5).status_code == 200,
            120,
            "/healthz again",
        )
        second = _admin_token(log)
        assert second != token  # a new admin token at each start; the first one still works
        assert _electricity_today(base, second) >= before_stop > 0
        assert _electricity_today(base, token) >= before_stop
    finally:
        if demo.poll() is None:
            demo.send_signal(signal.SIGINT)
            demo.wait(timeout=20)

"""Headless Chromium (Debian's `chromium`) driven over the DevTools protocol with `websockets`:
open a page, evaluate JavaScript, take a screenshot. No browser download, no driver."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import websockets

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


class ChromiumMissing(RuntimeError):
    """No Chromium binary on PATH."""


def chromium_binary() -> str:
    for name in CANDIDATES:
        if found := shutil.which(name):
            return found
    raise ChromiumMissing(
        "Chromium is not installed: `make test-deps` installs Debian's `chromium` as root, "
        "or run `apt-get install chromium`"
    )


class Page:
    """One tab over a DevTools websocket: commands by id, console errors collected."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.errors: list[str] = []

    async def pump(self) -> None:
        async for raw in self.ws:
            msg = json.loads(raw)
            if "id" in msg and (f := self.waiting.pop(msg["id"], None)) is not None:
                if "error" in msg:
                    f.set_exception(RuntimeError(f"DevTools: {msg['error']}"))
                else:
                    f.set_result(msg.get("result", {}))
            elif msg.get("method") == "Runtime.exceptionThrown":
                self.errors.append(json.dumps(msg["params"]["exceptionDetails"])[:500])
            elif (
                msg.get("method") == "Log.entryAdded" and msg["params"]["entry"]["level"] == "error"
            ):
                self.errors.append(msg["params"]["entry"]["text"][:500])

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        i = next(self.ids)
        f: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[i] = f
        await self.ws.send(json.dumps({"id": i, "method": method, "params": params or {}}))
        async with asyncio.timeout(30):
            return await f

    async def eval(self, expression: str) -> Any:
        got = await self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in got:
            raise RuntimeError(f"{expression}: {got['exceptionDetails']}")
        return got["result"].get("value")

    async def wait_for(self, expression: str, timeout_s: float, what: str) -> Any:
        """Poll a JavaScript expression until it is truthy; its value."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            value = await self.eval(expression)
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
            await asyncio.sleep(0.25)

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", {"url": url})
        await self.wait_for("document.readyState === 'complete'", 30, f"{url} to load")

    async def screenshot(self, path: Path) -> None:
        got = await self.send("Page.captureScreenshot", {"format": "png"})
        await asyncio.to_thread(_write, path, base64.b64decode(got["data"]))


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@contextlib.asynccontextmanager
async def chromium(width: int = 1920, height: int = 1080) -> AsyncIterator[Page]:
    """A headless Chromium with one page of the given size; stopped on exit."""
    binary = chromium_binary()
    with tempfile.TemporaryDirectory(prefix="pt-chromium-") as profile:
        args = [
            binary,
            "--headless=new",
            "--remote-debugging-port=0",
            "--remote-debugging-address=127.0.0.1",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--hide-scrollbars",
            "--force-color-profile=srgb",
        ]
        if os.geteuid() == 0:
            args.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
        proc = await asyncio.create_subprocess_exec(
            *args, "about:blank", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            port = await _devtools_port(Path(profile), proc)
            async with httpx.AsyncClient(timeout=10) as http:
                targets = (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
            (target,) = [t for t in targets if t["type"] == "page"][:1]
            async with websockets.connect(target["webSocketDebuggerUrl"], max_size=None) as ws:
                page = Page(ws)
                pump = asyncio.create_task(page.pump())
                try:
                    for domain in ("Page", "Runtime", "Log"):
                        await page.send(f"{domain}.enable")
                    await page.send(
                        "Emulation.setDeviceMetricsOverride",
                        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
                    )
                    yield page
                finally:
                    pump.cancel()
        finally:
            if proc.returncode is None:
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


def _port_in(marker: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(marker.read_text().splitlines()[0])
    return None


async def _devtools_port(profile: Path, proc: asyncio.subprocess.Process) -> int:
    """Chromium writes the port it chose to DevToolsActivePort in its profile."""
    for _ in range(300):
        if proc.returncode is not None:
            raise RuntimeError(f"chromium exited with {proc.returncode} at start")
        if (port := _port_in(profile / "DevToolsActivePort")) is not None:
            return port
        await asyncio.sleep(0.1)
    raise TimeoutError("chromium did not open its DevTools port within 30 s")

"""Independent peers from npm: node-opcua, modbus-serial TCP and PGlite with TimescaleDB (WASM).

`ensure_peers()` installs them once per lockfile; the context managers run one server each.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

PEERS_DIR = Path(__file__).resolve().parent
MARKER = PEERS_DIR / "node_modules" / ".plantpulse-lock-sha256"
INSTALL_TIMEOUT_S = 600.0
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


class PeersUnavailable(RuntimeError):
    """node or npm is missing, or the peer packages cannot be installed."""


class PeerStartError(RuntimeError):
    """A peer server exited or printed no READY line in time; carries its output."""


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise PeersUnavailable(
            f"{name!r} is not on PATH; the independent peers need node 20+ and npm"
        )
    return path


def _lock_digest() -> str:
    """Hash of what decides the install: the manifest, the lockfile and node's major version."""
    h = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        path = PEERS_DIR / name
        if path.exists():
            h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    version = subprocess.run(
        [_tool("node"), "--version"], capture_output=True, text=True, timeout=30, check=True
    ).stdout.strip()
    h.update(version.split(".")[0].encode())
    return h.hexdigest()


def ensure_peers() -> Path:
    """Install the peers' node_modules with `npm ci` unless the marker says they are current."""
    _tool("node")
    npm = _tool("npm")
    with open(PEERS_DIR / "package.json", "rb") as lock_fd:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)  # one installer at a time, across pytest workers
        digest = _lock_digest()
        if MARKER.exists() and MARKER.read_text().strip() == digest:
            return PEERS_DIR
        has_lock = (PEERS_DIR / "package-lock.json").exists()
        cmd = [npm, "ci" if has_lock else "install", "--omit=optional", "--no-audit", "--no-fund"]
        log.info("installing test peers: %s in %s", " ".join(cmd), PEERS_DIR)
        try:
            done = subprocess.run(
                cmd, cwd=PEERS_DIR, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S
            )
        except subprocess.TimeoutExpired as e:
            raise PeersUnavailable(f"{' '.join(cmd)} took over {INSTALL_TIMEOUT_S:.0f} s") from e
        if done.returncode != 0:
            raise PeersUnavailable(
                f"{' '.join(cmd)} failed with exit {done.returncode}:\n{done.stderr[-4000:]}"
            )
        MARKER.write_text(digest + "\n")
    return PEERS_DIR


def _pump_lines(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line.rstrip("\n"))
    lines.put(None)


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(OSError):
        if proc.stdin is not None:
            proc.stdin.close()  # the peers exit when their stdin closes
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        log.warning("peer pid %d ignored SIGTERM; killing it", proc.pid)
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT_S)


@contextlib.contextmanager
def _node_peer(script: str, *args: str) -> Iterator[str]:
    """Run `node SCRIPT ARGS`, wait for its "READY <address>" line and yield the address."""
    peers = ensure_peers()
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as stderr:
        proc = subprocess.Popen(
            [_tool("node"), str(peers / script), *args],
            cwd=peers,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
        )
        try:
            assert proc.stdout is not None
            lines: queue.Queue[str | None] = queue.Queue()
            threading.Thread(
                target=_pump_lines, args=(proc.stdout, lines), name=f"{script}-stdout", daemon=True
            ).start()
            address = _await_ready(script, proc, lines, stderr)
            yield address
        finally:
            _stop(proc)


def _await_ready(
    script: str, proc: subprocess.Popen[str], lines: queue.Queue[str | None], stderr: IO[str]
) -> str:
    deadline = time.monotonic() + READY_TIMEOUT_S
    seen: list[str] = []
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=min(left, 0.5))
        except queue.Empty:
            continue
        if line is None:
            break  # stdout closed: the process is gone
        if line.startswith("READY "):
            return line.removeprefix("READY ").strip()
        seen.append(line)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=2)
    stderr.seek(0)
    if proc.returncode is not None:
        why = f"exited with code {proc.returncode}"
    else:
        why = f"printed no READY line within {READY_TIMEOUT_S:.0f} s"
    out = "\n".join(seen[-40:])
    raise PeerStartError(
        f"{script} {why}\n--- stdout ---\n{out}\n--- stderr ---\n{stderr.read()[-4000:]}"
    )


@contextlib.contextmanager
def node_opcua_server(port: int, max_nodes_per_read: int = 0) -> Iterator[str]:
    """A node-opcua server on 127.0.0.1:port; yields its opc.tcp:// endpoint URL.

    With max_nodes_per_read it refuses Read calls of more nodes, as small servers do.
    """
    with (
        tempfile.TemporaryDirectory(prefix="plantpulse-opcua-pki-") as pki,
        _node_peer("opcua_server.js", str(port), pki, str(max_nodes_per_read)) as endpoint,
    ):
        yield endpoint


@contextlib.contextmanager
def node_modbus_server(port: int) -> Iterator[str]:
    """A modbus-serial ServerTCP on 127.0.0.1:port answering unit 1; yields "127.0.0.1:port"."""
    with _node_peer("modbus_server.js", str(port)) as endpoint:
        yield endpoint


@contextlib.contextmanager
def pglite_timescale(port: int) -> Iterator[str]:
    """PGlite with TimescaleDB 2.23 (WASM) on 127.0.0.1:port; yields its PostgreSQL DSN.

    One backend session shared by all clients, served one at a time; COPY crashes it.
    """
    with _node_peer("pglite_timescale.js", str(port)) as ready_port:
        yield f"postgresql://postgres:x@127.0.0.1:{ready_port}/postgres?sslmode=disable"

"""Throwaway PostgreSQL cluster for tests: initdb + pg_ctl on a free loopback port.

As root, the server runs as the `postgres` system user (or `nobody`): PostgreSQL refuses root.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.harness import free_port

log = logging.getLogger(__name__)

DB_USER = "plantpulse"
TOOLS = ("initdb", "pg_ctl", "postgres")


class PostgresNotFound(RuntimeError):
    """The PostgreSQL server binaries are not installed."""


def _has_tools(bindir: Path) -> bool:
    return all((bindir / tool).is_file() for tool in TOOLS)


def find_postgres_bindir() -> Path | None:
    """Newest /usr/lib/postgresql/N/bin, else the real directory behind `initdb` on PATH."""
    versioned = Path("/usr/lib/postgresql").glob("*/bin")
    ranked = sorted(
        (d for d in versioned if re.fullmatch(r"\d+", d.parent.name) and _has_tools(d)),
        key=lambda d: int(d.parent.name),
        reverse=True,
    )
    if ranked:
        return ranked[0]
    initdb = shutil.which("initdb")
    if initdb and _has_tools(Path(initdb).resolve().parent):
        return Path(initdb).resolve().parent
    return None


def ensure_postgres_binaries(install: bool) -> Path:
    """Return the PostgreSQL bin dir; with install=True (and root), apt-get install it if absent."""
    bindir = find_postgres_bindir()
    if bindir is None and install and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        log.info("installing PostgreSQL with apt-get")
        subprocess.run(["apt-get", "update"], env=env, check=True, timeout=600)
        subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"],
            env=env,
            check=True,
            timeout=900,
        )
        bindir = find_postgres_bindir()
    if bindir is None:
        raise PostgresNotFound(
            "PostgreSQL server binaries (initdb, pg_ctl) not found; install Debian's "
            "`postgresql` package or run `python -m tests.harness.services prefetch` as root"
        )
    return bindir


def _run_as() -> str | None:
    """The unprivileged user to run the server as, or None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name).pw_name
    raise RuntimeError("running as root and neither `postgres` nor `nobody` exists")


def _cmd(user: str | None, *args: str) -> list[str]:
    return ["runuser", "-u", user, "--", *args] if user else list(args)


def _usable(root: Path, user: str | None) -> bool:
    """Can the server user write there, and is the socket path short enough for a Unix socket?"""
    if len(str(root / "sock" / ".s.PGSQL.65535.lock")) > 100:
        return False
    check = _cmd(user, "test", "-w", str(root), "-a", "-x", str(root))
    return subprocess.run(check, timeout=30, check=False, cwd="/").returncode == 0


def _check(cmd: list[str], cwd: Path) -> None:
    subprocess.run(cmd, cwd=cwd, timeout=120, check=True, capture_output=True, text=True)


class PostgresCluster:
    """A throwaway cluster under workdir (or a short /tmp dir if the server user can't reach
    it) that can be stopped and started again on the same port, as a database restart."""

    def __init__(self, workdir: Path, *, durable_commits: bool = False) -> None:
        """durable_commits: a commit survives the server's crash (synchronous_commit on), as
        in production; off, tests run faster. fsync stays off: the machine does not crash."""
        self.durable_commits = durable_commits
        self.bindir = ensure_postgres_binaries(install=False)
        self.user = _run_as()
        workdir = workdir.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        if self.user:
            shutil.chown(workdir, self.user)
        self.root, self.scratch = workdir, None
        if not _usable(workdir, self.user):
            self.root = self.scratch = Path(tempfile.mkdtemp(prefix="plantpulse-pg-"))
            if self.user:
                shutil.chown(self.root, self.user)
        self.data, self.logfile = self.root / "data", self.root / "postgres.log"
        self.port = free_port()

    @property
    def dsn(self) -> str:
        """trust auth, no password"""
        return f"postgresql://{DB_USER}@127.0.0.1:{self.port}/postgres"

    def create(self) -> None:
        sock = self.root / "sock"
        sock.mkdir()
        if self.user:
            shutil.chown(sock, self.user)
        initdb = [str(self.bindir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", DB_USER]
        _check(_cmd(self.user, *initdb, "-E", "UTF8", "--no-locale", "--no-sync"), self.root)
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{sock}'\nfsync = off\n"
                f"synchronous_commit = {'on' if self.durable_commits else 'off'}\n"
                "full_page_writes = off\n"
            )

    def start(self) -> None:
        start = [str(self.bindir / "pg_ctl"), "start", "-D", str(self.data), "-w", "-t", "60"]
        _check(_cmd(self.user, *start, "-l", str(self.logfile)), self.root)

    def stop(self) -> None:
        """An immediate stop, as a crash: no checkpoint; the next start recovers from the WAL."""
        _stop(self.bindir, self.user, self.data)

    def remove(self) -> None:
        self.stop()
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)


@contextlib.contextmanager
def postgres_cluster(workdir: Path) -> Iterator[str]:
    """Run a fresh cluster; yields "postgresql://plantpulse@127.0.0.1:PORT/postgres"."""
    cluster = PostgresCluster(workdir)
    try:
        cluster.create()
        cluster.start()
    except subprocess.SubprocessError as exc:
        log_file = cluster.logfile
        tail = log_file.read_text(errors="replace")[-3000:] if log_file.exists() else ""
        cluster.remove()
        output = f"{getattr(exc, 'stdout', '')}{getattr(exc, 'stderr', '')}"
        raise RuntimeError(f"PostgreSQL failed to start: {exc}\n{output}{tail}") from exc
    log.info(
        "PostgreSQL (%s) ready on port %d, data in %s", cluster.bindir, cluster.port, cluster.data
    )
    try:
        yield cluster.dsn
    finally:
        cluster.remove()


def _stop(bindir: Path, user: str | None, data: Path) -> None:
    pidfile = data / "postmaster.pid"
    if not pidfile.exists():
        return
    stop = _cmd(user, str(bindir / "pg_ctl"), "stop", "-D", str(data), "-m", "immediate", "-w")
    try:
        subprocess.run(stop, timeout=60, check=True, capture_output=True, cwd="/")
    except (subprocess.SubprocessError, OSError):
        log.warning("pg_ctl stop failed, killing the postmaster")
        with contextlib.suppress(OSError, ValueError, IndexError):
            os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)

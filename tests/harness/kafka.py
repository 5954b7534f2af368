"""Single-node KRaft Kafka broker for tests, run from jars fetched off Maven Central.

The jars come from deploy/kafka/pom.xml and are cached in $PT_CACHE_DIR (~/.cache/plantpulse).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import hashlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.harness import free_port

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
POM = REPO_ROOT / "deploy" / "kafka" / "pom.xml"
MARKER = ".complete"
READY_TIMEOUT_S = 90.0

LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger = INFO, out
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
"""


def kafka_version() -> str:
    """The Kafka version pinned in deploy/kafka/pom.xml."""
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    if not match:
        raise RuntimeError(f"no <kafka.version> in {POM}")
    return match.group(1).strip()


def cache_dir() -> Path:
    return Path(os.environ.get("PT_CACHE_DIR") or Path.home() / ".cache" / "plantpulse")


def ensure_kafka_jars() -> Path:
    """Return the directory with the broker jars, running Maven only when the cache is stale."""
    pom_hash = hashlib.sha256(POM.read_bytes()).hexdigest()
    target = cache_dir() / f"kafka-jars-{kafka_version()}"
    marker = target / MARKER
    if marker.is_file() and marker.read_text().strip() == pom_hash:
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError("Maven (mvn) is needed to fetch the Kafka jars and is not on PATH")
    staging = target.with_name(f".{target.name}.{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    goal = ["dependency:copy-dependencies", f"-DoutputDirectory={staging}"]
    cmd = [mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(POM), *goal]
    log.info("fetching Kafka jars: %s", " ".join(cmd))
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
        shutil.rmtree(staging, ignore_errors=True)
        output = (proc.stdout + proc.stderr)[-4000:]
        raise RuntimeError(f"mvn failed ({proc.returncode}):\n{output}")
    (staging / MARKER).write_text(pom_hash + "\n")
    shutil.rmtree(target, ignore_errors=True)
    try:
        staging.rename(target)
    except OSError:  # another process finished first; its copy is as good as ours
        shutil.rmtree(staging, ignore_errors=True)
    log.info("Kafka jars ready in %s (%.1f s)", target, time.monotonic() - started)
    return target


def _server_properties(workdir: Path, port: int, controller_port: int) -> str:
    return f"""\
process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
controller.quorum.bootstrap.servers=127.0.0.1:{controller_port}
log.dirs={workdir / "kafka-data"}
num.partitions=4
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
"""


_LIBC = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    """Runs in the forked child: Linux kills the broker when the forking thread dies."""
    _LIBC.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


async def _probe(bootstrap: str) -> None:
    """Produce one record to an auto-created topic: the broker is then really serving."""
    from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped, unused-ignore]

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        await producer.start()
        await producer.send_and_wait("harness-probe", b"ping")
    finally:
        await producer.stop()


def _wait_ready(proc: subprocess.Popen[bytes], bootstrap: str, port: int, logfile: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    last_error: BaseException | None = None
    with ThreadPoolExecutor(max_workers=1) as pool:  # asyncio.run even if a loop is running
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"Kafka exited with {proc.returncode}:\n{_tail(logfile)}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                pool.submit(lambda: asyncio.run(_probe(bootstrap))).result(timeout=30)
                return
            except Exception as exc:  # not ready yet: retry until the deadline
                last_error = exc
                time.sleep(0.5)
    raise RuntimeError(
        f"Kafka not ready after {READY_TIMEOUT_S:.0f} s ({last_error!r}):\n{_tail(logfile)}"
    )


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise RuntimeError("Java 17+ is needed for the Kafka broker and `java` is not on PATH")
    return java


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        log.warning("Kafka did not stop on SIGTERM, killing it")
        proc.kill()
        proc.wait(timeout=10)


class KafkaBroker:
    """A single-node KRaft broker with its data and kafka.log in workdir.

    stop() and start() keep its ports and its data, as a broker restarted in place would. Fork it
    (start or spawn) from a thread that outlives it: the broker dies with the forking thread.
    """

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir.resolve()
        self.port, self.controller_port = free_port(), free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.logfile = self.workdir / "kafka.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._jvm: list[str] = []

    def _format(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        classpath = f"{ensure_kafka_jars()}/*"
        props = self.workdir / "server.properties"
        props.write_text(_server_properties(self.workdir, self.port, self.controller_port))
        (self.workdir / "log4j2.properties").write_text(LOG4J2)
        log4j = f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}"
        jvm_opts = ["-Xmx512m", "-XX:+UseG1GC", "-Djava.awt.headless=true", log4j]
        self._jvm = [_java(), *jvm_opts, "-cp", classpath]
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        # "=" keeps an id that starts with "-" (1 in 64) from reading as an option
        fmt_cmd = [*self._jvm, "kafka.tools.StorageTool", "format", "--standalone"]
        fmt = subprocess.run(
            [*fmt_cmd, f"--cluster-id={cluster_id}", "-c", str(props)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if fmt.returncode != 0:
            raise RuntimeError(f"kafka storage format failed:\n{fmt.stdout}{fmt.stderr}")

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def spawn(self) -> None:
        """Launch the broker without waiting for it; formats the storage the first time."""
        if self.running:
            return
        if not self._jvm:
            self._format()
        with self.logfile.open("ab") as out:  # a restart appends to the same log
            self._proc = subprocess.Popen(
                [*self._jvm, "kafka.Kafka", str(self.workdir / "server.properties")],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # only a prctl call runs in the child
            )

    def wait_ready(self) -> None:
        """Block until the broker serves produce requests; RuntimeError when it does not."""
        assert self._proc is not None, "spawn() the broker first"
        started = time.monotonic()
        _wait_ready(self._proc, self.bootstrap, self.port, self.logfile)
        log.info(
            "Kafka %s ready at %s in %.1f s",
            kafka_version(),
            self.bootstrap,
            time.monotonic() - started,
        )

    def start(self) -> None:
        self.spawn()
        self.wait_ready()

    def stop(self) -> None:
        """Stop the broker cleanly (SIGTERM, then SIGKILL after 20 s); its data stays."""
        if self._proc is not None:
            _stop(self._proc)
            self._proc = None

    def __enter__(self) -> KafkaBroker:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def kafka_broker(workdir: Path) -> Iterator[str]:
    """Run a broker with its data and kafka.log in workdir; yield "127.0.0.1:PORT"."""
    with KafkaBroker(workdir) as broker:
        yield broker.bootstrap

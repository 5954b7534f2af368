"""Session fixtures for real peers: a Kafka broker and a PostgreSQL cluster, started when not given.

PT_KAFKA_BOOTSTRAP and PT_PG_DSN point at existing services. Where CI=true a service that
cannot start fails the run instead of skipping.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import psycopg
import pytest

from compute.plant import Plant
from services.config import load_plant
from tests.harness.kafka import kafka_broker
from tests.harness.postgres import postgres_cluster
from tests.peers.harness import PeersUnavailable, ensure_peers

IN_CI = os.environ.get("CI", "").lower() == "true"


def _unavailable(what: str, e: Exception) -> None:
    if IN_CI:
        pytest.fail(f"{what} is required in CI but is unavailable: {e}")
    pytest.skip(f"{what} unavailable: {e}")


def _given_or_started(
    env: str, what: str, start: Callable[[], AbstractContextManager[str]]
) -> Iterator[str]:
    """The service named by the environment variable, or one started for the session."""
    if given := os.environ.get(env):
        yield given
        return
    with contextlib.ExitStack() as stack:
        try:
            address = stack.enter_context(start())
        except (OSError, RuntimeError, TimeoutError) as e:
            _unavailable(what, e)
            raise
        yield address


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _given_or_started(
        "PT_KAFKA_BOOTSTRAP", "Kafka", lambda: kafka_broker(tmp_path_factory.mktemp("kafka"))
    )


@pytest.fixture(scope="session")
def pg_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _given_or_started(
        "PT_PG_DSN", "PostgreSQL", lambda: postgres_cluster(tmp_path_factory.mktemp("pg"))
    )


@pytest.fixture(scope="session")
def peers_installed() -> None:
    """The independent protocol peers from npm, installed once."""
    try:
        ensure_peers()
    except (PeersUnavailable, OSError, subprocess.SubprocessError) as e:
        _unavailable("the independent peers (npm)", e)


@pytest.fixture
def pg_dsn(pg_cluster: str) -> Iterator[str]:
    """A fresh, empty database on the session's cluster for one test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_cluster, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield psycopg.conninfo.make_conninfo(pg_cluster, dbname=name)
    with psycopg.connect(pg_cluster, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def example_plant_file() -> Path:
    return Path(__file__).resolve().parent.parent / "deploy" / "examples" / "medtech-plant.yaml"


@pytest.fixture
def plant(example_plant_file: Path) -> Plant:
    return load_plant(example_plant_file)

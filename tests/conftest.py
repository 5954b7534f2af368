"""Session fixtures for real peers: a Kafka broker and a PostgreSQL cluster, started when not given.

PT_KAFKA_BOOTSTRAP and PT_PG_DSN point at existing services. Where CI=true a service that
cannot start fails the run instead of skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from compute.plant import Plant
from services.config import load_plant
from tests.harness.kafka import kafka_broker
from tests.harness.postgres import postgres_cluster

IN_CI = os.environ.get("CI", "").lower() == "true"


def _unavailable(what: str, e: Exception) -> None:
    if IN_CI:
        pytest.fail(f"{what} is required in CI but could not start: {e}")
    pytest.skip(f"{what} unavailable: {e}")


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("PT_KAFKA_BOOTSTRAP")
    if given:
        yield given
        return
    try:
        broker = kafka_broker(tmp_path_factory.mktemp("kafka"))
        bootstrap = broker.__enter__()
    except (OSError, RuntimeError, TimeoutError) as e:
        _unavailable("Kafka", e)
        raise
    try:
        yield bootstrap
    finally:
        broker.__exit__(None, None, None)


@pytest.fixture(scope="session")
def pg_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("PT_PG_DSN")
    if given:
        yield given
        return
    try:
        cluster = postgres_cluster(tmp_path_factory.mktemp("pg"))
        dsn = cluster.__enter__()
    except (OSError, RuntimeError, TimeoutError) as e:
        _unavailable("PostgreSQL", e)
        raise
    try:
        yield dsn
    finally:
        cluster.__exit__(None, None, None)


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

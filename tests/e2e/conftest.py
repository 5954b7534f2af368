"""Fixtures of the end-to-end tests: the plantpulse processes of one test, on its own topic,
consumer group and database."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.support import BUCKET_S, Procs
from tests.harness import free_port


@pytest.fixture
def procs(tmp_path: Path, kafka_bootstrap: str, pg_dsn: str) -> Iterator[Procs]:
    env = {
        **os.environ,
        "PT_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "PT_PG_DSN": pg_dsn,
        "PT_BUCKET_S": str(BUCKET_S),
        "PT_READINGS_TOPIC": f"e2e-{uuid.uuid4().hex[:8]}",
        "PT_CONSUMER_GROUP": f"e2e-{uuid.uuid4().hex[:8]}",
        "PT_API_PORT": str(free_port()),
        "PT_GATEWAY_METRICS_PORT": str(free_port()),
        "PT_DATA_DIR": str(tmp_path / "data"),  # the gateway's buffer, the client certificates
    }
    p = Procs(env, tmp_path)
    try:
        yield p
    finally:
        p.stop_all()
        for f in sorted(tmp_path.glob("*.log")):
            sys.stderr.write(f"--- {f.name}\n{f.read_text(errors='replace')[-3000:]}\n")

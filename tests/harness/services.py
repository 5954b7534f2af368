"""CLI for the test services: `python -m tests.harness.services prefetch` fetches what tests need.

It downloads the Kafka broker jars and, as root, installs PostgreSQL when it is missing.
"""

from __future__ import annotations

import argparse
import logging
import sys

from tests.harness.kafka import ensure_kafka_jars
from tests.harness.postgres import ensure_postgres_binaries


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.harness.services")
    parser.add_argument("command", choices=["prefetch"])
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    print(f"kafka jars: {ensure_kafka_jars()}")
    print(f"postgres binaries: {ensure_postgres_binaries(install=True)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

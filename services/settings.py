"""Runtime settings from the environment (prefix PT_, nested with __) and the command line."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.buffer import OverflowPolicy


class Settings(BaseSettings):
    """Where the plant model is and which bus and store to use.

    With kafka_bootstrap unset the bus is in-process; with pg_dsn unset the store is SQLite in
    data_dir.
    """

    model_config = SettingsConfigDict(env_prefix="PT_", env_nested_delimiter="__", extra="ignore")

    config: Path = Path("deploy/examples/medtech-plant.yaml")
    data_dir: Path = Path(".plantpulse")
    kafka_bootstrap: str | None = None
    pg_dsn: str | None = None
    readings_topic: str = "plantpulse.readings"
    metrics_topic: str = "plantpulse.metrics"  # the aggregators' rolling figures
    kafka_partitions: int = Field(default=6, ge=1)  # bounds how many aggregators share the work
    kafka_replication: int = Field(default=1, ge=1)  # use 3 on a production cluster
    consumer_group: str = "plantpulse-aggregator"
    bucket_s: int = Field(default=60, ge=1, le=3600)
    # A late reading for a bucket that ended more than this ago is recorded as a restatement.
    allowed_lateness_s: float = Field(default=120.0, ge=0)
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    poll_max_records: int = Field(default=2000, ge=1)
    io_timeout_s: float = Field(default=10.0, gt=0)
    # The gateway's store-and-forward buffer, used while Kafka is unreachable.
    buffer_path: Path | None = None  # default: data_dir / "gateway-buffer.sqlite3"
    buffer_max_bytes: int = Field(default=1 << 30, ge=1)
    buffer_max_batches: int | None = Field(default=None, ge=1)
    buffer_overflow: OverflowPolicy = OverflowPolicy.DROP_OLDEST
    publish_timeout_s: float = Field(default=10.0, gt=0)  # past it, Kafka counts as unreachable
    metrics_log_interval_s: float = Field(default=60.0, gt=0)
    # The gateway serves GET /metrics (Prometheus text) here; port 0 turns it off.
    gateway_metrics_host: str = "127.0.0.1"
    gateway_metrics_port: int = Field(default=9108, ge=0, le=65535)

    @field_validator("bucket_s")
    @classmethod
    def _divides_demand_interval(cls, v: int) -> int:
        if 900 % v:
            raise ValueError(
                "must divide 900, the 15-minute demand interval (e.g. 10, 30, 60, 300)"
            )
        return v

    @property
    def dlq_topic(self) -> str:
        return f"{self.readings_topic}.dlq"

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "plantpulse.sqlite3"

    @property
    def gateway_buffer_path(self) -> Path:
        return self.buffer_path or self.data_dir / "gateway-buffer.sqlite3"

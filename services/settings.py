"""Runtime settings from the environment (prefix PT_, nested with __) and the command line."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict
from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.alert_settings import AlertSettings
from services.buffer import OverflowPolicy


class StoreKind(StrEnum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


_STORE_URL_HELP = (
    "use sqlite:///relative/path.sqlite3, sqlite:////absolute/path.sqlite3 "
    "or postgresql://user@host:5432/dbname"
)


def parse_store_url(url: str) -> tuple[StoreKind, str]:
    """The store a PT_STORE__URL names: (SQLITE, file path) or (POSTGRESQL, the URL itself).

    As in SQLAlchemy, `sqlite:///a/b` is the relative path a/b and `sqlite:////a/b` is /a/b.
    Raises ValueError saying what to write instead.
    """
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if sep and scheme in ("postgresql", "postgres"):
        try:
            conninfo_to_dict(url)
        except psycopg.Error as e:
            reason = str(e).strip()
            raise ValueError(f"not a valid PostgreSQL URL ({reason}): {_STORE_URL_HELP}") from e
        return StoreKind.POSTGRESQL, url
    if sep and scheme == "sqlite":
        path = rest.removeprefix("/")
        if not rest.startswith("/") or not path:
            raise ValueError(f"a SQLite store URL needs a file path: {_STORE_URL_HELP}")
        if "?" in path or "#" in path:
            raise ValueError(f"a SQLite store URL takes no query or fragment: {_STORE_URL_HELP}")
        return StoreKind.SQLITE, path
    shown = f"{scheme}://" if sep else "no scheme"
    raise ValueError(f"unsupported store URL ({shown}): {_STORE_URL_HELP}")


class StoreSettings(BaseModel):
    """PT_STORE__URL: which database holds readings, buckets and state."""

    url: str | None = None  # unset: PT_PG_DSN if set, else SQLite in data_dir

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None  # an empty variable counts as unset
        parse_store_url(v.strip())
        return v.strip()


class Settings(BaseSettings):
    """Where the plant model is and which bus and store to use.

    With kafka_bootstrap unset the bus is in-process. The store is store.url, else PostgreSQL at
    pg_dsn (the older setting), else SQLite in data_dir.
    """

    model_config = SettingsConfigDict(env_prefix="PT_", env_nested_delimiter="__", extra="ignore")

    config: Path = Path("deploy/examples/medtech-plant.yaml")
    data_dir: Path = Path(".plantpulse")
    kafka_bootstrap: str | None = None
    store: StoreSettings = Field(default_factory=StoreSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)  # delivery: PT_ALERTS__...
    pg_dsn: str | None = None  # deprecated alias of PT_STORE__URL=postgresql://...
    readings_topic: str = "plantpulse.readings"
    metrics_topic: str = "plantpulse.metrics"  # the aggregators' rolling figures
    kafka_partitions: int = Field(default=6, ge=1)  # bounds how many aggregators share the work
    kafka_replication: int = Field(default=1, ge=1)  # use 3 on a production cluster
    consumer_group: str = "plantpulse-aggregator"
    alerting_group: str = "plantpulse-alerting"  # the alerting process reads readings as this
    alert_rules: Path | None = None  # the rules file `plantpulse alerting` loads at start
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
    # The aggregator and alerting serve GET /metrics, /healthz and /readyz here; port 0: off.
    aggregator_metrics_host: str = "127.0.0.1"
    aggregator_metrics_port: int = Field(default=9109, ge=0, le=65535)
    alerting_metrics_host: str = "127.0.0.1"
    alerting_metrics_port: int = Field(default=9110, ge=0, le=65535)

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
    def store_kind(self) -> StoreKind:
        return StoreKind.SQLITE if self.postgres_dsn is None else StoreKind.POSTGRESQL

    @property
    def postgres_dsn(self) -> str | None:
        """The PostgreSQL store's DSN; None when the store is SQLite."""
        if self.store.url is not None:
            kind, target = parse_store_url(self.store.url)
            return target if kind is StoreKind.POSTGRESQL else None
        return self.pg_dsn or None

    @property
    def sqlite_path(self) -> Path:
        """The SQLite store's file: the path of a sqlite:// store URL, else one in data_dir."""
        if self.store.url is not None:
            kind, target = parse_store_url(self.store.url)
            if kind is StoreKind.SQLITE:
                return Path(target)
        return self.data_dir / "plantpulse.sqlite3"

    @property
    def gateway_buffer_path(self) -> Path:
        return self.buffer_path or self.data_dir / "gateway-buffer.sqlite3"

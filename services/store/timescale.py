"""TimescaleStore: the Store port on PostgreSQL through psycopg 3, with TimescaleDB when installed.

Writes COPY (binary) into per-session staging tables and merge from there, so a re-delivered
step changes nothing. Migrations run under an advisory lock so replicas never race.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import numpy as np
import psycopg
from psycopg_pool import AsyncConnectionPool

from compute.aggregate import ChannelState, select
from compute.calendar import Period
from compute.denominators import PeriodValue, check_new
from compute.emissions import EmissionFactor
from compute.errors import PlantPulseError
from compute.factor_versions import FactorVersion
from compute.factor_versions import check_new as check_factor
from compute.indicators import Denominator
from compute.kernels import CounterEvent
from compute.meter_events import ReplacementEvent
from compute.rollups import Part
from services.access import ApiToken, TokenError
from services.store import Bucket, ChannelTotal, Latest, StoredReading, StoreWrite
from services.store import external as ext
from services.store import records as rec
from services.store import rows as r
from services.store import tokens as tok
from services.store.alerts_pg import TimescaleAlerts
from services.store.chain_pg import TimescaleChain, append_audit
from services.store.migrate import (
    MigrationStatus,
    postgres_status,
    timescale_available,
    upgrade_postgres,
)
from services.store.records import AuditEntry, ConfigVersion
from services.store.reporting_pg import TimescaleReporting

_STAGE = """
CREATE TEMP TABLE IF NOT EXISTS stage_readings (LIKE readings) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_buckets (LIKE buckets) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS stage_rollups (LIKE rollups) ON COMMIT DELETE ROWS;
"""
_MERGE = f"""
INSERT INTO readings SELECT * FROM stage_readings ON CONFLICT DO NOTHING;
INSERT INTO buckets AS b SELECT * FROM stage_buckets
ON CONFLICT (channel_id, bucket_start_ns) DO UPDATE SET {r.MERGE_SET};
INSERT INTO rollups AS b SELECT * FROM stage_rollups
ON CONFLICT (channel_id, period, period_start_ns) DO UPDATE SET {r.MERGE_SET};
"""
_UPSERT_STATE = f"""
INSERT INTO channel_state ({r.STATE_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (channel_id) DO UPDATE SET last_ts_ns = excluded.last_ts_ns,
    counter_ts_ns = excluded.counter_ts_ns, counter_value = excluded.counter_value,
    held_ts_ns = excluded.held_ts_ns, held_value = excluded.held_value
"""
_INSERT_EVENT = "INSERT INTO counter_events VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING"
_UPSERT_LATEST = """
INSERT INTO latest AS l (channel_id, ts_ns, value, quality, receive_ts_ns)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (channel_id) DO UPDATE SET ts_ns = excluded.ts_ns, value = excluded.value,
    quality = excluded.quality, receive_ts_ns = excluded.receive_ts_ns
WHERE excluded.ts_ns > l.ts_ns
"""
_READINGS_COLUMNS = (
    "readings (channel_id, ts_ns, value, quality, receive_ts_ns, server_ts_ns)"  # reading_rows'
)
_READING_TYPES = ["text", "int8", "float8", "int2", "int8", "int8"]
_ROLLUP_TYPES = [
    *("text", "text", "int8", "int8", "int8"),
    *("float8", "float8", "float8", "float8", "int8", "float8"),
]
_BUCKET_TYPES = [
    *("text", "int8", "int8", "int8"),
    *("float8", "float8", "float8", "float8", "int8", "float8"),
]


class StoreError(PlantPulseError):
    """The database refused or failed a store operation."""


class TimescaleStore(TimescaleReporting, TimescaleAlerts, TimescaleChain):
    """With migrate=False, opening applies no migration: for `plantpulse db status|upgrade`."""

    def __init__(
        self, dsn: str, *, max_connections: int = 4, timeout_s: float = 10.0, migrate: bool = True
    ) -> None:
        self.dsn = dsn
        self.timeout_s = timeout_s
        self.migrate_on_open = migrate
        self.pool = AsyncConnectionPool(
            dsn,
            min_size=1,
            max_size=max_connections,
            open=False,
            timeout=timeout_s,
            kwargs={"connect_timeout": max(1, int(timeout_s))},
        )
        self.timescale = False

    async def __aenter__(self) -> TimescaleStore:
        try:
            # One plain connection first: the pool would retry in the background and time out
            # without the reason (refused, unknown host, bad password), which this one gives.
            probe = await psycopg.AsyncConnection.connect(
                self.dsn, connect_timeout=max(1, int(self.timeout_s))
            )
            await probe.close()
            await self.pool.open(wait=True, timeout=self.timeout_s)
            if self.migrate_on_open:
                await self._migrate()
        except (psycopg.Error, TimeoutError) as e:
            await self.pool.close()
            raise StoreError(f"cannot open the PostgreSQL store: {e}") from e
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.pool.close()

    async def migrate(self) -> list[int]:
        """Apply pending migrations under an advisory lock; return the versions applied."""
        try:
            return await self._migrate()
        except psycopg.Error as e:
            raise StoreError(f"migrating the PostgreSQL store failed: {e}") from e

    async def _migrate(self) -> list[int]:
        async with self.pool.connection() as conn:
            self.timescale = await timescale_available(conn)
            return await upgrade_postgres(conn, timescale=self.timescale)

    async def migration_status(self) -> MigrationStatus:
        """Read-only: the applied and the pending migrations."""
        try:
            async with self.pool.connection() as conn:
                return await postgres_status(conn)
        except psycopg.Error as e:
            raise StoreError(f"reading the migrations failed: {e}") from e

    async def load_state(self, channel_ids: Sequence[str]) -> dict[str, ChannelState]:
        rows = await self._fetch(_in_channels(r.STATE_SQL), (list(channel_ids),))
        return {row[0]: r.channel_state(row) for row in rows}

    async def write(self, w: StoreWrite) -> None:
        try:
            async with self.pool.connection() as conn, conn.transaction():
                await conn.execute(_STAGE.encode())
                async with conn.cursor() as cur:
                    new = np.zeros(len(w.readings.ts_ns), np.bool_) if w.new is None else w.new
                    if new.any():  # straight in: the bulk of every write, without a merge
                        fresh = r.reading_rows(select(w.readings, new))
                        await _copy(cur, _READINGS_COLUMNS, _READING_TYPES, fresh)
                    if not new.all():
                        maybe_stored = r.reading_rows(select(w.readings, ~new))
                        await _copy(cur, "stage_readings", _READING_TYPES, maybe_stored)
                    await _copy(cur, "stage_buckets", _BUCKET_TYPES, r.bucket_rows(w.buckets))
                    if w.rollups:
                        rollups = r.rollup_rows(w.rollups)
                        await _copy(cur, "stage_rollups", _ROLLUP_TYPES, rollups)
                    await cur.execute(_MERGE.encode())
                    await cur.executemany(_UPSERT_STATE, list(r.state_rows(w.state)))
                    await cur.executemany(_INSERT_EVENT, list(r.event_rows(w.events)))
                    if w.revisions is not None:
                        await cur.executemany(
                            r.INSERT_REVISION_SQL,
                            list(r.revision_rows(w.revisions)),
                        )
                    rows = [ext.replacement_row(e) for e in w.replacements]
                    await cur.executemany(ext.INSERT_REPLACEMENT_SQL, rows)
                    await append_audit(conn, w.audit)
                    await cur.executemany(_UPSERT_LATEST, list(r.latest_rows(w.readings)))
        except psycopg.Error as e:
            raise StoreError(f"write failed: {e}") from e

    async def latest(self) -> list[Latest]:
        rows = await self._fetch(
            "SELECT channel_id, ts_ns, value, quality, receive_ts_ns FROM latest", ()
        )
        return [r.latest(row) for row in rows]

    async def series(self, channel_id: str, start_ns: int, end_ns: int) -> list[Bucket]:
        return [
            r.bucket(row) for row in await self._fetch(r.SERIES_SQL, (channel_id, start_ns, end_ns))
        ]

    async def readings_around(
        self, channel_id: str, start_ns: int, end_ns: int
    ) -> list[tuple[int, float, int]]:
        rows = await self._fetch(r.AROUND_SQL, r.around_params(channel_id, start_ns, end_ns))
        return [r.stored_reading(row) for row in rows]

    async def revisions(
        self, channel_id: str, start_ns: int, end_ns: int
    ) -> list[tuple[int, int, float]]:
        rows = await self._fetch(r.REVISIONS_SQL, (channel_id, start_ns, end_ns))
        return [(int(a), int(b), float(c)) for a, b, c in rows]

    async def counter_events(
        self, channel_id: str, start_ns: int, end_ns: int
    ) -> list[tuple[int, CounterEvent, float]]:
        rows = await self._fetch(r.EVENTS_SQL, (channel_id, start_ns, end_ns))
        return [r.counter_event(row) for row in rows]

    async def series_many(
        self, channel_ids: Sequence[str], start_ns: int, end_ns: int
    ) -> list[Bucket]:
        rows = await self._fetch(
            _in_channels(r.SERIES_MANY_SQL), (list(channel_ids), start_ns, end_ns)
        )
        return [r.bucket(row) for row in rows]

    async def readings_page(
        self,
        channel_ids: Sequence[str],
        start_ns: int,
        end_ns: int,
        after: tuple[str, int],
        limit: int,
    ) -> list[StoredReading]:
        sql = _in_channels(r.READINGS_PAGE_SQL)
        rows = await self._fetch(sql, (list(channel_ids), start_ns, end_ns, *after, limit))
        return [r.stored(row) for row in rows]

    async def record_config(self, configs: dict[str, tuple[str, str]], at_ns: int) -> int:
        try:
            async with self.pool.connection() as conn, conn.transaction():
                await conn.execute("LOCK TABLE channel_config IN SHARE ROW EXCLUSIVE MODE")
                cur = await conn.execute(rec.LATEST_CONFIG_SQL.encode())
                rows = rec.changed_configs(configs, await cur.fetchall(), at_ns)
                async with conn.cursor() as c:
                    await c.executemany(rec.INSERT_CONFIG_SQL.encode(), rows)
            return len(rows)
        except psycopg.Error as e:
            raise StoreError(f"recording the channel configuration failed: {e}") from e

    async def config_history(self, channel_id: str) -> list[ConfigVersion]:
        rows = await self._fetch(rec.CONFIG_HISTORY_SQL, (channel_id,))
        return [rec.config_version(row) for row in rows]

    async def add_emission_factor(self, f: EmissionFactor, recorded_at_ns: int) -> None:
        try:
            async with self.pool.connection() as conn:
                await conn.execute(
                    rec.INSERT_FACTOR_SQL.encode(), rec.factor_row(f, recorded_at_ns)
                )
        except psycopg.errors.UniqueViolation as e:
            raise rec.DuplicateRecordError(f"emission factor {f.ref} exists: {e}") from e
        except psycopg.Error as e:
            raise StoreError(f"adding emission factor {f.ref} failed: {e}") from e

    async def emission_factors(self) -> list[EmissionFactor]:
        return [rec.factor(row) for row in await self._fetch(rec.FACTORS_SQL, ())]

    async def append_audit(self, e: AuditEntry) -> None:
        try:
            async with self.pool.connection() as conn, conn.transaction():
                await append_audit(conn, [e])
        except psycopg.Error as err:
            raise StoreError(f"writing the audit log failed: {err}") from err

    async def audit_log(self, subject: str | None = None) -> list[AuditEntry]:
        rows = await self._fetch(rec.AUDIT_SQL, (subject, subject))
        return [rec.audit_entry(row) for row in rows]

    async def add_token(self, t: ApiToken, *, actor: str, reason: str) -> None:
        entry = tok.created_entry(t, actor, reason)
        try:
            async with self.pool.connection() as conn, conn.transaction():
                await conn.execute(tok.INSERT_TOKEN_SQL.encode(), tok.token_row(t))
                await append_audit(conn, [entry])
        except psycopg.errors.UniqueViolation as e:
            raise rec.DuplicateRecordError(f"token {t.id} exists: {e}") from e
        except psycopg.Error as e:
            raise StoreError(f"adding token {t.id} failed: {e}") from e

    async def token(self, token_id: str) -> ApiToken | None:
        rows = await self._fetch(tok.TOKEN_SQL, (token_id,))
        return tok.api_token(rows[0]) if rows else None

    async def tokens(self) -> list[ApiToken]:
        return [tok.api_token(row) for row in await self._fetch(tok.TOKENS_SQL, ())]

    async def revoke_token(self, token_id: str, *, at_ns: int, actor: str, reason: str) -> ApiToken:
        entry = tok.revoked_entry(token_id, at_ns, actor, reason)
        try:
            async with self.pool.connection() as conn, conn.transaction():
                row = await (
                    await conn.execute(tok.REVOKE_SQL.encode(), (at_ns, token_id))
                ).fetchone()
                if row is None:
                    cur = await conn.execute(tok.TOKEN_SQL.encode(), (token_id,))
                    old = await cur.fetchone()
                    raise TokenError(
                        tok.not_revoked(token_id, None if old is None else tok.api_token(old))
                    )
                await append_audit(conn, [entry])
                return tok.api_token(row)
        except psycopg.Error as e:
            raise StoreError(f"revoking token {token_id} failed: {e}") from e

    async def add_period_value(self, v: PeriodValue, *, actor: str = "", reason: str = "") -> None:
        try:
            async with self.pool.connection() as conn, conn.transaction():
                # one writer per site and kind at a time, so the overlap check holds
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{v.site}/{v.kind.value}",)
                )
                cur = await conn.execute(
                    r.PERIOD_VALUES_SQL.encode(), (v.site, v.kind.value, v.end_ns, v.start_ns)
                )
                recorded = [r.period_value(row) for row in await cur.fetchall()]
                check_new(v, recorded)
                if actor:
                    entry = ext.period_value_entry(v, recorded, actor, reason)
                    await append_audit(conn, [entry])
                await conn.execute(r.INSERT_PERIOD_VALUE_SQL.encode(), r.period_value_row(v))
        except psycopg.Error as e:
            raise StoreError(f"recording a period value failed: {e}") from e

    async def period_values(
        self, site: str, kind: Denominator, start_ns: int, end_ns: int
    ) -> list[PeriodValue]:
        rows = await self._fetch(r.PERIOD_VALUES_SQL, (site, kind.value, end_ns, start_ns))
        return [r.period_value(row) for row in rows]

    async def rollups_from_ns(self) -> dict[Period, int]:
        rows = await self._fetch(r.ROLLUP_STARTS_SQL, ())
        return r.rollup_starts(rows)

    async def plan_totals(
        self, channel_ids: Sequence[str], parts: Sequence[Part]
    ) -> dict[str, ChannelTotal]:
        in_channels = r.IN_CHANNELS_PG.replace("%s", "%(channels)s")
        sql, params = r.plan_totals_sql(parts, in_channels, lambda key: f"%({key})s")
        rows = await self._fetch(sql, {**params, "channels": list(channel_ids)})
        return {row[0]: r.total(row) for row in rows}

    async def totals(
        self, channel_ids: Sequence[str], start_ns: int, end_ns: int
    ) -> dict[str, ChannelTotal]:
        rows = await self._fetch(_in_channels(r.TOTALS_SQL), (list(channel_ids), start_ns, end_ns))
        return {row[0]: r.total(row) for row in rows}

    async def meter_replacements(self, channel_id: str | None = None) -> list[ReplacementEvent]:
        rows = await self._fetch(ext.REPLACEMENTS_SQL, (channel_id, channel_id))
        return [ext.replacement(row) for row in rows]

    async def add_factor_version(self, v: FactorVersion, *, actor: str, reason: str) -> None:
        try:
            async with self.pool.connection() as conn, conn.transaction():
                # one writer of factor versions at a time, so the overlap check holds
                await conn.execute("LOCK TABLE emission_factors IN SHARE ROW EXCLUSIVE MODE")
                cur = await conn.execute(ext.FACTOR_VERSIONS_SQL.encode())
                recorded = [ext.factor_version(row) for row in await cur.fetchall()]
                check_factor(v, recorded)
                gone = [x for x in recorded if x.factor.ref in v.supersedes]
                entry = ext.factor_entry(v, gone, actor, reason)
                await conn.execute(
                    ext.INSERT_FACTOR_VERSION_SQL.encode(), ext.factor_version_row(v)
                )
                await append_audit(conn, [entry])
        except psycopg.Error as e:
            raise StoreError(f"adding emission factor {v.factor.ref} failed: {e}") from e

    async def factor_versions(self) -> list[FactorVersion]:
        return [ext.factor_version(row) for row in await self._fetch(ext.FACTOR_VERSIONS_SQL, ())]

    async def _fetch(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        try:
            async with self.pool.connection() as conn:
                cur = await conn.execute(sql.encode(), params)
                return await cur.fetchall()
        except psycopg.Error as e:
            raise StoreError(f"query failed: {e}") from e


def _in_channels(sql: str) -> str:
    return sql.format(in_channels=r.IN_CHANNELS_PG)


async def _copy(cur: psycopg.AsyncCursor[Any], table: str, types: list[str], rows: Any) -> None:
    async with cur.copy(f"COPY {table} FROM STDIN (FORMAT BINARY)".encode()) as copy:
        copy.set_types(types)
        for row in rows:
            await copy.write_row(row)

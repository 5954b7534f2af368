"""SqliteStore: the embedded default store, in WAL mode, durable across crashes and restarts.

sqlite3 is synchronous, so every call runs on one worker thread that owns the connection.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from compute.aggregate import ChannelState
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
from services.store.alerts_sqlite import SqliteAlerts
from services.store.chain_sqlite import SqliteChain, append_audit
from services.store.migrate import MigrationStatus, sqlite_status, upgrade_sqlite
from services.store.records import AuditEntry, ConfigVersion
from services.store.reporting_sqlite import SqliteReporting
from services.store.sqlite_tx import in_tx, qmark

T = TypeVar("T")

# SQLite's min() and max() of two values are NULL if either is: coalesce keeps the other.
_MERGE_SET = """
    n = n + excluded.n,
    n_good = n_good + excluded.n_good,
    sum = sum + excluded.sum,
    estimated = estimated + excluded.estimated,
    min = min(coalesce(min, excluded.min), coalesce(excluded.min, min)),
    max = max(coalesce(max, excluded.max), coalesce(excluded.max, max)),
    last = CASE WHEN coalesce(excluded.last_ts_ns, -1) > coalesce(last_ts_ns, -1)
                THEN excluded.last ELSE last END,
    last_ts_ns = max(coalesce(last_ts_ns, -1), coalesce(excluded.last_ts_ns, -1))"""
_UPSERT_BUCKET = f"""
INSERT INTO buckets
    (channel_id, bucket_start_ns, n, n_good, sum, min, max, last, last_ts_ns, estimated)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (channel_id, bucket_start_ns) DO UPDATE SET {_MERGE_SET}
"""
_UPSERT_ROLLUP = f"""
INSERT INTO rollups
    (channel_id, period, period_start_ns, n, n_good, sum, min, max, last, last_ts_ns, estimated)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (channel_id, period, period_start_ns) DO UPDATE SET {_MERGE_SET}
"""
_UPSERT_STATE = f"""
INSERT INTO channel_state ({r.STATE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (channel_id) DO UPDATE SET last_ts_ns = excluded.last_ts_ns,
    counter_ts_ns = excluded.counter_ts_ns, counter_value = excluded.counter_value,
    held_ts_ns = excluded.held_ts_ns, held_value = excluded.held_value
"""
_UPSERT_LATEST = """
INSERT INTO latest (channel_id, ts_ns, value, quality, receive_ts_ns) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (channel_id) DO UPDATE SET ts_ns = excluded.ts_ns, value = excluded.value,
    quality = excluded.quality, receive_ts_ns = excluded.receive_ts_ns
WHERE excluded.ts_ns > latest.ts_ns
"""


class SqliteStoreError(PlantPulseError):
    """The SQLite store's file cannot be opened or migrated."""


class SqliteStore(SqliteReporting, SqliteAlerts, SqliteChain):
    """With migrate=False, opening applies no migration: for `plantpulse db status|upgrade`."""

    def __init__(self, path: Path, *, migrate: bool = True) -> None:
        self.path = path
        self.migrate_on_open = migrate
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._db: sqlite3.Connection | None = None

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            assert self._db is not None, "use SqliteStore as an async context manager"
            return fn(self._db)

        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    async def __aenter__(self) -> SqliteStore:
        def open_db() -> sqlite3.Connection:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("PRAGMA busy_timeout=10000")
                if self.migrate_on_open:
                    upgrade_sqlite(db)
            except BaseException:
                db.close()
                raise
            return db

        try:
            self._db = await asyncio.get_running_loop().run_in_executor(self._pool, open_db)
        except (sqlite3.Error, OSError) as e:
            self._pool.shutdown(wait=True)
            raise SqliteStoreError(f"cannot open the SQLite store {self.path}: {e}") from e
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._db is not None:
            await self._run(lambda db: db.close())
            self._db = None
        self._pool.shutdown(wait=True)

    async def migrate(self) -> list[int]:
        """Apply pending migrations under BEGIN IMMEDIATE; return the versions applied."""
        try:
            return await self._run(upgrade_sqlite)
        except sqlite3.Error as e:
            raise SqliteStoreError(f"migrating {self.path} failed: {e}") from e

    async def migration_status(self) -> MigrationStatus:
        """Read-only: the applied and the pending migrations."""
        try:
            return await self._run(sqlite_status)
        except sqlite3.Error as e:
            raise SqliteStoreError(f"reading the migrations of {self.path} failed: {e}") from e

    async def load_state(self, channel_ids: Sequence[str]) -> dict[str, ChannelState]:
        def q(db: sqlite3.Connection) -> dict[str, ChannelState]:
            cur = db.execute(_in_channels(r.STATE_SQL), (json.dumps(list(channel_ids)),))
            return {row[0]: r.channel_state(row) for row in cur}

        return await self._run(q)

    async def write(self, w: StoreWrite) -> None:
        def tx(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(
                    "INSERT OR IGNORE INTO readings VALUES (?, ?, ?, ?, ?, ?)",
                    r.reading_rows(w.readings),
                )
                db.executemany(_UPSERT_BUCKET, r.bucket_rows(w.buckets))
                if w.rollups:
                    db.executemany(_UPSERT_ROLLUP, r.rollup_rows(w.rollups))
                db.executemany(_UPSERT_STATE, r.state_rows(w.state))
                db.executemany(
                    "INSERT OR IGNORE INTO counter_events VALUES (?, ?, ?, ?)",
                    r.event_rows(w.events),
                )
                if w.revisions is not None:
                    db.executemany(
                        r.INSERT_REVISION_SQL.replace("%s", "?"),
                        r.revision_rows(w.revisions),
                    )
                db.executemany(
                    qmark(ext.INSERT_REPLACEMENT_SQL), map(ext.replacement_row, w.replacements)
                )
                append_audit(db, w.audit)
                db.executemany(_UPSERT_LATEST, r.latest_rows(w.readings))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

        await self._run(tx)

    async def latest(self) -> list[Latest]:
        def q(db: sqlite3.Connection) -> list[Latest]:
            cur = db.execute("SELECT channel_id, ts_ns, value, quality, receive_ts_ns FROM latest")
            return [r.latest(row) for row in cur]

        return await self._run(q)

    async def series(self, channel_id: str, start_ns: int, end_ns: int) -> list[Bucket]:
        def q(db: sqlite3.Connection) -> list[Bucket]:
            cur = db.execute(r.SERIES_SQL.replace("%s", "?"), (channel_id, start_ns, end_ns))
            return [r.bucket(row) for row in cur]

        return await self._run(q)

    async def readings_around(
        self, channel_id: str, start_ns: int, end_ns: int
    ) -> list[tuple[int, float, int]]:
        def q(db: sqlite3.Connection) -> list[tuple[int, float, int]]:
            cur = db.execute(
                r.AROUND_SQL.replace("%s", "?"), r.around_params(channel_id, start_ns, end_ns)
            )
            return [r.stored_reading(row) for row in cur]

        return await self._run(q)

    async def revisions(
        self, channel_id: str, start_ns: int, end_ns: int
    ) -> list[tuple[int, int, float]]:
        def q(db: sqlite3.Connection) -> list[tuple[int, int, float]]:
            cur = db.execute(r.REVISIONS_SQL.replace("%s", "?"), (channel_id, start_ns, end_ns))
            return [(int(a), int(b), float(c)) for a, b, c in cur]

        return await self._run(q)

    async def counter_events(
        self, channel_id: str, start_ns: int, end_ns: int
    ) -> list[tuple[int, CounterEvent, float]]:
        def q(db: sqlite3.Connection) -> list[tuple[int, CounterEvent, float]]:
            cur = db.execute(r.EVENTS_SQL.replace("%s", "?"), (channel_id, start_ns, end_ns))
            return [r.counter_event(row) for row in cur]

        return await self._run(q)

    async def series_many(
        self, channel_ids: Sequence[str], start_ns: int, end_ns: int
    ) -> list[Bucket]:
        def q(db: sqlite3.Connection) -> list[Bucket]:
            cur = db.execute(
                _in_channels(r.SERIES_MANY_SQL), (json.dumps(list(channel_ids)), start_ns, end_ns)
            )
            return [r.bucket(row) for row in cur]

        return await self._run(q)

    async def readings_page(
        self,
        channel_ids: Sequence[str],
        start_ns: int,
        end_ns: int,
        after: tuple[str, int],
        limit: int,
    ) -> list[StoredReading]:
        def q(db: sqlite3.Connection) -> list[StoredReading]:
            ids = json.dumps(list(channel_ids))
            sql = _in_channels(r.READINGS_PAGE_SQL)
            cur = db.execute(sql, (ids, start_ns, end_ns, *after, limit))
            return [r.stored(row) for row in cur]

        return await self._run(q)

    async def record_config(self, configs: dict[str, tuple[str, str]], at_ns: int) -> int:
        def tx(db: sqlite3.Connection) -> int:
            db.execute("BEGIN IMMEDIATE")
            try:
                latest = db.execute(rec.LATEST_CONFIG_SQL).fetchall()
                rows = rec.changed_configs(configs, latest, at_ns)
                db.executemany(qmark(rec.INSERT_CONFIG_SQL), rows)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return len(rows)

        return await self._run(tx)

    async def config_history(self, channel_id: str) -> list[ConfigVersion]:
        rows = await self._fetch(rec.CONFIG_HISTORY_SQL, (channel_id,))
        return [rec.config_version(row) for row in rows]

    async def add_emission_factor(self, f: EmissionFactor, recorded_at_ns: int) -> None:
        try:
            await self._fetch(rec.INSERT_FACTOR_SQL, rec.factor_row(f, recorded_at_ns))
        except sqlite3.IntegrityError as e:
            raise rec.DuplicateRecordError(f"emission factor {f.ref} exists: {e}") from e

    async def emission_factors(self) -> list[EmissionFactor]:
        return [rec.factor(row) for row in await self._fetch(rec.FACTORS_SQL, ())]

    async def append_audit(self, e: AuditEntry) -> None:
        await self._run(lambda db: in_tx(db, lambda d: append_audit(d, [e])))

    async def audit_log(self, subject: str | None = None) -> list[AuditEntry]:
        return [
            rec.audit_entry(row) for row in await self._fetch(rec.AUDIT_SQL, (subject, subject))
        ]

    async def add_token(self, t: ApiToken, *, actor: str, reason: str) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(qmark(tok.INSERT_TOKEN_SQL), tok.token_row(t))
            append_audit(db, [tok.created_entry(t, actor, reason)])

        try:
            await self._run(lambda db: in_tx(db, work))
        except sqlite3.IntegrityError as e:
            raise rec.DuplicateRecordError(f"token {t.id} exists: {e}") from e

    async def token(self, token_id: str) -> ApiToken | None:
        rows = await self._fetch(tok.TOKEN_SQL, (token_id,))
        return tok.api_token(rows[0]) if rows else None

    async def tokens(self) -> list[ApiToken]:
        return [tok.api_token(row) for row in await self._fetch(tok.TOKENS_SQL, ())]

    async def revoke_token(self, token_id: str, *, at_ns: int, actor: str, reason: str) -> ApiToken:
        def work(db: sqlite3.Connection) -> ApiToken:
            row = db.execute(qmark(tok.REVOKE_SQL), (at_ns, token_id)).fetchone()
            if row is None:
                old = db.execute(qmark(tok.TOKEN_SQL), (token_id,)).fetchone()
                raise TokenError(
                    tok.not_revoked(token_id, None if old is None else tok.api_token(old))
                )
            entry = tok.revoked_entry(token_id, at_ns, actor, reason)
            append_audit(db, [entry])
            return tok.api_token(row)

        return await self._run(lambda db: in_tx(db, work))

    async def meter_replacements(self, channel_id: str | None = None) -> list[ReplacementEvent]:
        rows = await self._fetch(ext.REPLACEMENTS_SQL, (channel_id, channel_id))
        return [ext.replacement(row) for row in rows]

    async def add_factor_version(self, v: FactorVersion, *, actor: str, reason: str) -> None:
        def work(db: sqlite3.Connection) -> None:
            recorded = [ext.factor_version(x) for x in db.execute(ext.FACTOR_VERSIONS_SQL)]
            check_factor(v, recorded)
            gone = [x for x in recorded if x.factor.ref in v.supersedes]
            db.execute(qmark(ext.INSERT_FACTOR_VERSION_SQL), ext.factor_version_row(v))
            append_audit(db, [ext.factor_entry(v, gone, actor, reason)])

        await self._run(lambda db: in_tx(db, work))

    async def factor_versions(self) -> list[FactorVersion]:
        return [ext.factor_version(row) for row in await self._fetch(ext.FACTOR_VERSIONS_SQL, ())]

    async def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """One statement in its own transaction (autocommit), its rows."""
        return await self._run(lambda db: db.execute(qmark(sql), tuple(params)).fetchall())

    async def add_period_value(self, v: PeriodValue, *, actor: str = "", reason: str = "") -> None:
        def tx(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            try:
                cur = db.execute(
                    r.PERIOD_VALUES_SQL.replace("%s", "?"),
                    (v.site, v.kind.value, v.end_ns, v.start_ns),
                )
                recorded = [r.period_value(row) for row in cur]
                check_new(v, recorded)
                if actor:
                    entry = ext.period_value_entry(v, recorded, actor, reason)
                    append_audit(db, [entry])
                db.execute(r.INSERT_PERIOD_VALUE_SQL.replace("%s", "?"), r.period_value_row(v))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

        await self._run(tx)

    async def period_values(
        self, site: str, kind: Denominator, start_ns: int, end_ns: int
    ) -> list[PeriodValue]:
        def q(db: sqlite3.Connection) -> list[PeriodValue]:
            cur = db.execute(
                r.PERIOD_VALUES_SQL.replace("%s", "?"), (site, kind.value, end_ns, start_ns)
            )
            return [r.period_value(row) for row in cur]

        return await self._run(q)

    async def rollups_from_ns(self) -> dict[Period, int]:
        rows = await self._fetch(r.ROLLUP_STARTS_SQL, ())
        return r.rollup_starts(rows)

    async def plan_totals(
        self, channel_ids: Sequence[str], parts: Sequence[Part]
    ) -> dict[str, ChannelTotal]:
        in_channels = r.IN_CHANNELS_SQLITE.replace("?", ":channels")
        sql, params = r.plan_totals_sql(parts, in_channels, lambda key: f":{key}")
        params["channels"] = json.dumps(list(channel_ids))
        rows = await self._run(lambda db: db.execute(sql, params).fetchall())
        return {row[0]: r.total(row) for row in rows}

    async def totals(
        self, channel_ids: Sequence[str], start_ns: int, end_ns: int
    ) -> dict[str, ChannelTotal]:
        def q(db: sqlite3.Connection) -> dict[str, ChannelTotal]:
            cur = db.execute(
                _in_channels(r.TOTALS_SQL), (json.dumps(list(channel_ids)), start_ns, end_ns)
            )
            return {row[0]: r.total(row) for row in cur}

        return await self._run(q)


def _in_channels(sql: str) -> str:
    return sql.format(in_channels=r.IN_CHANNELS_SQLITE).replace("%s", "?")

"""TimescaleStore's reporting methods: report snapshots and restatements with their audit
entries, and row sums for tariff periods (services.store.reporting holds the SQL)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from services.store import reporting as rep
from services.store.chain_pg import append_audit
from services.store.records import DuplicateRecordError
from services.store.rows import IN_CHANNELS_PG


class TimescaleReporting:
    """Mixed into TimescaleStore, whose pool and `_fetch` it uses."""

    if TYPE_CHECKING:
        pool: AsyncConnectionPool

        async def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]: ...

    async def row_sums(
        self, channel_ids: Sequence[str], source: str, start_ns: int, end_ns: int
    ) -> list[rep.RowSum]:
        sql = rep.row_sums_query(source, IN_CHANNELS_PG)
        rows = await self._fetch(
            sql, rep.row_sums_params(list(channel_ids), source, start_ns, end_ns)
        )
        return [rep.row_sum(row) for row in rows]

    async def add_report_snapshot(self, s: rep.ReportSnapshot) -> None:
        try:
            async with self.pool.connection() as conn, conn.transaction():
                await conn.execute(rep.INSERT_SNAPSHOT_SQL.encode(), rep.snapshot_row(s))
                await append_audit(conn, [rep.closed_entry(s)])
        except psycopg.errors.UniqueViolation as e:
            raise DuplicateRecordError(f"report {s.report_id!r} is closed already: {e}") from e
        except psycopg.Error as e:
            raise rep.ReportStoreError(f"closing report {s.report_id!r} failed: {e}") from e

    async def report_snapshot(self, report_id: str) -> rep.ReportSnapshot | None:
        rows = await self._fetch(rep.SNAPSHOT_SQL, (report_id,))
        return rep.snapshot(rows[0]) if rows else None

    async def add_report_restatement(self, r: rep.ReportRestatement) -> None:
        try:
            async with self.pool.connection() as conn, conn.transaction():
                # one restatement of a report at a time, so each follows the latest version
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"report/{r.report_id}",)
                )
                cur = await conn.execute(rep.LATEST_SHA_SQL.encode(), (r.report_id, r.report_id))
                row = await cur.fetchone()
                rep.check_latest(r, None if row is None else row[0])
                await conn.execute(rep.INSERT_RESTATEMENT_SQL.encode(), rep.restatement_row(r))
                await append_audit(conn, [rep.restated_entry(r)])
        except psycopg.errors.UniqueViolation as e:
            raise DuplicateRecordError(f"restatement of {r.report_id!r} exists: {e}") from e
        except psycopg.Error as e:
            raise rep.ReportStoreError(f"restating report {r.report_id!r} failed: {e}") from e

    async def report_restatements(self, report_id: str) -> list[rep.ReportRestatement]:
        rows = await self._fetch(rep.RESTATEMENTS_SQL, (report_id,))
        return [rep.restatement(row) for row in rows]

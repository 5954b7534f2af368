"""SqliteStore's reporting methods: report snapshots and restatements with their audit entries,
and row sums for tariff periods (services.store.reporting holds the SQL)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from services.store import reporting as rep
from services.store.chain_sqlite import append_audit
from services.store.records import DuplicateRecordError
from services.store.rows import IN_CHANNELS_SQLITE
from services.store.sqlite_tx import in_tx, qmark

T = TypeVar("T")


class SqliteReporting:
    """Mixed into SqliteStore, whose worker thread runs each call (`_run`)."""

    if TYPE_CHECKING:

        async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    async def row_sums(
        self, channel_ids: Sequence[str], source: str, start_ns: int, end_ns: int
    ) -> list[rep.RowSum]:
        sql = qmark(rep.row_sums_query(source, IN_CHANNELS_SQLITE))
        params = rep.row_sums_params(json.dumps(list(channel_ids)), source, start_ns, end_ns)
        rows = await self._run(lambda db: db.execute(sql, params).fetchall())
        return [rep.row_sum(row) for row in rows]

    async def add_report_snapshot(self, s: rep.ReportSnapshot) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(qmark(rep.INSERT_SNAPSHOT_SQL), rep.snapshot_row(s))
            append_audit(db, [rep.closed_entry(s)])

        try:
            await self._run(lambda db: in_tx(db, work))
        except sqlite3.IntegrityError as e:
            raise DuplicateRecordError(f"report {s.report_id!r} is closed already: {e}") from e

    async def report_snapshot(self, report_id: str) -> rep.ReportSnapshot | None:
        rows = await self._run(
            lambda db: db.execute(qmark(rep.SNAPSHOT_SQL), (report_id,)).fetchall()
        )
        return rep.snapshot(rows[0]) if rows else None

    async def add_report_restatement(self, r: rep.ReportRestatement) -> None:
        def work(db: sqlite3.Connection) -> None:
            (latest,) = db.execute(qmark(rep.LATEST_SHA_SQL), (r.report_id, r.report_id)).fetchone()
            rep.check_latest(r, latest)
            db.execute(qmark(rep.INSERT_RESTATEMENT_SQL), rep.restatement_row(r))
            append_audit(db, [rep.restated_entry(r)])

        try:
            await self._run(lambda db: in_tx(db, work))
        except sqlite3.IntegrityError as e:
            raise DuplicateRecordError(f"restatement of {r.report_id!r} exists: {e}") from e

    async def report_restatements(self, report_id: str) -> list[rep.ReportRestatement]:
        def q(db: sqlite3.Connection) -> list[Any]:
            return db.execute(qmark(rep.RESTATEMENTS_SQL), (report_id,)).fetchall()

        return [rep.restatement(row) for row in await self._run(q)]

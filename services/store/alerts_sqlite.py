"""SqliteStore's alerting methods (services.store.alerts_sql holds the SQL). One connection on one
worker thread: BEGIN IMMEDIATE is also the row lock."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from compute.audit_chain import Chain
from services.store import alerts as al
from services.store import alerts_sql as sql
from services.store import chain as ch
from services.store.chain_sqlite import append_audit, append_chained
from services.store.sqlite_tx import in_tx, qmark

T = TypeVar("T")


class SqliteAlerts:
    """Mixed into SqliteStore, whose worker thread runs each call (`_run`)."""

    if TYPE_CHECKING:

        async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    async def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        return await self._run(lambda db: db.execute(qmark(sql), params).fetchall())

    async def alert_rules_version(self) -> int:
        ((version,),) = await self._rows(sql.RULES_VERSION_SQL)
        return int(version)

    async def alert_rules(self, *, deleted: bool = False) -> list[al.RuleRecord]:
        return [sql.rule_record(r) for r in await self._rows(sql.RULES_SQL, (deleted,))]

    async def change_alert_rule(self, c: al.RuleChange) -> al.RuleRecord | None:
        def work(db: sqlite3.Connection) -> al.RuleRecord | None:
            row = db.execute(qmark(sql.RULE_SQL), (c.rule_id,)).fetchone()
            old = None if row is None else sql.rule_record(row)
            ((version,),) = db.execute(sql.RULES_VERSION_SQL).fetchall()
            new = sql.next_rule(c, old, int(version))
            if new is not None:
                db.execute(qmark(sql.UPSERT_RULE_SQL), sql.rule_row(new))
                append_audit(db, [sql.rule_entry(c, old)])
            return new

        return await self._run(lambda db: in_tx(db, work))

    async def alert_points(self) -> dict[al.PointKey, str]:
        return {(r, c): s for r, c, s in await self._rows(sql.POINTS_SQL)}

    async def write_alerting(self, w: al.AlertWrite) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.executemany(qmark(sql.UPSERT_POINT_SQL), sql.point_params(w.points, w.at_ns))
            db.executemany(qmark(sql.DELETE_POINT_SQL), w.dropped)
            rows = [ch.alert_event_fields(e, w.at_ns) for e in w.events]
            append_chained(db, Chain.ALERT_EVENTS, rows)
            db.executemany(qmark(sql.UPSERT_ALERT_SQL), map(sql.alert_row_params, w.alerts))
            db.executemany(qmark(sql.INSERT_OUTBOX_SQL), map(sql.outbox_params, w.outbox))
            db.executemany(qmark(sql.FINISH_REQUEST_SQL), map(sql.outcome_params, w.outcomes))

        await self._run(lambda db: in_tx(db, work))

    async def alerts(self, *, closed: bool | None = False, limit: int = 1000) -> list[al.AlertRow]:
        rows = await self._rows(sql.ALERTS_SQL, sql.alerts_params(closed, limit))
        return [sql.alert_row(r) for r in rows]

    async def alert(self, alert_id: str) -> al.AlertRow | None:
        rows = await self._rows(sql.ALERT_SQL, (alert_id,))
        return sql.alert_row(rows[0]) if rows else None

    async def alert_history(self, alert_id: str) -> list[al.StoredEvent]:
        return [sql.stored_event(r) for r in await self._rows(sql.HISTORY_SQL, (alert_id,))]

    async def add_alert_request(self, r: al.AlertRequest) -> int:
        def work(db: sqlite3.Connection) -> int:
            (rid,) = db.execute(qmark(sql.INSERT_REQUEST_SQL), sql.request_params(r)).fetchone()
            return int(rid)

        return await self._run(lambda db: in_tx(db, work))

    async def alert_request(self, request_id: int) -> al.AlertRequest | None:
        rows = await self._rows(sql.REQUEST_SQL, (request_id,))
        return sql.alert_request(rows[0]) if rows else None

    async def pending_alert_requests(self, limit: int = 100) -> list[al.AlertRequest]:
        return [sql.alert_request(r) for r in await self._rows(sql.PENDING_REQUESTS_SQL, (limit,))]

    async def pending_outbox(self, target: str, limit: int = 500) -> list[al.OutboxItem]:
        rows = await self._rows(sql.PENDING_OUTBOX_SQL, (target, limit))
        return [sql.outbox_item(r) for r in rows]

    async def outbox_delivered(self, event_id: str, target: str, at_ns: int) -> None:
        await self._rows(sql.OUTBOX_DELIVERED_SQL, (at_ns, event_id, target))

    async def outbox_failed(self, event_id: str, target: str, error: str) -> None:
        await self._rows(sql.OUTBOX_FAILED_SQL, (error[:1000], event_id, target))

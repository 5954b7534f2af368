"""TimescaleStore's alerting methods (services.store.alerts_sql holds the SQL). Rule versions are
taken under a table lock, so concurrent API replicas never reuse one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from compute.audit_chain import Chain
from compute.errors import PlantPulseError
from services.store import alerts as al
from services.store import alerts_sql as sql
from services.store import chain as ch
from services.store.chain_pg import append_audit, append_chained


class AlertStoreError(PlantPulseError):
    """The database refused or failed an alerting write."""


class TimescaleAlerts:
    """Mixed into TimescaleStore, whose pool and `_fetch` it uses."""

    if TYPE_CHECKING:
        pool: AsyncConnectionPool

        async def _fetch(
            self, sql: str, params: Sequence[Any] | Mapping[str, Any]
        ) -> list[tuple[Any, ...]]: ...

    async def _exec(self, sql: str, params: Sequence[Any]) -> None:
        try:
            async with self.pool.connection() as conn:
                await conn.execute(sql.encode(), params)
        except psycopg.Error as e:
            raise AlertStoreError(f"alert store write failed: {e}") from e

    async def alert_rules_version(self) -> int:
        ((version,),) = await self._fetch(sql.RULES_VERSION_SQL, ())
        return int(version)

    async def alert_rules(self, *, deleted: bool = False) -> list[al.RuleRecord]:
        return [sql.rule_record(r) for r in await self._fetch(sql.RULES_SQL, (deleted,))]

    async def change_alert_rule(self, c: al.RuleChange) -> al.RuleRecord | None:
        try:
            async with self.pool.connection() as conn, conn.transaction():
                # one rule change at a time, so versions only grow
                await conn.execute("LOCK TABLE alert_rules IN SHARE ROW EXCLUSIVE MODE")
                row = await (await conn.execute(sql.RULE_SQL.encode(), (c.rule_id,))).fetchone()
                old = None if row is None else sql.rule_record(row)
                cur = await conn.execute(sql.RULES_VERSION_SQL.encode())
                (version,) = await cur.fetchone() or (0,)
                new = sql.next_rule(c, old, int(version))
                if new is not None:
                    await conn.execute(sql.UPSERT_RULE_SQL.encode(), sql.rule_row(new))
                    await append_audit(conn, [sql.rule_entry(c, old)])
                return new
        except psycopg.Error as e:
            raise AlertStoreError(f"changing alert rule {c.rule_id!r} failed: {e}") from e

    async def alert_points(self) -> dict[al.PointKey, str]:
        return {(r, c): s for r, c, s in await self._fetch(sql.POINTS_SQL, ())}

    async def write_alerting(self, w: al.AlertWrite) -> None:
        try:
            async with self.pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                if w.points:
                    await cur.executemany(sql.UPSERT_POINT_SQL, sql.point_params(w.points, w.at_ns))
                if w.dropped:
                    await cur.executemany(sql.DELETE_POINT_SQL, list(w.dropped))
                chained = [ch.alert_event_fields(e, w.at_ns) for e in w.events]
                await append_chained(conn, Chain.ALERT_EVENTS, chained)
                if w.alerts:
                    rows = [sql.alert_row_params(a) for a in w.alerts]
                    await cur.executemany(sql.UPSERT_ALERT_SQL, rows)
                if w.outbox:
                    await cur.executemany(
                        sql.INSERT_OUTBOX_SQL, [sql.outbox_params(o) for o in w.outbox]
                    )
                if w.outcomes:
                    rows = [sql.outcome_params(o) for o in w.outcomes]
                    await cur.executemany(sql.FINISH_REQUEST_SQL, rows)
        except psycopg.Error as e:
            raise AlertStoreError(f"alerting write failed: {e}") from e

    async def alerts(self, *, closed: bool | None = False, limit: int = 1000) -> list[al.AlertRow]:
        rows = await self._fetch(sql.ALERTS_SQL, sql.alerts_params(closed, limit))
        return [sql.alert_row(r) for r in rows]

    async def alert(self, alert_id: str) -> al.AlertRow | None:
        rows = await self._fetch(sql.ALERT_SQL, (alert_id,))
        return sql.alert_row(rows[0]) if rows else None

    async def alert_history(self, alert_id: str) -> list[al.StoredEvent]:
        return [sql.stored_event(r) for r in await self._fetch(sql.HISTORY_SQL, (alert_id,))]

    async def add_alert_request(self, r: al.AlertRequest) -> int:
        ((rid,),) = await self._fetch(sql.INSERT_REQUEST_SQL, sql.request_params(r))
        return int(rid)

    async def alert_request(self, request_id: int) -> al.AlertRequest | None:
        rows = await self._fetch(sql.REQUEST_SQL, (request_id,))
        return sql.alert_request(rows[0]) if rows else None

    async def pending_alert_requests(self, limit: int = 100) -> list[al.AlertRequest]:
        rows = await self._fetch(sql.PENDING_REQUESTS_SQL, (limit,))
        return [sql.alert_request(r) for r in rows]

    async def pending_outbox(self, target: str, limit: int = 500) -> list[al.OutboxItem]:
        rows = await self._fetch(sql.PENDING_OUTBOX_SQL, (target, limit))
        return [sql.outbox_item(r) for r in rows]

    async def outbox_delivered(self, event_id: str, target: str, at_ns: int) -> None:
        await self._exec(sql.OUTBOX_DELIVERED_SQL, (at_ns, event_id, target))

    async def outbox_failed(self, event_id: str, target: str, error: str) -> None:
        await self._exec(sql.OUTBOX_FAILED_SQL, (error[:1000], event_id, target))

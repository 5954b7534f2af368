"""TimescaleStore's hash-chained appends (audit_log, alert_events), the reads that verify them
and the alert delivery log. A chained append takes the chain's transaction-level advisory lock
first, so the head it reads stays the head until it commits."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import pq
from psycopg_pool import AsyncConnectionPool

from compute.alert_delivery import DeliveryAttempt
from compute.alert_state import AlertEvent
from compute.audit_chain import GENESIS_SHA256, Chain, ChainRow, Scalar, link
from compute.errors import PlantPulseError
from services.store import chain as ch
from services.store.records import AuditEntry


class ChainStoreError(PlantPulseError):
    """PostgreSQL refused or failed a chained append, a chain read or a delivery record."""


async def append_chained(
    conn: psycopg.AsyncConnection[Any], chain: Chain, rows: Sequence[Mapping[str, Scalar]]
) -> None:
    """Link rows onto the chain's head and insert them, in the caller's transaction. Read
    committed: the head is read by a statement that starts after the lock is held, so it sees
    the previous holder's commit; seq values are drawn under the lock, in chain order."""
    if not rows:
        return
    if conn.autocommit and conn.info.transaction_status != pq.TransactionStatus.INTRANS:
        raise ch.ChainAppendError(f"append to {chain} outside a transaction")
    await conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (ch.CHAIN_LOCK, ch.LOCK_IDS[chain]))
    head = await (await conn.execute(ch.head_sql(chain).encode())).fetchone()
    linked = link(chain, rows, GENESIS_SHA256 if head is None else head[0])
    async with conn.cursor() as cur:
        await cur.executemany(ch.insert_sql(chain).encode(), ch.insert_rows(chain, linked))


async def append_audit(conn: psycopg.AsyncConnection[Any], entries: Iterable[AuditEntry]) -> None:
    """Chained audit entries, in the caller's transaction."""
    await append_chained(conn, Chain.AUDIT_LOG, [ch.audit_fields(e) for e in entries])


class TimescaleChain:
    """Mixed into TimescaleStore, whose pool and `_fetch` it uses."""

    if TYPE_CHECKING:
        pool: AsyncConnectionPool

        async def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]: ...

    async def append_alert_events(
        self, events: Sequence[AlertEvent], *, recorded_at_ns: int
    ) -> None:
        rows = [ch.alert_event_fields(e, recorded_at_ns) for e in events]
        try:
            async with self.pool.connection() as conn, conn.transaction():
                await append_chained(conn, Chain.ALERT_EVENTS, rows)
        except psycopg.Error as e:
            raise ChainStoreError(f"recording alert events failed: {e}") from e

    async def chain_page(self, chain: Chain, after_seq: int, limit: int) -> list[ChainRow]:
        rows = await self._fetch(ch.page_sql(chain), (after_seq, limit))
        return [ch.chain_row(chain, row) for row in rows]

    async def chain_origin(self, chain: Chain) -> int:
        rows = await self._fetch(ch.ORIGIN_SQL, (chain.value,))
        return int(rows[0][0]) if rows else 0

    async def record_delivery(self, a: DeliveryAttempt) -> None:
        try:
            async with self.pool.connection() as conn:
                await conn.execute(ch.INSERT_DELIVERY_SQL.encode(), ch.delivery_row(a))
        except psycopg.Error as e:
            raise ChainStoreError(f"recording a delivery attempt failed: {e}") from e

    async def deliveries(self, event_id: str | None = None) -> list[DeliveryAttempt]:
        rows = await self._fetch(ch.DELIVERIES_SQL, (event_id, event_id))
        return [ch.delivery(row) for row in rows]

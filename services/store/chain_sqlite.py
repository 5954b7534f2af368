"""SqliteStore's hash-chained appends (audit_log, alert_events), the reads that verify them and
the alert delivery log. A chained append runs inside the caller's BEGIN IMMEDIATE transaction,
whose write lock keeps every other writer off the chain head until it commits."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

from compute.alert_delivery import DeliveryAttempt
from compute.alert_state import AlertEvent
from compute.audit_chain import GENESIS_SHA256, Chain, ChainRow, Scalar, link
from services.store import chain as ch
from services.store.records import AuditEntry
from services.store.sqlite_tx import in_tx, qmark

T = TypeVar("T")


def append_chained(
    db: sqlite3.Connection, chain: Chain, rows: Sequence[Mapping[str, Scalar]]
) -> None:
    """Link rows onto the chain's head and insert them, in the caller's write transaction."""
    if not rows:
        return
    if not db.in_transaction:
        raise ch.ChainAppendError(f"append to {chain} outside a transaction (BEGIN IMMEDIATE)")
    head = db.execute(ch.head_sql(chain)).fetchone()
    linked = link(chain, rows, GENESIS_SHA256 if head is None else head[0])
    db.executemany(qmark(ch.insert_sql(chain)), ch.insert_rows(chain, linked))


def append_audit(db: sqlite3.Connection, entries: Iterable[AuditEntry]) -> None:
    """Chained audit entries, in the caller's write transaction."""
    append_chained(db, Chain.AUDIT_LOG, [ch.audit_fields(e) for e in entries])


class SqliteChain:
    """Mixed into SqliteStore, whose worker thread runs each call (`_run`)."""

    if TYPE_CHECKING:

        async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    async def append_alert_events(
        self, events: Sequence[AlertEvent], *, recorded_at_ns: int
    ) -> None:
        rows = [ch.alert_event_fields(e, recorded_at_ns) for e in events]
        await self._run(lambda db: in_tx(db, lambda d: append_chained(d, Chain.ALERT_EVENTS, rows)))

    async def chain_page(self, chain: Chain, after_seq: int, limit: int) -> list[ChainRow]:
        def q(db: sqlite3.Connection) -> list[ChainRow]:
            cur = db.execute(qmark(ch.page_sql(chain)), (after_seq, limit))
            return [ch.chain_row(chain, row) for row in cur]

        return await self._run(q)

    async def chain_origin(self, chain: Chain) -> int:
        def q(db: sqlite3.Connection) -> int:
            row = db.execute(qmark(ch.ORIGIN_SQL), (chain.value,)).fetchone()
            return 0 if row is None else int(row[0])

        return await self._run(q)

    async def record_delivery(self, a: DeliveryAttempt) -> None:
        row = ch.delivery_row(a)
        await self._run(lambda db: db.execute(qmark(ch.INSERT_DELIVERY_SQL), row).close())

    async def deliveries(self, event_id: str | None = None) -> list[DeliveryAttempt]:
        def q(db: sqlite3.Connection) -> list[DeliveryAttempt]:
            cur = db.execute(qmark(ch.DELIVERIES_SQL), (event_id, event_id))
            return [ch.delivery(row) for row in cur]

        return await self._run(q)

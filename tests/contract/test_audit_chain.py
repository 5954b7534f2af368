"""The hash-chained audit_log and alert_events over every Store: chains verify, an edit, a
deletion or a row written around the store is found at its row, concurrent writers never fork a
chain, rows from before the chain are left out, and the delivery log is append-only."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from pathlib import Path

import psycopg
import pytest

from compute.aggregate import step
from compute.alert_delivery import DeliveryAttempt, DeliveryOutcome
from compute.alert_rules import AlertLevel, Severity
from compute.alert_state import AlertEvent, AlertPhase, EventKind
from compute.audit_chain import GENESIS_SHA256, Chain, Problem, field_digests, row_sha256
from services.access import Role, issue
from services.audit_verify import ChainReport, verify_chain
from services.store import Store, StoreWrite, chain_pg, chain_sqlite
from services.store.chain import ChainAppendError
from services.store.migrate import upgrade_postgres, upgrade_sqlite
from services.store.records import AuditEntry
from services.store.sqlite import SqliteStore
from services.store.timescale import TimescaleStore


def _entry(i: int, **kw: object) -> AuditEntry:
    fields: dict[str, object] = {
        "at_ns": 1_000 + i,
        "actor": "j.doe",
        "action": "threshold changed",
        "subject": f"room-{i % 3}.dp",
        "old_value": None if i % 2 else str(i),
        "new_value": f"{i + 1} Pa ✓",  # not ASCII: canonical JSON escapes it
        "reason": f"SOP-114 rev {i}",
    }
    fields.update(kw)
    return AuditEntry(**fields)  # type: ignore[arg-type]


def _event(i: int, value: float = 8.5) -> AlertEvent:
    return AlertEvent(
        alert_id=f"a{i // 2}",
        rule_id="dp-min",
        channel_id="cleanroom-a-env.dp",
        kind=EventKind.RAISED if i % 2 == 0 else EventKind.ACKNOWLEDGED,
        level=AlertLevel.ALERT,
        severity=Severity.HIGH,
        ts_ns=10_000 + i,
        value=value,
        message="dp low",
        phase=AlertPhase.ACTIVE,
        notify=i % 2 == 0,
        actor="system" if i % 2 == 0 else "j.doe",
        comment="" if i % 2 == 0 else "door was open",
    )


def _sql(store: Store, *statements: str) -> list[tuple[object, ...]]:
    """Statements on a plain connection beside the store, as someone with database access;
    the last one's rows."""
    rows: list[tuple[object, ...]] = []
    if isinstance(store, SqliteStore):
        with sqlite3.connect(store.path) as db:
            for sql in statements:
                rows = db.execute(sql).fetchall()
        return rows
    assert isinstance(store, TimescaleStore)
    with psycopg.connect(store.dsn, autocommit=True) as conn:
        for sql in statements:
            cur = conn.execute(sql.encode())
            rows = cur.fetchall() if cur.description else []
    return rows


def _tamper(store: Store, table: str, sql: str) -> None:
    """Run an UPDATE or DELETE with the append-only triggers out of the way."""
    if isinstance(store, SqliteStore):
        _sql(
            store,
            f"DROP TRIGGER IF EXISTS {table}_append_only_u",
            f"DROP TRIGGER IF EXISTS {table}_append_only_d",
            sql,
        )
    else:
        _sql(
            store,
            f"ALTER TABLE {table} DISABLE TRIGGER append_only",
            sql,
            f"ALTER TABLE {table} ENABLE TRIGGER append_only",
        )


async def _verify(store: Store, chain: Chain = Chain.AUDIT_LOG, page: int = 3) -> ChainReport:
    return await verify_chain(store, chain, page_rows=page)


async def test_every_audit_writer_appends_to_one_valid_chain(store: Store) -> None:
    for i in range(4):
        await store.append_audit(_entry(i))
    t, _ = issue(name="scada", role=Role.VIEWER, sites=("s1",), created_at_ns=5_000)
    await store.add_token(t, actor="ops", reason="screen")
    await store.revoke_token(t.id, at_ns=5_001, actor="ops", reason="gone")
    r = step([], {}, {}, 60)
    await store.write(
        StoreWrite(
            readings=r.readings,
            buckets=r.buckets,
            state={},
            events=r.events,
            audit=[_entry(10), _entry(11)],
        )
    )
    report = await _verify(store)
    assert report.ok and report.state.checked == 8 and report.state.legacy == 0
    rows = await store.chain_page(Chain.AUDIT_LOG, 0, 100)
    assert rows[0].prev_sha256 == GENESIS_SHA256
    assert all(b.prev_sha256 == a.sha256 for a, b in itertools.pairwise(rows))
    assert report.state.head_sha256 == rows[-1].sha256
    assert [e.at_ns for e in await store.audit_log()][:4] == [1_000, 1_001, 1_002, 1_003]


async def test_an_edited_row_is_found_at_that_row_with_the_field(store: Store) -> None:
    for i in range(6):
        await store.append_audit(_entry(i))
    seq = (await store.chain_page(Chain.AUDIT_LOG, 0, 100))[3].seq
    _tamper(store, "audit_log", f"UPDATE audit_log SET reason = 'no reason' WHERE seq = {seq}")
    report = await _verify(store)
    assert report.broken is not None and report.broken.seq == seq
    assert report.broken.problem is Problem.CONTENT
    assert report.broken.changed_fields == ("reason",)
    assert report.state.checked == 3


async def test_an_edit_with_its_hash_recomputed_breaks_the_next_link(store: Store) -> None:
    for i in range(4):
        await store.append_audit(_entry(i))
    rows = await store.chain_page(Chain.AUDIT_LOG, 0, 100)
    # the attacker rewrites row 1 and its sha256 consistently: row 2 no longer links to it
    fields = {**rows[1].fields, "new_value": "99 Pa"}
    assert rows[1].prev_sha256 is not None
    sha = row_sha256(Chain.AUDIT_LOG, fields, rows[1].prev_sha256)
    digests = field_digests(Chain.AUDIT_LOG, fields)
    _tamper(
        store,
        "audit_log",
        f"UPDATE audit_log SET new_value = '99 Pa', sha256 = '{sha}',"
        f" field_digests = '{digests}' WHERE seq = {rows[1].seq}",
    )
    report = await _verify(store)
    assert report.broken is not None and report.broken.seq == rows[2].seq
    assert report.broken.problem is Problem.LINK
    assert report.broken.expected_sha256 == sha
    assert report.broken.stored_sha256 == rows[1].sha256
    assert f"seq {rows[1].seq} was rewritten" in report.broken.detail


async def test_a_deleted_row_is_found_at_the_row_after_it(store: Store) -> None:
    for i in range(5):
        await store.append_audit(_entry(i))
    rows = await store.chain_page(Chain.AUDIT_LOG, 0, 100)
    _tamper(store, "audit_log", f"DELETE FROM audit_log WHERE seq = {rows[2].seq}")
    report = await _verify(store)
    assert report.broken is not None and report.broken.seq == rows[3].seq
    assert report.broken.problem is Problem.LINK
    assert f"seq {rows[2].seq}.. missing" in report.broken.detail
    # deleting the first rows: the chain no longer starts at the genesis value
    _tamper(store, "audit_log", f"DELETE FROM audit_log WHERE seq <= {rows[1].seq}")
    report = await _verify(store)
    assert report.broken is not None and report.broken.seq == rows[3].seq
    assert "genesis" in report.broken.detail


async def test_a_row_written_around_the_store_is_unchained(store: Store) -> None:
    await store.append_audit(_entry(0))
    _sql(
        store,
        "INSERT INTO audit_log (at_ns, actor, action, subject, reason)"
        " VALUES (5, 'mallory', 'x', 'y', 'z')",
    )
    await store.append_audit(_entry(1))  # chains on from the last chained row
    report = await _verify(store)
    assert report.broken is not None and report.broken.problem is Problem.UNCHAINED
    assert report.broken.seq == (await store.chain_page(Chain.AUDIT_LOG, 0, 9))[1].seq


async def test_alert_events_form_their_own_chain(store: Store) -> None:
    await store.append_audit(_entry(0))
    await store.append_alert_events([_event(0), _event(1, float("nan"))], recorded_at_ns=7)
    await store.append_alert_events([_event(2, -0.0), _event(3, float("inf"))], recorded_at_ns=8)
    report = await _verify(store, Chain.ALERT_EVENTS)
    assert report.ok and report.state.checked == 4
    rows = await store.chain_page(Chain.ALERT_EVENTS, 0, 10)
    assert rows[0].prev_sha256 == GENESIS_SHA256  # not chained onto the audit log
    assert rows[1].fields["comment"] == "door was open" and rows[1].fields["value"] in (None,)
    seq = rows[2].seq
    _tamper(store, "alert_events", f"UPDATE alert_events SET actor = 'x' WHERE seq = {seq}")
    report = await _verify(store, Chain.ALERT_EVENTS)
    assert report.broken is not None and report.broken.seq == seq
    assert report.broken.changed_fields == ("actor",)
    assert (await _verify(store)).ok  # the audit log's chain is untouched


async def test_concurrent_writers_keep_one_chain(store: Store, tmp_path: Path) -> None:
    """Two stores (two connections, or two connection pools) and many tasks appending at once."""
    other: SqliteStore | TimescaleStore
    if isinstance(store, SqliteStore):
        other = SqliteStore(store.path)
    else:
        assert isinstance(store, TimescaleStore)
        other = TimescaleStore(store.dsn, max_connections=4)
    async with other:

        async def writer(s: Store, base: int) -> None:
            for i in range(15):
                if i % 5 == 4:
                    await s.append_alert_events([_event(base + i)], recorded_at_ns=base + i)
                else:
                    await s.append_audit(_entry(base + i))

        await asyncio.gather(*(writer(s, k * 100) for k in range(4) for s in (store, other)))
    audit = await _verify(store, page=7)
    events = await _verify(store, Chain.ALERT_EVENTS, page=7)
    assert audit.ok and audit.state.checked == 8 * 12
    assert events.ok and events.state.checked == 8 * 3


async def test_rows_from_before_the_chain_are_left_out(tmp_path: Path) -> None:
    """A database that had audit entries before migration 0013: the chain starts after them."""
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    upgrade_sqlite(db, upto=12)
    for i in range(3):
        db.execute(
            "INSERT INTO audit_log (at_ns, actor, action, subject, reason)"
            " VALUES (?, 'a', 'b', 'c', 'd')",
            (i,),
        )
    db.close()
    async with SqliteStore(path) as store:
        assert await store.chain_origin(Chain.AUDIT_LOG) == 3
        await store.append_audit(_entry(0))
        await store.append_audit(_entry(1))
        report = await _verify(store)
        assert report.ok and report.state.legacy == 3 and report.state.checked == 2


@pytest.mark.postgres
async def test_rows_from_before_the_chain_are_left_out_on_postgres(pg_dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
        await upgrade_postgres(conn, timescale=False, upto=12)
        await conn.execute(
            "INSERT INTO audit_log (at_ns, actor, action, subject, reason)"
            " VALUES (1, 'a', 'b', 'c', 'd'), (2, 'a', 'b', 'c', 'd')"
        )
        await conn.commit()
    async with TimescaleStore(pg_dsn) as store:
        assert await store.chain_origin(Chain.AUDIT_LOG) == 2
        await store.append_audit(_entry(0))
        report = await _verify(store)
        assert report.ok and report.state.legacy == 2 and report.state.checked == 1


async def test_the_delivery_log_keeps_every_attempt_and_refuses_changes(store: Store) -> None:
    attempts = [
        DeliveryAttempt(
            event_id="a1.raised.5",
            alert_id="a1",
            target="webhook:pager",
            attempt=n,
            outcome=o,
            at_ns=100 + n,
            status_code=code,
            error=err,
            latency_ms=1.5 * n,
        )
        for n, o, code, err in (
            (1, DeliveryOutcome.RETRY, 503, "HTTP 503"),
            (2, DeliveryOutcome.RETRY, None, "RemoteProtocolError: dropped"),
            (3, DeliveryOutcome.DELIVERED, 200, ""),
        )
    ]
    other = DeliveryAttempt(
        event_id="a2.raised.6",
        alert_id="a2",
        target="smtp:email",
        attempt=0,
        outcome=DeliveryOutcome.DROPPED,
        at_ns=200,
        error="queue full",
    )
    for a in [*attempts, other]:
        await store.record_delivery(a)
    assert await store.deliveries("a1.raised.5") == attempts
    assert await store.deliveries() == [*attempts, other]
    for sql in (
        "UPDATE alert_deliveries SET outcome = 'delivered'",
        "DELETE FROM alert_deliveries",
    ):
        with pytest.raises((sqlite3.DatabaseError, psycopg.Error), match="append-only"):
            _sql(store, sql)


@pytest.mark.postgres
async def test_postgres_appenders_wait_for_the_chain_head(pg_dsn: str) -> None:
    """Transactions that append and then linger: without the advisory lock the second would
    read the same head and fork the chain."""
    async with TimescaleStore(pg_dsn) as store:
        await store.append_audit(_entry(0))

    async def appender(k: int) -> None:
        async with await psycopg.AsyncConnection.connect(pg_dsn) as conn:
            for i in range(4):
                async with conn.transaction():
                    await chain_pg.append_audit(conn, [_entry(k * 10 + i)])
                    await asyncio.sleep(0.01 * ((k + i) % 3))  # commit later, lock still held

    async with await psycopg.AsyncConnection.connect(pg_dsn) as first:
        async with first.transaction():
            await chain_pg.append_audit(first, [_entry(1)])
            others = asyncio.gather(*(appender(k) for k in range(1, 6)))
            await asyncio.sleep(0.3)
            assert not others.done()  # every other appender waits for this commit
        await others
    async with TimescaleStore(pg_dsn) as store:
        report = await _verify(store)
        assert report.ok and report.state.checked == 2 + 5 * 4


async def test_sqlite_appenders_wait_for_the_chain_head(tmp_path: Path) -> None:
    async with SqliteStore(tmp_path / "s.sqlite3") as store:
        await store.append_audit(_entry(0))
        db = sqlite3.connect(store.path, isolation_level=None, timeout=10)
        db.execute("BEGIN IMMEDIATE")
        chain_sqlite.append_audit(db, [_entry(1)])
        other = asyncio.create_task(store.append_audit(_entry(2)))
        await asyncio.sleep(0.3)
        assert not other.done()  # its BEGIN IMMEDIATE waits for this transaction
        db.execute("COMMIT")
        db.close()
        await other
        report = await _verify(store)
        assert report.ok and report.state.checked == 3
        with pytest.raises(ChainAppendError, match="outside a transaction"):
            raw = sqlite3.connect(store.path, isolation_level=None)
            try:
                chain_sqlite.append_audit(raw, [_entry(3)])
            finally:
                raw.close()

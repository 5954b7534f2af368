"""The Store's reporting records over every Store: row sums for tariff periods, closed report
snapshots and their restatements, each written with its audit entry and never replaced."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

from compute.aggregate import ChannelSpec, step
from compute.model import NS_PER_S, Quality, ReadingBatch
from compute.rollups import rollup_deltas
from services.store import Store, StoreWrite
from services.store.records import DuplicateRecordError
from services.store.reporting import ReportRestatement, ReportSnapshot, StaleVersionError
from services.store.sqlite import SqliteStore
from services.store.timescale import TimescaleStore

MIN = 60 * NS_PER_S
HOUR = 60 * MIN
SPECS = {k: ChannelSpec(is_counter=True, gap_ns=40 * MIN) for k in ("a.e", "b.e")}


async def test_row_sums_add_the_channels_per_bucket_and_per_hour(store: Store) -> None:
    # a.e: 1 kWh a minute for two hours; b.e: 2 kWh a minute for the first hour
    rows = [("a.e", t * MIN, float(t), Quality.GOOD) for t in range(121)]
    rows += [("b.e", t * MIN, 2.0 * t, Quality.GOOD) for t in range(61)]
    batch = ReadingBatch.from_rows(meter_id="m", receive_ts_ns=0, rows=rows)
    r = step([batch], SPECS, {}, MIN)
    rollups = rollup_deltas(r.buckets, {k: "Asia/Kolkata" for k in SPECS})
    await store.write(
        StoreWrite(
            readings=r.readings,
            buckets=r.buckets,
            state=r.state,
            events=r.events,
            rollups={p.value: d for p, d in rollups.items()},
        )
    )
    minutes = await store.row_sums(["a.e", "b.e"], "buckets", 0, 2 * HOUR)
    assert [x.start_ns for x in minutes] == [t * MIN for t in range(120)]
    assert [x.sum for x in minutes] == pytest.approx([3.0] * 60 + [1.0] * 60)
    assert minutes[0].n == 2 and minutes[60].n == 2 and minutes[61].n == 1  # b.e's last at 60
    hours = await store.row_sums(["a.e", "b.e"], "hour", -HOUR, 3 * HOUR)
    # Kolkata hours start at :30 UTC: 00:00-00:30, 00:30-01:30, 01:30-02:30 UTC
    assert [x.start_ns for x in hours] == [-HOUR // 2, HOUR // 2, 3 * HOUR // 2]
    assert [x.sum for x in hours] == pytest.approx([90.0, 120.0, 30.0])
    assert await store.row_sums(["b.e"], "hour", 2 * HOUR, 3 * HOUR) == []


def _snapshot(**kw: object) -> ReportSnapshot:
    base: dict[str, object] = {
        "report_id": "esg:s:0:10",
        "kind": "esg",
        "site": "s",
        "start_ns": 0,
        "end_ns": 10,
        "created_at_ns": 100,
        "sha256": "a" * 64,
        "content": '{"v": 1}',
        "actor": "token:x (eng)",
        "reason": "FY close",
    }
    return ReportSnapshot(**(base | kw))  # type: ignore[arg-type]


def _restatement(at_ns: int, previous: str, sha: str) -> ReportRestatement:
    return ReportRestatement(
        report_id="esg:s:0:10",
        restated_at_ns=at_ns,
        previous_sha256=previous,
        sha256=sha,
        content=f'{{"v": "{sha[0]}"}}',
        reason="late gas readings",
        actor="token:y (eng)",
    )


async def test_a_report_is_closed_once_and_restated_version_after_version(store: Store) -> None:
    snap = _snapshot()
    assert await store.report_snapshot(snap.report_id) is None
    first = _restatement(200, "a" * 64, "b" * 64)
    with pytest.raises(StaleVersionError, match="not closed"):
        await store.add_report_restatement(first)
    await store.add_report_snapshot(snap)
    assert await store.report_snapshot(snap.report_id) == snap
    with pytest.raises(DuplicateRecordError, match="closed already"):
        await store.add_report_snapshot(_snapshot(sha256="c" * 64))
    await store.add_report_restatement(first)
    with pytest.raises(StaleVersionError, match="latest version is b"):
        await store.add_report_restatement(_restatement(300, "a" * 64, "c" * 64))
    second = _restatement(300, "b" * 64, "c" * 64)
    await store.add_report_restatement(second)
    assert await store.report_restatements(snap.report_id) == [first, second]
    audit = await store.audit_log(f"report:{snap.report_id}")
    assert [(e.action, e.old_value, e.new_value, e.actor) for e in audit] == [
        ("report.close", None, "a" * 64, "token:x (eng)"),
        ("report.restate", "a" * 64, "b" * 64, "token:y (eng)"),
        ("report.restate", "b" * 64, "c" * 64, "token:y (eng)"),
    ]
    assert audit[0].reason == "FY close" and audit[1].reason == "late gas readings"


async def test_snapshots_and_restatements_refuse_updates(store: Store) -> None:
    await store.add_report_snapshot(_snapshot())
    await store.add_report_restatement(_restatement(200, "a" * 64, "b" * 64))
    for table in ("report_snapshots", "report_restatements"):
        for sql in (f"UPDATE {table} SET actor = 'someone else'", f"DELETE FROM {table}"):
            if isinstance(store, SqliteStore):
                with sqlite3.connect(store.path) as db, pytest.raises(sqlite3.DatabaseError) as e:
                    db.execute(sql)
            else:
                assert isinstance(store, TimescaleStore)
                with psycopg.connect(store.dsn) as conn, pytest.raises(psycopg.Error) as e:
                    conn.execute(sql.encode())
            assert f"{table} is append-only" in str(e.value)
    assert (await store.report_snapshot("esg:s:0:10")) == _snapshot()

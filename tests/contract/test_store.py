"""One contract suite over every Store: idempotent readings, additive buckets, state, queries."""

from __future__ import annotations

import copy
import dataclasses
import sqlite3
from pathlib import Path

import psycopg
import pytest

from compute.aggregate import ChannelSpec, ChannelState, step
from compute.denominators import PeriodValue, PeriodValueError
from compute.emissions import Activity, EmissionFactor
from compute.indicators import Denominator
from compute.kernels import CounterEvent
from compute.model import NO_TS, NS_PER_S, Quality, ReadingBatch
from compute.plant import Plant, parse_plant
from compute.rollups import Part, rollup_deltas
from services.access import Role, TokenError, issue
from services.store import ChannelTotal, Revisions, Store, StoreWrite
from services.store.records import AuditEntry, DuplicateRecordError, channel_configs
from services.store.sqlite import SqliteStore
from services.store.timescale import TimescaleStore

MIN = 60 * NS_PER_S
SPECS = {
    "m.energy": ChannelSpec(is_counter=True, gap_ns=40 * NS_PER_S),
    "m.temp": ChannelSpec(is_counter=False),
}


def _batch(rows: list[tuple[str, int, float, Quality]]) -> ReadingBatch:
    return ReadingBatch.from_rows(meter_id="m", receive_ts_ns=10**18, rows=rows)


async def _apply(store: Store, batch: ReadingBatch) -> None:
    """As the aggregator does: readings after their channel's stored state are marked new."""
    state = await store.load_state(list(batch.channel_ids))
    r = step([batch], SPECS, state, MIN)
    await store.write(
        StoreWrite(
            readings=r.readings, buckets=r.buckets, state=r.state, events=r.events, new=r.fresh
        )
    )


async def test_new_and_replayed_readings_mix_in_one_write(store: Store) -> None:
    g = Quality.GOOD
    await _apply(store, _batch([("m.energy", 0, 1.0, g), ("m.energy", 60 * NS_PER_S, 2.0, g)]))
    # a redelivered reading, a late one between them and a new one, in one poll
    late = [(30 * NS_PER_S, 1.5), (0, 1.0), (90 * NS_PER_S, 2.5)]
    await _apply(store, _batch([("m.energy", t, v, g) for t, v in late]))
    around = await store.readings_around("m.energy", 0, 90 * NS_PER_S)
    assert [t // NS_PER_S for t, _, _ in around] == [0, 30, 60, 90]


async def test_buckets_accumulate_across_writes(store: Store) -> None:
    g = Quality.GOOD
    await _apply(store, _batch([("m.energy", 0, 100.0, g), ("m.energy", 30 * NS_PER_S, 101.0, g)]))
    await _apply(
        store, _batch([("m.energy", 90 * NS_PER_S, 104.0, g), ("m.temp", 95 * NS_PER_S, 20.0, g)])
    )
    totals = await store.totals(["m.energy", "m.temp"], 0, 2 * MIN)
    assert totals["m.energy"].sum == pytest.approx(4.0)
    assert totals["m.energy"].n == 3 and totals["m.energy"].buckets == 2
    series = await store.series("m.energy", 0, 2 * MIN)
    assert [b.sum for b in series] == pytest.approx([1.0 + 1.5, 1.5])  # 30-90 s splits evenly
    assert series[0].min == 100.0 and series[0].max == 101.0 and series[0].last == 101.0


async def test_a_replayed_write_changes_nothing(store: Store) -> None:
    batch = _batch(
        [("m.energy", 0, 100.0, Quality.GOOD), ("m.energy", 10 * NS_PER_S, 100.5, Quality.GOOD)]
    )
    await _apply(store, batch)
    await _apply(store, batch)  # redelivered after a crash before the bus commit
    assert (await store.totals(["m.energy"], 0, MIN))["m.energy"].sum == pytest.approx(0.5)
    assert (await store.totals(["m.energy"], 0, MIN))["m.energy"].n == 2


async def test_state_round_trips(store: Store) -> None:
    s = ChannelState(
        last_ts_ns=5, counter_ts_ns=4, counter_value=12.5, held_ts_ns=5, held_value=3.0
    )
    r = step([], SPECS, {}, MIN)
    await store.write(
        StoreWrite(readings=r.readings, buckets=r.buckets, state={"m.energy": s}, events=r.events)
    )
    assert await store.load_state(["m.energy", "m.temp"]) == {"m.energy": s}


async def test_latest_keeps_the_newest_reading_with_quality(store: Store) -> None:
    await _apply(store, _batch([("m.temp", 2 * NS_PER_S, 21.0, Quality.GOOD)]))
    await _apply(store, _batch([("m.temp", 3 * NS_PER_S, float("nan"), Quality.BAD)]))
    (latest,) = await store.latest()
    assert latest.channel_id == "m.temp" and latest.ts_ns == 3 * NS_PER_S
    assert latest.quality == Quality.BAD and latest.value != latest.value


async def test_gauge_buckets_keep_good_sample_statistics(store: Store) -> None:
    g, b = Quality.GOOD, Quality.BAD
    await _apply(
        store, _batch([("m.temp", 1, 20.0, g), ("m.temp", 2, 99.0, b), ("m.temp", 3, 22.0, g)])
    )
    (bucket,) = await store.series("m.temp", 0, MIN)
    assert (bucket.n, bucket.n_good, bucket.sum, bucket.min, bucket.max) == (3, 2, 42.0, 20.0, 22.0)


async def test_ranges_are_half_open(store: Store) -> None:
    g = Quality.GOOD
    await _apply(store, _batch([("m.temp", 0, 1.0, g), ("m.temp", MIN, 2.0, g)]))
    assert [b.bucket_start_ns for b in await store.series("m.temp", 0, MIN)] == [0]
    assert (await store.totals(["m.temp"], MIN, 2 * MIN))["m.temp"].n == 1


async def test_reopening_keeps_the_data(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    async with SqliteStore(path) as store:
        await _apply(store, _batch([("m.temp", 1, 20.0, Quality.GOOD)]))
    async with SqliteStore(path) as store:
        assert len(await store.latest()) == 1


async def test_counter_events_and_estimated_consumption_are_kept(store: Store) -> None:
    g = Quality.GOOD
    await _apply(store, _batch([("m.energy", 0, 100.0, g), ("m.energy", 30 * NS_PER_S, 101.0, g)]))
    # silent for 90 s (the gap threshold is 40 s), then back: 3.0 spread over the gap, estimated
    gap = _batch([("m.energy", 120 * NS_PER_S, 104.0, g), ("m.energy", 125 * NS_PER_S, 50.0, g)])
    await _apply(store, gap)
    await _apply(store, gap)  # redelivered: events are not doubled either
    series = await store.series("m.energy", 0, 3 * MIN)
    assert [b.sum for b in series] == pytest.approx([2.0, 2.0, 0.0])
    assert [b.estimated for b in series] == pytest.approx([1.0, 2.0, 0.0])
    total = (await store.totals(["m.energy"], 0, 3 * MIN))["m.energy"]
    assert (total.sum, total.estimated) == pytest.approx((4.0, 3.0))
    assert await store.counter_events("m.energy", 0, 3 * MIN) == [
        (125 * NS_PER_S, CounterEvent.DROP, 50.0)
    ]


async def test_readings_around_reach_the_good_neighbours(store: Store) -> None:
    g, b = Quality.GOOD, Quality.BAD
    rows = [(0, 1.0, g), (10, 2.0, g), (20, 9.0, b), (30, 3.0, g), (40, 4.0, g), (50, 5.0, g)]
    await _apply(store, _batch([("m.energy", t * NS_PER_S, v, q) for t, v, q in rows]))
    around = await store.readings_around("m.energy", 25 * NS_PER_S, 35 * NS_PER_S)
    assert [t // NS_PER_S for t, _, _ in around] == [10, 20, 30, 40]
    edge = await store.readings_around("m.energy", 0, 5 * NS_PER_S)
    assert [t // NS_PER_S for t, _, _ in edge] == [0, 10]  # nothing good before: from the first


async def test_revisions_are_appended_and_listed(store: Store) -> None:
    r = step(
        [
            _batch(
                [("m.energy", 0, 1.0, Quality.GOOD), ("m.energy", 90 * NS_PER_S, 4.0, Quality.GOOD)]
            )
        ],
        SPECS,
        {},
        MIN,
    )
    for at_ns in (7, 7, 9):  # two corrections at one instant add up
        await store.write(
            StoreWrite(
                readings=r.readings,
                buckets=r.buckets,
                state=r.state,
                events=r.events,
                revisions=Revisions(buckets=r.buckets, revised_at_ns=at_ns),
            )
        )
    got = await store.revisions("m.energy", 0, 2 * MIN)
    assert [(b, at) for b, at, _ in got] == [(0, 7), (0, 9), (MIN, 7), (MIN, 9)]
    assert [s for _, _, s in got] == pytest.approx([4.0, 2.0, 2.0, 1.0])


async def test_queries_take_more_channels_than_a_statement_takes_parameters(store: Store) -> None:
    many = [f"m.c{i}" for i in range(70_000)] + ["m.energy"]  # PostgreSQL allows 65,535
    await _apply(store, _batch([("m.energy", 0, 1.0, Quality.GOOD)]))
    assert list(await store.load_state(many)) == ["m.energy"]
    assert [b.channel_id for b in await store.series_many(many, 0, MIN)] == ["m.energy"]
    assert list(await store.totals(many, 0, MIN)) == ["m.energy"]


async def test_period_values_keep_every_version_and_refuse_ambiguous_periods(
    store: Store,
) -> None:
    day = 86_400 * NS_PER_S

    def units(start_d: int, end_d: int, value: float, at: int) -> PeriodValue:
        return PeriodValue(
            site="s",
            kind=Denominator.UNITS_PRODUCED,
            start_ns=start_d * day,
            end_ns=end_d * day,
            value=value,
            source="MES",
            recorded_at_ns=at,
        )

    await store.add_period_value(units(0, 30, 3000.0, at=1))
    await store.add_period_value(units(0, 30, 3100.0, at=2))  # restated
    await store.add_period_value(units(30, 61, 2900.0, at=3))
    with pytest.raises(PeriodValueError, match="overlaps"):
        await store.add_period_value(units(20, 40, 1.0, at=4))
    got = await store.period_values("s", Denominator.UNITS_PRODUCED, 10 * day, 31 * day)
    assert [(v.start_ns // day, v.value, v.recorded_at_ns) for v in got] == [
        (0, 3000.0, 1),
        (0, 3100.0, 2),
        (30, 2900.0, 3),
    ]
    assert await store.period_values("s", Denominator.HEADCOUNT, 0, 61 * day) == []


async def test_readings_come_back_page_by_page_in_order(store: Store) -> None:
    g = Quality.GOOD
    rows = [(c, t * NS_PER_S, float(t), g) for c in ("m.energy", "m.temp") for t in range(7)]
    await _apply(store, _batch(rows))
    got, after = [], ("", NO_TS)
    while page := await store.readings_page(
        ["m.energy", "m.temp"], NS_PER_S, 6 * NS_PER_S, after, 4
    ):
        got += [(x.channel_id, x.ts_ns // NS_PER_S, x.value) for x in page]
        after = (page[-1].channel_id, page[-1].ts_ns)
    expected = [(c, t, float(t)) for c in ("m.energy", "m.temp") for t in range(1, 6)]
    assert got == expected


async def test_configuration_changes_are_recorded_once_each(store: Store, plant: Plant) -> None:
    configs = channel_configs(plant)
    assert await store.record_config(configs, at_ns=1) == len(plant.channels)
    assert await store.record_config(configs, at_ns=2) == 0  # a restart with the same config
    key = "line-1-meter.energy-import"
    changed = copy.deepcopy(plant.model.model_dump(by_alias=True))
    for m in changed["meters"]:
        if m["id"] == "line-1-meter":
            m["channels"][0]["max_rate_per_h"] = 3000.0
    assert await store.record_config(channel_configs(parse_plant(changed)), at_ns=3) == 1
    history = await store.config_history(key)
    assert [v.recorded_at_ns for v in history] == [1, 3]
    assert '"max_rate_per_h":3000.0' in history[1].config


async def test_factors_and_audit_entries_are_added_never_replaced(store: Store) -> None:
    grid = EmissionFactor(
        id="cn-grid",
        version="2022",
        activity=Activity.ELECTRICITY_GRID,
        region="CN",
        valid_from_ns=0,
        value=0.5703,
        unit="tCO2/MWh",
        source="MEE 2024 notice",
    )
    await store.add_emission_factor(grid, recorded_at_ns=5)
    with pytest.raises(DuplicateRecordError, match="cn-grid@2022"):
        await store.add_emission_factor(grid, recorded_at_ns=6)
    assert await store.emission_factors() == [grid]
    entry = AuditEntry(
        at_ns=7,
        actor="j.doe",
        action="threshold changed",
        subject="cleanroom-a-env.pressure-diff",
        old_value="10",
        new_value="12",
        reason="SOP-114 rev 3",
    )
    await store.append_audit(entry)
    await store.append_audit(dataclasses.replace(entry, subject="other", at_ns=8))
    assert await store.audit_log("cleanroom-a-env.pressure-diff") == [entry]
    assert len(await store.audit_log()) == 2


async def test_append_only_records_refuse_updates_and_deletes(store: Store) -> None:
    entry = AuditEntry(
        at_ns=1, actor="a", action="x", subject="s", old_value=None, new_value="1", reason="r"
    )
    await store.append_audit(entry)
    for sql in ("UPDATE audit_log SET actor = 'b'", "DELETE FROM audit_log"):
        if isinstance(store, SqliteStore):
            with sqlite3.connect(store.path) as db, pytest.raises(sqlite3.DatabaseError) as e:
                db.execute(sql)
        else:
            assert isinstance(store, TimescaleStore)
            with psycopg.connect(store.dsn) as conn, pytest.raises(psycopg.Error) as e:
                conn.execute(sql)
        assert "audit_log is append-only" in str(e.value)
    assert await store.audit_log() == [entry]


def _raw_sql(store: Store, sql: str) -> list[tuple[object, ...]]:
    """Run one statement on a plain connection beside the store; its rows."""
    if isinstance(store, SqliteStore):
        with sqlite3.connect(store.path) as db:
            return db.execute(sql).fetchall()
    assert isinstance(store, TimescaleStore)
    with psycopg.connect(store.dsn) as conn:
        cur = conn.execute(sql.encode())
        return cur.fetchall() if cur.description else []


async def test_tokens_are_kept_as_hashes_and_revoked_once_with_audit_entries(store: Store) -> None:
    t, raw = issue(
        name="scada", role=Role.VIEWER, sites=("s1", "s2"), created_at_ns=10, expires_at_ns=99
    )
    await store.add_token(t, actor="ops", reason="control-room screen")
    assert await store.token(t.id) == t and await store.tokens() == [t]
    assert await store.token("000000000000") is None
    with pytest.raises(DuplicateRecordError, match=t.id):
        await store.add_token(t, actor="ops", reason="again")  # refused whole, audit entry too
    revoked = await store.revoke_token(t.id, at_ns=20, actor="sec", reason="screen replaced")
    assert revoked == dataclasses.replace(t, revoked_at_ns=20) == await store.token(t.id)
    with pytest.raises(TokenError, match="revoked already"):
        await store.revoke_token(t.id, at_ns=30, actor="sec", reason="twice")
    with pytest.raises(TokenError, match="unknown token id 'nope'"):
        await store.revoke_token("nope", at_ns=30, actor="sec", reason="typo")
    log = await store.audit_log(f"api_token:{t.id}")
    assert [(e.action, e.at_ns, e.actor, e.reason) for e in log] == [
        ("token.create", 10, "ops", "control-room screen"),
        ("token.revoke", 20, "sec", "screen replaced"),
    ]
    assert '"role": "viewer"' in str(log[0].new_value) and raw not in str(log)


async def test_tokens_are_revoked_never_changed_or_deleted(store: Store) -> None:
    t, _ = issue(name="erp", role=Role.REPORTING, sites=("*",), created_at_ns=1)
    await store.add_token(t, actor="ops", reason="ERP pull")
    for sql in (
        "UPDATE api_tokens SET role = 'admin'",
        "UPDATE api_tokens SET revoked_at_ns = NULL",
        "DELETE FROM api_tokens",
    ):
        with pytest.raises((sqlite3.DatabaseError, psycopg.Error), match="api_tokens"):
            _raw_sql(store, sql)
    await store.revoke_token(t.id, at_ns=2, actor="ops", reason="ERP retired")
    with pytest.raises((sqlite3.DatabaseError, psycopg.Error), match="only revoked_at_ns"):
        _raw_sql(store, "UPDATE api_tokens SET revoked_at_ns = 3")
    assert await store.tokens() == [dataclasses.replace(t, revoked_at_ns=2)]


async def test_the_raw_token_is_stored_nowhere(store: Store) -> None:
    t, raw = issue(name="bms", role=Role.ADMIN, sites=("*",), created_at_ns=1)
    await store.add_token(t, actor="ops", reason="BMS link")
    await store.revoke_token(t.id, at_ns=2, actor="ops", reason="rotated")
    secret = raw.rsplit("_", 1)[-1][-40:]  # the random part (the id before it is not secret)
    if isinstance(store, SqliteStore):
        tables = _raw_sql(store, "SELECT name FROM sqlite_master WHERE type = 'table'")
        dump = [row for (name,) in tables for row in _raw_sql(store, f'SELECT * FROM "{name}"')]
        files = [p.read_bytes() for p in store.path.parent.glob(store.path.name + "*")]
        assert not any(secret.encode() in f for f in files)
    else:
        tables = _raw_sql(
            store, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
        dump = [
            row for (name,) in tables for row in _raw_sql(store, f'SELECT t::text FROM "{name}" t')
        ]
    assert t.secret_sha256 in str(dump) and secret not in str(dump)


async def _rollups(store: Store, kind: str, start_ns: int, end_ns: int) -> dict[str, ChannelTotal]:
    return await store.plan_totals(
        ["m.energy"], [Part(source=kind, start_ns=start_ns, end_ns=end_ns)]
    )


async def test_rollups_merge_like_buckets(store: Store) -> None:
    g = Quality.GOOD
    hour = 3600 * NS_PER_S
    for rows in ([("m.energy", 0, 1.0, g), ("m.energy", 90 * NS_PER_S, 4.0, g)],
                 [("m.energy", 2 * hour + 60 * NS_PER_S, 10.0, g)]):  # fmt: skip
        state = await store.load_state(["m.energy"])
        r = step([_batch(rows)], SPECS, state, MIN)
        rollups = rollup_deltas(r.buckets, {"m.energy": "Asia/Kolkata", "m.temp": "UTC"})
        await store.write(
            StoreWrite(
                readings=r.readings,
                buckets=r.buckets,
                state=r.state,
                events=r.events,
                rollups={p.value: d for p, d in rollups.items()},
            )
        )
    total = (await store.totals(["m.energy"], 0, 3 * hour))["m.energy"]
    hours = (await _rollups(store, "hour", -hour, 3 * hour))["m.energy"]
    days = (await _rollups(store, "day", -86_400 * NS_PER_S, hour))["m.energy"]
    assert hours.sum == pytest.approx(total.sum) == pytest.approx(9.0)
    assert (hours.n, hours.buckets) == (3, 3)  # Kolkata hours start at :30 UTC
    assert days.sum == pytest.approx(9.0) and days.buckets == 1
    month = -(5 * 3600 + 1800) * NS_PER_S  # 1 January 1970 00:00 in Kolkata
    months = await _rollups(store, "month", month, month + 1)
    assert months["m.energy"].sum == pytest.approx(9.0) and months["m.energy"].buckets == 1
    # a plan's parts in one query: the first Kolkata hour from its roll-up, the rest from buckets
    first_hour = Part(source="hour", start_ns=-hour // 2, end_ns=hour // 2)
    rest = Part(source="buckets", start_ns=hour // 2, end_ns=3 * hour)
    (mixed,) = (await store.plan_totals(["m.energy", "m.temp"], [first_hour, rest])).values()
    in_rest = (await store.totals(["m.energy"], rest.start_ns, rest.end_ns))["m.energy"].buckets
    assert (mixed.sum, mixed.n, mixed.buckets) == (pytest.approx(9.0), 3, 1 + in_rest)

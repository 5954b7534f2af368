"""The Store contract for external and manual data: meter replacements written with a step,
emission-factor versions checked in the store's transaction, and audited period values."""

from __future__ import annotations

import dataclasses
import sqlite3

import psycopg
import pytest

from compute.aggregate import no_events, no_readings
from compute.buckets import no_buckets
from compute.denominators import PeriodValue, PeriodValueError
from compute.emissions import Activity, EmissionFactor
from compute.factor_versions import FactorConflict, FactorVersion
from compute.indicators import Denominator
from compute.meter_events import ReplacementEvent
from compute.model import NS_PER_S
from services.store import Store, StoreWrite
from services.store.external import replacement_entry
from services.store.sqlite import SqliteStore
from services.store.timescale import TimescaleStore

DAY = 86_400 * NS_PER_S


EVENT = ReplacementEvent(
    channel_id="m.energy",
    at_ns=5 * DAY,
    old_final=1234.5,
    new_initial=0.25,
    reason="WO-77: meter swapped",
    actor="token:abc (eng)",
    recorded_at_ns=6 * DAY,
)


def _only(e: ReplacementEvent, at_ns: int) -> StoreWrite:
    keys: tuple[str, ...] = ()
    return StoreWrite(
        readings=no_readings(keys),
        buckets=no_buckets(keys),
        state={},
        events=no_events(keys),
        replacements=[e],
        audit=[replacement_entry(e, at_ns)],
    )


async def test_replacements_are_written_with_a_step_and_never_replaced(store: Store) -> None:
    await store.write(_only(EVENT, at_ns=7))
    other = dataclasses.replace(EVENT, old_final=1.0, reason="a replayed, altered copy")
    await store.write(dataclasses.replace(_only(other, at_ns=8), audit=[]))
    later = dataclasses.replace(EVENT, channel_id="m.gas", at_ns=9 * DAY)
    await store.write(_only(later, at_ns=9))
    assert await store.meter_replacements() == [EVENT, later]
    assert await store.meter_replacements("m.energy") == [EVENT]
    assert await store.meter_replacements("nope") == []
    (entry,) = await store.audit_log("m.energy")
    assert entry.actor == EVENT.actor and entry.reason == EVENT.reason
    assert entry.new_value == f'{{"at_ns":{5 * DAY},"old_final":1234.5,"new_initial":0.25}}'
    sql = "DELETE FROM meter_replacements"
    if isinstance(store, SqliteStore):
        with (
            sqlite3.connect(store.path) as db,
            pytest.raises(sqlite3.DatabaseError, match="append"),
        ):
            db.execute(sql)
    else:
        assert isinstance(store, TimescaleStore)
        with psycopg.connect(store.dsn) as conn, pytest.raises(psycopg.Error, match="append"):
            conn.execute(sql)


def _grid(version: str, value: float, start_d: int, end_d: int | None, at: int) -> FactorVersion:
    return FactorVersion(
        factor=EmissionFactor(
            id="cn-grid",
            version=version,
            activity=Activity.ELECTRICITY_GRID,
            region="CN",
            valid_from_ns=start_d * DAY,
            valid_to_ns=None if end_d is None else end_d * DAY,
            value=value,
            unit="tCO2/MWh",
            source="MEE",
        ),
        recorded_at_ns=at,
    )


async def test_factor_versions_are_checked_in_the_transaction_and_audited(store: Store) -> None:
    v1 = _grid("2021", 0.5810, 0, 365, at=1)
    await store.add_factor_version(v1, actor="eng", reason="notice 2023")
    overlapping = _grid("2022", 0.5703, 300, None, at=2)
    with pytest.raises(FactorConflict, match="overlaps cn-grid@2021"):
        await store.add_factor_version(overlapping, actor="eng", reason="x")
    with pytest.raises(FactorConflict, match="exists"):
        await store.add_factor_version(
            dataclasses.replace(v1, recorded_at_ns=3), actor="e", reason=""
        )
    v2 = dataclasses.replace(overlapping, supersedes=("cn-grid@2021",), recorded_at_ns=4)
    await store.add_factor_version(v2, actor="eng", reason="2022 data published")
    assert await store.factor_versions() == [v1, v2]
    assert [f.ref for f in await store.emission_factors()] == ["cn-grid@2021", "cn-grid@2022"]
    first, second = await store.audit_log("emission-factor:cn-grid")
    assert first.old_value is None and second.reason == "2022 data published"
    assert second.old_value is not None and '"ref":"cn-grid@2021"' in second.old_value
    assert second.new_value is not None and '"value":0.5703' in second.new_value


async def test_factors_added_the_older_way_are_versions_superseding_nothing(store: Store) -> None:
    v = _grid("2021", 0.5810, 0, 365, at=5)
    await store.add_emission_factor(v.factor, recorded_at_ns=5)
    assert await store.factor_versions() == [v]


async def test_audited_period_values_name_who_and_a_restatement_needs_a_reason(
    store: Store,
) -> None:
    v = PeriodValue(
        site="s",
        kind=Denominator.UNITS_PRODUCED,
        start_ns=0,
        end_ns=30 * DAY,
        value=3000.0,
        source="MES",
        recorded_at_ns=1,
    )
    await store.add_period_value(v, actor="token:abc (eng)")
    again = dataclasses.replace(v, value=3100.0, recorded_at_ns=2)
    with pytest.raises(PeriodValueError, match="needs a reason"):
        await store.add_period_value(again, actor="token:abc (eng)")
    await store.add_period_value(again, actor="token:abc (eng)", reason="MES recount")
    got = await store.period_values("s", Denominator.UNITS_PRODUCED, 0, 30 * DAY)
    assert [x.value for x in got] == [3000.0, 3100.0]
    first, second = [e for e in await store.audit_log() if e.subject.startswith("period-value")]
    assert (first.action, first.old_value, first.new_value) == (
        "period value recorded",
        None,
        "3000.0",
    )
    assert (second.action, second.old_value, second.new_value) == (
        "period value restated",
        "3000.0",
        "3100.0",
    )
    assert second.reason == "MES recount" and first.reason == "from MES"

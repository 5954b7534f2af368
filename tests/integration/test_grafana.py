"""deploy/grafana: the provisioning files parse, and every panel's and variable's SQL runs on the
real PostgreSQL schema, after Grafana's macro and variable substitution, and finds the data."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from compute import codec
from compute.model import NS_PER_S, Quality, ReadingBatch
from compute.plant import Plant
from services.aggregator import Aggregator
from services.bus import Message
from services.bus.memory import MemoryBus
from services.store.records import channel_configs
from services.store.timescale import TimescaleStore

GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "plantpulse-site.json"
T0 = 1_795_406_400 * NS_PER_S  # 2026-11-23 12:00 in Shanghai
FROM_NS, TO_NS = T0 - 3600 * NS_PER_S, T0 + 3600 * NS_PER_S
ROOM = ["cleanroom-a-env.pressure-diff", "cleanroom-a-env.temperature"]
_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / NS_PER_S, UTC).isoformat().replace("+00:00", "Z")


def _seconds(interval: str) -> int:
    m = re.fullmatch(r"'?(\d+)([smhd])'?", interval.strip())
    assert m, interval
    return int(m[1]) * _UNITS_S[m[2]]


def _call(sql: str, name: str) -> tuple[int, int, list[str]] | None:
    """The first call of macro `name`: its start, its end and its top-level arguments."""
    start = sql.find(f"$__{name}(")
    if start < 0:
        return None
    i = start + len(name) + 4
    depth, args, arg = 1, [], ""
    while depth:
        ch = sql[i]
        depth += (ch == "(") - (ch == ")")
        if depth and ch == "," and depth == 1:
            args.append(arg.strip())
            arg = ""
        elif depth:
            arg += ch
        i += 1
    return start, i, [*args, arg.strip()] if arg.strip() else args


def grafana_sql(sql: str, *, site: str, channels: list[str], interval: str = "1m") -> str:
    """The SQL Grafana's PostgreSQL data source sends: variables, then its macros."""
    sql = sql.replace("$__interval", interval).replace("$site", site)
    sql = sql.replace("$channel", ",".join(f"'{c}'" for c in channels))
    expand = {
        "timeFilter": lambda a: f"{a[0]} BETWEEN '{_iso(FROM_NS)}' AND '{_iso(TO_NS)}'",
        "timeFrom": lambda a: f"'{_iso(FROM_NS)}'",
        "timeTo": lambda a: f"'{_iso(TO_NS)}'",
        "timeGroupAlias": lambda a: (
            f'floor(extract(epoch from {a[0]})/{_seconds(a[1])})*{_seconds(a[1])} AS "time"'
        ),
        "timeGroup": lambda a: (
            f"floor(extract(epoch from {a[0]})/{_seconds(a[1])})*{_seconds(a[1])}"
        ),
        "unixEpochNanoFilter": lambda a: f"{a[0]} >= {FROM_NS} AND {a[0]} <= {TO_NS}",
        "unixEpochNanoFrom": lambda a: str(FROM_NS),
        "unixEpochNanoTo": lambda a: str(TO_NS),
    }
    for name, render in expand.items():
        while (found := _call(sql, name)) is not None:
            start, end, args = found
            sql = sql[:start] + render(args) + sql[end:]
    assert "$" not in sql, f"unexpanded macro or variable in:\n{sql}"
    return sql


def test_provisioning_files_parse_and_agree() -> None:
    (source,) = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "plantpulse.yaml").read_text()
    )["datasources"]
    assert source["jsonData"]["database"] == "${PLANTPULSE_PG_DATABASE}"
    assert source["secureJsonData"]["password"] == "${PLANTPULSE_PG_PASSWORD}"
    (provider,) = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "plantpulse.yaml").read_text()
    )["providers"]
    assert provider["type"] == "file"
    d = _dashboard()
    assert len({p["id"] for p in d["panels"]}) == len(d["panels"]) >= 8
    for p in d["panels"]:
        assert p["datasource"]["uid"] == source["uid"], p["title"]
        (target,) = p["targets"]
        assert target["rawQuery"] and target["rawSql"].strip(), p["title"]
    assert {v["name"] for v in d["templating"]["list"]} == {"site", "channel"}


def _messages() -> list[Message]:
    rows = [
        ("main-incomer.energy-import", T0 + t * NS_PER_S, 1000.0 + t / 36, Quality.GOOD)
        for t in range(0, 600, 2)
    ]
    gas = [
        ("steam-gas.volume", T0 + t * NS_PER_S, 5.0 + t / 3600, Quality.GOOD)
        for t in range(0, 600, 2)
    ]
    room = [(key, T0 + t * NS_PER_S, 15.0, Quality.GOOD) for t in range(0, 600, 2) for key in ROOM]
    batches = [
        ReadingBatch.from_rows(meter_id="main-incomer", receive_ts_ns=T0, rows=rows),
        ReadingBatch.from_rows(meter_id="steam-gas", receive_ts_ns=T0, rows=gas),
        ReadingBatch.from_rows(meter_id="cleanroom-a-env", receive_ts_ns=T0, rows=room),
    ]
    return [
        Message(topic="t", partition=0, offset=i, key=b"m", value=codec.encode(b))
        for i, b in enumerate(batches)
    ]


@pytest.mark.postgres
async def test_every_panel_query_runs_on_the_store_schema(pg_dsn: str, plant: Plant) -> None:
    async with TimescaleStore(pg_dsn, migrate=True) as store:
        await store.record_config(channel_configs(plant), T0)
        agg = Aggregator(plant, MemoryBus(), store, group="g", clock_ns=lambda: T0 + 700 * NS_PER_S)
        await agg.handle(_messages())
    with psycopg.connect(pg_dsn, autocommit=True, connect_timeout=10) as conn:
        conn.execute(
            "INSERT INTO alert_events (alert_id, channel_id, rule_id, event, ts_ns, value, actor,"
            " recorded_at_ns) VALUES ('a1', %s, 'dp-min', 'raised', %s, 8.2, 'alerting', %s)",
            (ROOM[0], T0 + 60 * NS_PER_S, T0 + 60 * NS_PER_S),
        )
        d = _dashboard()
        for variable in d["templating"]["list"]:
            got = conn.execute(grafana_sql(variable["query"], site="suzhou", channels=ROOM))
            assert got.fetchall(), variable["name"]
        rows = {}
        for p in d["panels"]:
            sql = grafana_sql(p["targets"][0]["rawSql"], site="suzhou", channels=ROOM)
            try:
                rows[p["title"]] = conn.execute(sql).fetchall()
            except psycopg.Error as e:
                raise AssertionError(f"panel {p['title']!r}: {e}\n{sql}") from e
    assert all(rows.values()), [t for t, r in rows.items() if not r]
    power = rows["Site electricity power (kW)"]
    assert all(kw == pytest.approx(100.0, rel=0.05) for _, kw in power[1:-1])  # 1000/36 kWh/h
    (day,) = rows["Electricity per site-local day (kWh)"]
    assert day[1] == pytest.approx(598 / 36, rel=0.01)
    latest = {r[0]: r for r in rows["Latest values"]}
    assert latest[ROOM[0]][2] == 15.0 and latest[ROOM[0]][4] == "good"
    assert {r[1] for r in rows["Cleanroom environment"]} == set(ROOM)

"""The alert API with the alerting process running on MemoryBus and SqliteStore: acknowledgement
(refused without a comment), shelving, the alert list and history, audited rule changes that
take effect, and a dry run over a known history."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from compute import codec
from compute.model import NS_PER_S, Quality, ReadingBatch
from compute.plant import Plant
from services.access import Role
from services.aggregator import Aggregator
from services.alerting import Alerting
from services.api import create_app
from services.bus import Message
from services.bus.memory import MemoryBus
from services.store.sqlite import SqliteStore
from tests.tokens import bearer, token_for
from tests.unit.services.alert_support import (
    TOPIC,
    committed_all,
    load_rules,
    publish_series,
    running,
    settings_for,
    until,
)

TEMP = "cleanroom-a-env.temperature"
RULES = """
rules:
  - id: temp-high
    type: high_limit
    scope: {channel: cleanroom-a-env.temperature}
    alert: 25
    action: 28
    clear: 24
    severity: high
"""


class Env:
    def __init__(self, store: SqliteStore, bus: MemoryBus, api: httpx.AsyncClient) -> None:
        self.store, self.bus, self.api = store, bus, api
        self.tokens: dict[Role, dict[str, str]] = {}

    def as_(self, role: Role) -> dict[str, str]:
        return self.tokens[role]


@pytest.fixture
async def env(plant: Plant, tmp_path: Path) -> AsyncIterator[tuple[Env, Alerting]]:
    async with SqliteStore(tmp_path / "s.sqlite3") as store:
        bus = MemoryBus()
        await load_rules(store, RULES)
        app = create_app(plant, store, token_cache_s=0)
        transport = httpx.ASGITransport(app=app)
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://t", timeout=20) as api,
            running(plant, bus, store, settings_for(None)) as alerting,
        ):
            e = Env(store, bus, api)
            for role in Role:
                e.tokens[role] = bearer(await token_for(store, role))
            yield e, alerting


def t0() -> int:
    return (time.time_ns() // NS_PER_S - 600) * NS_PER_S


async def _raised(e: Env, values: list[float] | None = None) -> str:
    await publish_series(e.bus, TEMP, values or [20.0, 26.0, 26.5], t0_ns=t0())
    await until(lambda: committed_all(e.bus), what="the readings")
    for _ in range(100):
        got = (await e.api.get("/v1/alerts", headers=e.as_(Role.VIEWER))).json()
        if got:
            return str(got[0]["id"])
        await asyncio.sleep(0.05)
    raise AssertionError("no alert")


async def test_an_acknowledgement_needs_a_comment_and_records_who_and_why(
    env: tuple[Env, Alerting],
) -> None:
    e, _ = env
    aid = await _raised(e)
    url = f"/v1/alerts/{aid}/ack"
    op = e.as_(Role.OPERATOR)
    for body in ({}, {"comment": ""}, {"comment": "   "}):
        r = await e.api.post(url, json=body, headers=op)
        assert r.status_code == 422, r.text
        assert r.json()["detail"] == (
            "comment: an acknowledgement needs a comment (GMP: who, when and why)"
        )
    assert (
        await e.api.post(url, json={"comment": "x"}, headers=e.as_(Role.VIEWER))
    ).status_code == 403
    r = await e.api.post(url, json={"comment": "door seal replaced"}, headers=op)
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["status"] == "applied" and done["alert"]["phase"] == "acknowledged"
    assert done["alert"]["acknowledged_by"].endswith("(test operator)")
    assert done["alert"]["ack_comment"] == "door seal replaced"
    again = await e.api.post(url, json={"comment": "again"}, headers=op)
    assert again.status_code == 409 and "already acknowledged" in again.json()["detail"]
    detail = (await e.api.get(f"/v1/alerts/{aid}", headers=e.as_(Role.VIEWER))).json()
    assert [h["event"] for h in detail["history"]] == ["raised", "acknowledged"]
    assert detail["history"][1]["comment"] == "door seal replaced"
    active = await e.api.get("/v1/alerts?state=active", headers=e.as_(Role.VIEWER))
    acked = await e.api.get("/v1/alerts?state=acknowledged", headers=e.as_(Role.VIEWER))
    assert active.json() == [] and [a["id"] for a in acked.json()] == [aid]


async def test_the_alert_list_filters_by_state_site_and_severity(
    env: tuple[Env, Alerting],
) -> None:
    e, _ = env
    aid = await _raised(e)
    v = e.as_(Role.VIEWER)
    got = (await e.api.get("/v1/alerts?site=suzhou&severity=high,critical", headers=v)).json()
    assert [a["id"] for a in got] == [aid]
    assert got[0]["limit"] == 25.0 and got[0]["level"] == "alert" and got[0]["site"] == "suzhou"
    assert (await e.api.get("/v1/alerts?severity=low", headers=v)).json() == []
    bad = await e.api.get("/v1/alerts?severity=urgent", headers=v)
    assert bad.status_code == 422 and "unknown severity 'urgent'" in bad.json()["detail"]
    assert (await e.api.get("/v1/alerts/nope", headers=v)).status_code == 404


async def test_shelving_needs_a_future_expiry_and_a_reason(env: tuple[Env, Alerting]) -> None:
    e, _ = env
    aid = await _raised(e)
    op = e.as_(Role.OPERATOR)
    url = f"/v1/alerts/{aid}/shelve"
    no_reason = await e.api.post(url, json={"duration_s": 600}, headers=op)
    assert no_reason.status_code == 422 and no_reason.json()["detail"].startswith("comment:")
    past = await e.api.post(
        url, json={"until": "2020-01-01T00:00:00Z", "comment": "maintenance"}, headers=op
    )
    assert past.status_code == 422 and "future" in past.json()["detail"]
    r = await e.api.post(url, json={"duration_s": 600, "comment": "sensor swap"}, headers=op)
    assert r.status_code == 200 and r.json()["alert"]["shelved_until"] is not None
    r = await e.api.post(f"/v1/alerts/{aid}/unshelve", json={"comment": "done"}, headers=op)
    assert r.status_code == 200 and r.json()["alert"]["shelved_until"] is None


async def test_a_rule_change_through_the_api_is_audited_and_takes_effect(
    env: tuple[Env, Alerting],
) -> None:
    e, alerting = env
    eng = e.as_(Role.ENGINEER)
    rule = {"type": "high_limit", "scope": {"channel": TEMP}, "alert": 22, "clear": 21}
    bad = await e.api.put(
        "/v1/alert-rules/temp-high",
        json={"rule": {**rule, "clear": 23, "colour": "red"}, "reason": "tighter"},
        headers=eng,
    )
    assert bad.status_code == 422
    assert bad.json()["detail"]["issues"] == [{"path": "rule.colour", "message": "unknown key"}]
    no_reason = await e.api.put(
        "/v1/alert-rules/temp-high", json={"rule": rule, "reason": " "}, headers=eng
    )
    assert no_reason.status_code == 422 and "reason" in no_reason.json()["detail"]
    operator = await e.api.put(
        "/v1/alert-rules/temp-high",
        json={"rule": rule, "reason": "x"},
        headers=e.as_(Role.OPERATOR),
    )
    assert operator.status_code == 403
    r = await e.api.put(
        "/v1/alert-rules/temp-high",
        json={"rule": rule, "reason": "CAPA-118: room A runs cooler since the HVAC retrofit"},
        headers=eng,
    )
    assert r.status_code == 200, r.text
    assert r.json()["rule"]["alert"] == 22 and r.json()["channels"] == [TEMP]
    (entry,) = [
        x
        for x in await e.store.audit_log("alert_rule:temp-high")
        if x.action == "alert_rule.update"
    ]
    assert json.loads(entry.old_value or "")["alert"] == 25
    assert json.loads(entry.new_value or "")["alert"] == 22
    assert entry.actor.endswith("(test engineer)") and entry.reason.startswith("CAPA-118")
    await until(lambda: alerting.engine.rules_version == r.json()["version"], what="the reload")
    aid = await _raised(e, [20.0, 23.0, 23.5])  # above the new 22, below the old 25
    got = (await e.api.get(f"/v1/alerts/{aid}", headers=e.as_(Role.VIEWER))).json()
    assert got["rule_id"] == "temp-high" and got["limit"] == 22
    listed = (await e.api.get("/v1/alert-rules", headers=eng)).json()
    assert [x["id"] for x in listed] == ["temp-high"]

    gone = await e.api.request(
        "DELETE", "/v1/alert-rules/temp-high", json={"reason": "room decommissioned"}, headers=eng
    )
    assert gone.status_code == 204
    assert (await e.api.get("/v1/alert-rules", headers=eng)).json() == []
    deleted = [
        x
        for x in await e.store.audit_log("alert_rule:temp-high")
        if x.action == "alert_rule.delete"
    ]
    assert deleted and deleted[0].new_value is None and deleted[0].reason == "room decommissioned"
    for _ in range(100):
        closed = (await e.api.get(f"/v1/alerts/{aid}", headers=e.as_(Role.VIEWER))).json()
        if closed["phase"] == "closed":
            break
        await asyncio.sleep(0.05)
    assert closed["phase"] == "closed" and closed["history"][-1]["event"] == "cleared"


async def test_a_dry_run_counts_the_alerts_a_known_history_would_have_raised(
    plant: Plant, tmp_path: Path
) -> None:
    # Three excursions above 25 degC lasting 2 minutes and two blips of 20 s, in 1 h at 10 s.
    start = 1_767_225_600 * NS_PER_S  # 2026-01-01T00:00Z
    values = [21.0] * 360
    for at in (30, 120, 250):
        values[at : at + 12] = [26.0] * 12
    for at in (80, 200):
        values[at : at + 2] = [26.0] * 2
    rows = [(TEMP, start + i * 10 * NS_PER_S, v, Quality.GOOD) for i, v in enumerate(values)]
    async with SqliteStore(tmp_path / "s.sqlite3") as store:
        agg = Aggregator(plant, MemoryBus(), store, group="g")
        msg = codec.encode(
            ReadingBatch.from_rows(meter_id="cleanroom-a-env", receive_ts_ns=0, rows=rows)
        )
        await agg.handle([Message(topic=TOPIC, partition=0, offset=0, key=b"m", value=msg)])
        app = create_app(plant, store, token_cache_s=0)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as api:
            eng = bearer(await token_for(store, Role.ENGINEER))
            body = {
                "rule": {
                    "id": "temp-trial",
                    "type": "high_limit",
                    "scope": {"channel": TEMP},
                    "alert": 25,
                    "clear": 24,
                    "on_delay_s": 60,
                },
                "start": "2026-01-01T08:00:00",  # naive: site time, Asia/Shanghai (UTC+8)
                "end": "2026-01-01T09:00:00",
            }
            r = await api.post("/v1/alert-rules/dry-run", json=body, headers=eng)
            assert r.status_code == 200, r.text
            out = r.json()
            bad = await api.post(
                "/v1/alert-rules/dry-run", json={**body, "end": body["start"]}, headers=eng
            )
        assert await store.alert_rules() == []  # a dry run stores no rule
    assert out["alerts"] == 3 and out["readings"] == 360
    assert out["summary"] == "this rule would have raised 3 alerts in 0.0417 days"
    raised = [x["raised"] for x in out["items"]]
    assert raised == [
        "2026-01-01T08:06:00+08:00",
        "2026-01-01T08:21:00+08:00",
        "2026-01-01T08:42:40+08:00",
    ]
    assert all(x["cleared"] is not None for x in out["items"])
    assert bad.status_code == 422

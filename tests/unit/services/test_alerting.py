"""The alerting process on MemoryBus and SqliteStore with a real webhook receiver: a flapping
signal pages once, an on-delay swallows a door opening, and a process killed at each step of
store commit -> bus commit -> delivery keeps its alerts and neither loses nor repeats a page."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from compute.alert_eval import evaluate
from compute.alert_rules import AlertRule, Binding, Limit, LimitDirection, Scope
from compute.alert_series import Series
from compute.alert_state import acknowledge, dump_state, load_state, new_state, shelve
from compute.meter_events import KIND_HEADER, REPLACEMENT_KIND
from compute.model import NS_PER_S
from compute.plant import Plant
from services.alert_engine import state_json
from services.alerting import readings_of
from services.alerting_setup import hub_sink
from services.bus import Message
from services.bus.memory import MemoryBus, _Sub
from services.live_hub import LiveHub
from services.store.alerts import AlertWrite
from services.store.sqlite import SqliteStore
from tests.unit.services.alert_support import (
    TOPIC,
    batch,
    committed_all,
    load_rules,
    publish_series,
    receiver,
    running,
    settings_for,
    until,
)

TEMP = "cleanroom-a-env.temperature"
DP = "cleanroom-a-env.pressure-diff"
RULES = """
rules:
  - id: temp-high
    type: high_limit
    scope: {channel: cleanroom-a-env.temperature}
    alert: 25
    clear: 24
    severity: high
  - id: dp-low
    type: low_limit
    scope: {channel: cleanroom-a-env.pressure-diff}
    alert: 12
    clear: 13
    on_delay_s: 60
    severity: high
"""


def t0() -> int:
    return (time.time_ns() // NS_PER_S - 600) * NS_PER_S  # ten minutes ago, whole seconds


async def test_a_flapping_signal_through_the_process_pages_once(
    plant: Plant, tmp_path: Path
) -> None:
    # Around the alert level, twice below the clear level: hysteresis holds the alert, and a
    # latching alert that returns unacknowledged comes back as the same one, paging nobody.
    flaps = [20.0, 26.0, 24.5, 25.5, 24.2, 26.1, 23.0, 25.9, 24.6, 26.3, 23.5, 25.2, 24.8, 25.7]
    async with receiver() as hook, SqliteStore(tmp_path / "s.sqlite3") as store:
        bus = MemoryBus()
        await load_rules(store, RULES)
        hub = LiveHub()
        async with running(plant, bus, store, settings_for(hook.url), live=hub_sink(hub)):
            await publish_series(bus, TEMP, flaps, t0_ns=t0(), per_batch=3)
            await until(lambda: committed_all(bus), what="the readings to be handled")
            await until(lambda: len(hook.posts) >= 1, what="the page")
            await asyncio.sleep(0.5)
        alerts = await store.alerts(closed=None)
        assert len(hook.posts) == 1 and hook.posts[0]["kind"] == "raised"
        assert [a.rule_id for a in alerts] == ["temp-high"]
        history = [e.event for e in await store.alert_history(alerts[0].alert_id)]
        assert history == ["raised", *["cleared", "reactivated"] * 2]
        assert hub.active_alerts() and '"state":"active"' in hub.active_alerts()[0].json


async def test_the_on_delay_swallows_a_door_opening_but_not_a_lasting_loss(
    plant: Plant, tmp_path: Path
) -> None:
    door = [15.0] * 10 + [8.0] * 20 + [15.0] * 10  # 20 s below 12 Pa: the door was open
    lost = [8.0] * 90 + [15.0] * 5  # 90 s: the cascade is gone
    async with receiver() as hook, SqliteStore(tmp_path / "s.sqlite3") as store:
        bus = MemoryBus()
        await load_rules(store, RULES)
        start = t0()
        async with running(plant, bus, store, settings_for(hook.url)):
            last = await publish_series(bus, DP, door, t0_ns=start)
            await until(lambda: committed_all(bus), what="the door opening")
            await asyncio.sleep(0.3)
            assert hook.posts == [] and await store.alerts(closed=None) == []
            await publish_series(bus, DP, lost, t0_ns=last + NS_PER_S)
            await until(lambda: len(hook.posts) == 1, what="the page")
        (a,) = await store.alerts(closed=None)
        assert a.raised_ts_ns == last + 61 * NS_PER_S  # 60 s after the loss began
        assert hook.posts[0]["alert_id"] == a.alert_id


class _Freezing(SqliteStore):
    """A store that, once armed, hangs in the alerting write (before or after its commit) or
    in marking a delivery: the moment the process is killed."""

    def __init__(self, path: Path, where: str) -> None:
        super().__init__(path)
        self.where = where
        self.frozen = asyncio.Event()

    async def _hang(self) -> None:
        self.frozen.set()
        await asyncio.Event().wait()

    async def write_alerting(self, w: AlertWrite) -> None:
        if self.where == "before store commit" and w.outbox and not self.frozen.is_set():
            await self._hang()
        await super().write_alerting(w)
        if self.where == "after store commit" and w.outbox and not self.frozen.is_set():
            await self._hang()

    async def outbox_delivered(self, event_id: str, target: str, at_ns: int) -> None:
        webhook = target.startswith("webhook:")
        if self.where == "after delivery" and webhook and not self.frozen.is_set():
            await self._hang()
        await super().outbox_delivered(event_id, target, at_ns)


class _FreezingBus(MemoryBus):
    """A bus whose first commit carrying the breach goes through, then hangs: killed after the
    bus commit, before the notifications went out."""

    def __init__(self) -> None:
        super().__init__()
        self.frozen = asyncio.Event()
        self.armed = False

    @contextlib.asynccontextmanager
    async def subscribe(self, topic: str, group: str) -> AsyncIterator[_Sub]:
        async with super().subscribe(topic, group) as sub:
            commit = sub.commit

            async def frozen(messages: Sequence[Message]) -> None:
                await commit(messages)
                if self.armed and not self.frozen.is_set():
                    self.frozen.set()
                    await asyncio.Event().wait()

            sub.commit = frozen  # type: ignore[method-assign]
            yield sub


async def _restart_case(plant: Plant, tmp_path: Path, where: str) -> tuple[Any, Any, Any]:
    """Raise an alert, kill the process at `where`, restart it, then send more breaching data."""
    path = tmp_path / "s.sqlite3"
    bus = _FreezingBus()
    start = t0()
    async with receiver() as hook:
        store = _Freezing(path, where if where != "after bus commit" else "")
        async with store:
            await load_rules(store, RULES)
            bus.armed = where == "after bus commit"
            async with running(plant, bus, store, settings_for(hook.url)) as first:
                last = await publish_series(bus, TEMP, [20.0, 26.0, 26.5], t0_ns=start)
                freezes = bus.frozen if bus.armed else store.frozen
                await asyncio.wait_for(freezes.wait(), 10)
                if where == "after delivery":
                    await until(lambda: len(hook.posts) == 1, what="the first page")
                killed_with = first.engine.open_alerts()
            # killed; a new process on the same bus and store
            async with (
                SqliteStore(path) as again,
                running(plant, bus, again, settings_for(hook.url)),
            ):
                await until(lambda: len(hook.posts) >= 1, what="the owed page")
                await publish_series(bus, TEMP, [26.2, 25.8, 26.9], t0_ns=last + NS_PER_S)
                await until(lambda: committed_all(bus), what="the readings after the restart")
                await asyncio.sleep(0.5)
                kept = await again.alerts(closed=False)
        return hook, kept, killed_with


async def test_killed_before_the_store_commit_the_replay_pages_once(
    plant: Plant, tmp_path: Path
) -> None:
    hook, kept, killed_with = await _restart_case(plant, tmp_path, "before store commit")
    assert killed_with == []  # nothing stored: the batch comes again and raises the same alert
    assert len(hook.posts) == 1 and len(kept) == 1
    assert hook.posts[0]["alert_id"] == kept[0].alert_id


async def test_killed_after_the_store_commit_the_owed_page_goes_out_once(
    plant: Plant, tmp_path: Path
) -> None:
    hook, kept, _ = await _restart_case(plant, tmp_path, "after store commit")
    assert len(hook.posts) == 1 and len(kept) == 1 and kept[0].phase == "active"
    assert hook.posts[0]["alert_id"] == kept[0].alert_id


async def test_killed_after_the_bus_commit_the_owed_page_goes_out_once(
    plant: Plant, tmp_path: Path
) -> None:
    hook, kept, _ = await _restart_case(plant, tmp_path, "after bus commit")
    assert len(hook.posts) == 1 and len(kept) == 1 and kept[0].phase == "active"


async def test_killed_between_delivery_and_its_record_the_repeat_carries_the_same_key(
    plant: Plant, tmp_path: Path
) -> None:
    # The one window of the guarantee: the receiver took it, the process died before writing
    # so down. The page is sent again with the same Idempotency-Key, for the receiver to drop.
    hook, kept, _ = await _restart_case(plant, tmp_path, "after delivery")
    assert len(hook.posts) == 2 and len(hook.unique) == 1 and len(kept) == 1


def test_the_fast_state_json_is_dump_state_as_json() -> None:
    rule = AlertRule(
        id="r",
        scope=Scope(channel="m.c"),
        condition=Limit(direction=LimitDirection.HIGH, alert=25.0, action=28.0, clear=24.0),
        escalate_after_s=60,
    )
    b = Binding(rule=rule, channel_id="m.c")
    ts = np.arange(5, dtype=np.int64) * NS_PER_S
    s = Series(
        ts_ns=ts, value=np.array([20.0, 26, 29, float("nan"), 27]), quality=np.zeros(5, np.uint8)
    )
    st = new_state(b, since_ns=0)
    states = [st]
    st, events = evaluate(b, st, s, now_ns=5 * NS_PER_S)
    states.append(st)
    st, _ = acknowledge(
        st, b, alert_id=events[0].alert_id, who="li", when_ns=6 * NS_PER_S, comment="ok"
    )
    states.append(st)
    st, _ = shelve(st, b, who="li", when_ns=7 * NS_PER_S, until_ns=9 * NS_PER_S, comment="swap")
    states.append(st)
    for x in states:
        assert json.loads(state_json(x)) == json.loads(json.dumps(dump_state(x)))
        assert load_state(json.loads(state_json(x))) == x


async def test_a_failing_webhook_is_retried_until_it_takes_the_page(
    plant: Plant, tmp_path: Path
) -> None:
    # The notifier gives up after two attempts (503 each); the outbox keeps the page owed and
    # sends it again after a backoff, until the receiver takes it: once.
    async with receiver(fail_first=3) as hook, SqliteStore(tmp_path / "s.sqlite3") as store:
        bus = MemoryBus()
        await load_rules(store, RULES)
        async with running(plant, bus, store, settings_for(hook.url)):
            await publish_series(bus, TEMP, [20.0, 26.0], t0_ns=t0())
            await until(lambda: len(hook.posts) == 1, timeout_s=20, what="the page")
            await asyncio.sleep(0.3)
        owed = await store.pending_outbox("webhook:127.0.0.1")
        attempts = [
            a.outcome.value
            for a in await store.deliveries()
            if a.target.startswith("webhook:") and a.attempt
        ]
    assert hook.refused == 3 and len(hook.posts) == 1 and owed == []
    assert attempts == ["retry", "failed", "retry", "delivered"]


def test_control_and_undecodable_messages_are_not_readings() -> None:
    def msg(offset: int, value: bytes, headers: tuple[tuple[str, bytes], ...] = ()) -> Message:
        return Message(
            topic=TOPIC, partition=0, offset=offset, key=b"m", value=value, headers=headers
        )

    now = 1_767_225_600 * NS_PER_S
    good = batch("cleanroom-a-env", [(TEMP, now, 21.0), (DP, now, 15.0)], receive_ns=now + 5)
    control = ((KIND_HEADER, REPLACEMENT_KIND),)
    series, complete, newest = readings_of(
        [msg(0, good), msg(1, b"garbage"), msg(2, good, control)]
    )
    assert sorted(series) == [DP, TEMP] and newest == now
    assert complete == {TEMP: now + 5, DP: now + 5}
    assert readings_of([msg(0, b"garbage")]) == ({}, {}, 0)

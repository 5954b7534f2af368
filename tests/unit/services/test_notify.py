"""The Dispatcher's routing, filters and bounded per-target queues, and the alerts-topic notifier
on MemoryBus."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from compute.alert_delivery import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    DeliveryAttempt,
    DeliveryOutcome,
    event_id,
    payload_bytes,
    sign,
)
from compute.alert_rules import AlertLevel, Severity
from compute.alert_state import AlertEvent, AlertPhase, EventKind
from compute.errors import PlantPulseError
from services.alert_settings import AlertSettings
from services.bus.memory import MemoryBus
from services.metrics import Registry
from services.notify import DeliveryError, Dispatcher, MeteredLog, Route
from services.notify_bus import ALERTS_TOPIC, BusNotifier
from services.notify_setup import open_dispatcher
from services.notify_webhook import WebhookNotifier, WebhookTarget


def event(i: int, *, notify: bool = True, severity: Severity = Severity.HIGH) -> AlertEvent:
    return AlertEvent(
        alert_id=f"a{i}",
        rule_id="dp-min",
        channel_id="room-a.dp" if i % 2 == 0 else "boiler.gas",
        kind=EventKind.RAISED if notify else EventKind.CLEARED,
        level=AlertLevel.ALERT,
        severity=severity,
        ts_ns=1_000 + i,
        value=float(i),
        message=f"event {i}",
        phase=AlertPhase.ACTIVE,
        notify=notify,
    )


class ListLog:
    def __init__(self) -> None:
        self.rows: list[DeliveryAttempt] = []

    async def record_delivery(self, a: DeliveryAttempt) -> None:
        self.rows.append(a)

    def of(self, target: str) -> list[tuple[str, DeliveryOutcome]]:
        return [(a.event_id, a.outcome) for a in self.rows if a.target == target]


class Recording:
    def __init__(self, name: str, log: ListLog) -> None:
        self._name = name
        self.log = log
        self.got: list[AlertEvent] = []

    @property
    def name(self) -> str:
        return self._name

    async def deliver(self, e: AlertEvent) -> None:
        self.got.append(e)
        await self.log.record_delivery(
            DeliveryAttempt(
                event_id=event_id(e),
                alert_id=e.alert_id,
                target=self.name,
                attempt=1,
                outcome=DeliveryOutcome.DELIVERED,
                at_ns=0,
            )
        )


class Hung(Recording):
    async def deliver(self, e: AlertEvent) -> None:
        self.got.append(e)
        await asyncio.Event().wait()


class Failing(Recording):
    async def deliver(self, e: AlertEvent) -> None:
        self.got.append(e)
        raise DeliveryError("refused")


SITES = {"room-a.dp": "suzhou", "boiler.gas": "shanghai"}


async def test_a_hung_target_fills_its_queue_and_drops_while_others_deliver() -> None:
    log, registry = ListLog(), Registry()
    hung, fast = Hung("webhook:hung", log), Recording("webhook:fast", log)
    routes = [Route(notifier=hung), Route(notifier=fast)]
    async with Dispatcher(routes, log, queue_size=2, registry=registry, drain_s=0.1) as d:
        await d.dispatch(event(0))
        await asyncio.sleep(0.01)  # the hung worker takes it and hangs
        for i in range(1, 6):
            await d.dispatch(event(i))
            await asyncio.sleep(0.001)  # events come apart in time: the fast target keeps up
        await asyncio.wait_for(d.queues[1].join(), 5)
        assert [e.alert_id for e in fast.got] == [f"a{i}" for i in range(6)]
        assert len(hung.got) == 1 and d.queues[0].qsize() == 2
    dropped = [eid for eid, o in log.of("webhook:hung") if o is DeliveryOutcome.DROPPED]
    assert dropped == [event_id(event(i)) for i in (3, 4, 5)]
    assert d.dropped.value(target="webhook:hung") == 3
    assert d.dropped.value(target="webhook:fast") == 0
    assert "plantpulse_alert_queue_dropped_total" in registry.render()


async def test_only_paging_events_are_sent_and_every_skip_is_logged() -> None:
    log = ListLog()
    pager = Recording("webhook:pager", log)
    critical = Recording("smtp:oncall", log)
    suzhou = Recording("webhook:suzhou", log)
    topic = Recording("bus:plantpulse.alerts", log)
    routes = [
        Route(notifier=pager),
        Route(notifier=critical, severities=frozenset({Severity.CRITICAL})),
        Route(notifier=suzhou, sites=frozenset({"suzhou"})),
        Route(notifier=topic, only_notify=False),
    ]
    events = [event(0), event(1), event(2, notify=False), event(4, severity=Severity.CRITICAL)]
    async with Dispatcher(routes, log, sites=SITES) as d:
        for e in events:
            await d.dispatch(e)
        await d.drain()
    assert [e.alert_id for e in pager.got] == ["a0", "a1", "a4"]
    assert [e.alert_id for e in critical.got] == ["a4"]
    assert [e.alert_id for e in suzhou.got] == ["a0", "a4"]
    assert [e.alert_id for e in topic.got] == ["a0", "a1", "a2", "a4"]
    skipped = {(a.target, a.alert_id): a.error for a in log.rows if a.outcome == "skipped"}
    assert skipped[("webhook:pager", "a2")] == "not a paging event (notify is false)"
    assert skipped[("smtp:oncall", "a0")] == "severity high filtered out"
    assert skipped[("webhook:suzhou", "a1")] == "site shanghai filtered out"
    # every (event, target) pair has a row: delivered or skipped
    assert len(log.rows) == len(events) * len(routes)


async def test_a_failing_target_keeps_its_worker() -> None:
    log = ListLog()
    bad = Failing("webhook:bad", log)
    async with Dispatcher([Route(notifier=bad)], log) as d:
        await d.dispatch(event(0))
        await d.dispatch(event(2))
        await d.drain()
    assert len(bad.got) == 2


async def test_target_names_are_unique() -> None:
    log = ListLog()
    with pytest.raises(ValueError, match="unique"):
        Dispatcher([Route(notifier=Recording("x", log)), Route(notifier=Recording("x", log))], log)


async def test_the_metered_log_counts_and_survives_a_failing_store() -> None:
    class Broken:
        async def record_delivery(self, a: DeliveryAttempt) -> None:
            raise PlantPulseError("store down")

    registry = Registry()
    m = MeteredLog(Broken(), registry)
    a = DeliveryAttempt(
        event_id="e",
        alert_id="a",
        target="webhook:x",
        attempt=1,
        outcome=DeliveryOutcome.DELIVERED,
        at_ns=1,
        latency_ms=12.0,
    )
    await m.record_delivery(a)
    assert m.records.value(target="webhook:x", outcome="delivered") == 1
    assert m.log_errors.value() == 1 and m.latency.count == 1


async def test_the_bus_notifier_publishes_every_transition_to_the_alerts_topic() -> None:
    bus, log = MemoryBus(partitions=2), ListLog()
    notifier = BusNotifier(bus, log, sites=SITES)
    assert notifier.name == "bus:plantpulse.alerts"
    async with Dispatcher([Route(notifier=notifier, only_notify=False)], log) as d:
        await d.dispatch(event(0))
        await d.dispatch(event(0, notify=False))
        await d.drain()
    async with bus.subscribe(ALERTS_TOPIC, "test") as sub:
        messages = await sub.poll(10, 1.0)
    assert [m.key for m in messages] == [b"a0", b"a0"]  # one alert, one partition, in order
    docs = [json.loads(m.value) for m in messages]
    assert [doc["kind"] for doc in docs] == ["raised", "cleared"]
    assert docs[0]["site"] == "suzhou" and docs[0]["event_id"] == event_id(event(0))
    assert dict(messages[0].headers)["event_id"] == event_id(event(0)).encode()
    assert [a.outcome for a in log.rows] == [DeliveryOutcome.DELIVERED] * 2


def test_the_readme_recipe_verifies_a_webhook_signature() -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    code = readme.split("<!-- webhook-verify -->\n```python\n", 1)[1].split("```", 1)[0]
    scope: dict[str, Any] = {}
    exec(code, scope)  # the snippet as documented, stdlib only
    secret, body = b"whsec-0123456789abcdef", payload_bytes(event(0))
    hook = WebhookNotifier(
        WebhookTarget(name="x", url="http://127.0.0.1/", secret=secret), None, ListLog()
    )
    h = hook.headers(event(0), body, 1)
    assert h[IDEMPOTENCY_HEADER] == event_id(event(0))
    verified = scope["verified"]
    assert verified(secret, body, h[TIMESTAMP_HEADER], h[SIGNATURE_HEADER])
    assert not verified(secret, body + b"x", h[TIMESTAMP_HEADER], h[SIGNATURE_HEADER])
    assert not verified(b"another-secret-xx", body, h[TIMESTAMP_HEADER], h[SIGNATURE_HEADER])
    old = str(int(h[TIMESTAMP_HEADER]) - 600)
    assert not verified(secret, body, old, sign(secret, int(old), body))  # a replay


async def test_the_targets_come_from_the_alert_settings() -> None:
    s = AlertSettings.model_validate(
        {
            "webhooks": [
                {"url": "https://pager.example/h", "secret": "s" * 16, "severities": ["critical"]},
                {"name": "qa", "url": "http://qa.local/", "secret": "t" * 16, "sites": ["sz"]},
            ],
            "smtp": {"host": "mail.local", "recipients": ["ehs@plant.example"]},
            "queue_size": 7,
        }
    )
    log = ListLog()
    async with open_dispatcher(s, log, bus=MemoryBus()) as d:
        names = [r.notifier.name for r in d.routes]
        assert names == [
            "webhook:pager.example",
            "webhook:qa",
            "smtp:email",
            "bus:plantpulse.alerts",
        ]
        assert d.routes[0].severities == {Severity.CRITICAL} and d.routes[1].sites == {"sz"}
        assert [r.only_notify for r in d.routes] == [True, True, True, False]
        assert all(q.maxsize == 7 for q in d.queues)
    with pytest.raises(ValueError, match="unknown severity"):
        AlertSettings.model_validate(
            {"webhooks": [{"url": "http://a/", "secret": "s" * 16, "severities": ["urgent"]}]}
        )
    with pytest.raises(ValueError, match="at least 16"):
        AlertSettings.model_validate({"webhooks": [{"url": "http://a/", "secret": "short"}]})
    with pytest.raises(ValueError, match="http"):
        AlertSettings.model_validate({"webhooks": [{"url": "ftp://a/", "secret": "s" * 16}]})

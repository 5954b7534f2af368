"""The paging routes' filters, the metered delivery log, the README's signature recipe and the
routes built from the alert settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
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
from services import notify_setup
from services.alert_settings import AlertSettings
from services.metrics import Registry
from services.notify import MeteredLog, Route
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


SITES = {"room-a.dp": "suzhou", "boiler.gas": "shanghai"}


def test_a_route_takes_paging_events_of_its_severities_and_sites() -> None:
    log = ListLog()
    hook = WebhookNotifier(
        WebhookTarget(name="x", url="http://127.0.0.1/", secret=b"s" * 16), None, log
    )
    pager = Route(notifier=hook)
    critical = Route(notifier=hook, severities=frozenset({Severity.CRITICAL}))
    suzhou = Route(notifier=hook, sites=frozenset({"suzhou"}))

    def reason(r: Route, e: AlertEvent) -> str:
        return r.skip_reason(e, SITES[e.channel_id])

    assert reason(pager, event(0)) == reason(pager, event(1)) == ""
    assert reason(pager, event(2, notify=False)) == "not a paging event (notify is false)"
    assert reason(critical, event(0)) == "severity high filtered out"
    assert reason(critical, event(4, severity=Severity.CRITICAL)) == ""
    assert reason(suzhou, event(1)) == "site shanghai filtered out"
    assert reason(suzhou, event(0)) == ""


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
    async with httpx.AsyncClient() as client:
        rs = notify_setup.routes(s, client=client, log=ListLog())
    assert [r.notifier.name for r in rs] == ["webhook:pager.example", "webhook:qa", "smtp:email"]
    assert rs[0].severities == {Severity.CRITICAL} and rs[1].sites == {"sz"}
    with pytest.raises(ValueError, match="unknown severity"):
        AlertSettings.model_validate(
            {"webhooks": [{"url": "http://a/", "secret": "s" * 16, "severities": ["urgent"]}]}
        )
    with pytest.raises(ValueError, match="at least 16"):
        AlertSettings.model_validate({"webhooks": [{"url": "http://a/", "secret": "short"}]})
    with pytest.raises(ValueError, match="http"):
        AlertSettings.model_validate({"webhooks": [{"url": "ftp://a/", "secret": "s" * 16}]})

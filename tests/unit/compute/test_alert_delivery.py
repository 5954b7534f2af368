"""Delivery as data: event ids, payloads, the webhook signature recipe and retry timing."""

from __future__ import annotations

import json
import math

from compute.alert_delivery import (
    RetryPolicy,
    email_body,
    event_id,
    iso_utc,
    parse_retry_after,
    payload,
    payload_bytes,
    retry_delay_s,
    retryable_status,
    sign,
    signature_ok,
)
from compute.alert_rules import AlertLevel, Severity
from compute.alert_state import AlertEvent, AlertPhase, EventKind
from compute.model import NS_PER_S

T0 = 1_740_816_000 * NS_PER_S  # 2025-03-01T08:00:00Z


def event(**kw: object) -> AlertEvent:
    base: dict[str, object] = {
        "alert_id": "9f2c",
        "rule_id": "dp-min",
        "channel_id": "cleanroom-a-env.dp",
        "kind": EventKind.RAISED,
        "level": AlertLevel.ACTION,
        "severity": Severity.CRITICAL,
        "ts_ns": T0 + 250_000_000,
        "value": 4.5,
        "message": "dp low",
        "phase": AlertPhase.ACTIVE,
        "notify": True,
    }
    return AlertEvent(**{**base, **kw})  # type: ignore[arg-type]


def test_event_ids_name_the_transition() -> None:
    assert event_id(event()) == f"9f2c.raised.{T0 + 250_000_000}"
    shelf = event(alert_id="", kind=EventKind.SHELVED)
    assert event_id(shelf).startswith("dp-min/cleanroom-a-env.dp.shelved.")


def test_the_payload_is_plain_json() -> None:
    p = payload(event(value=math.nan), site="suzhou")
    assert p["time"] == "2025-03-01T08:00:00.250Z" == iso_utc(T0 + 250_000_000)
    assert p["value"] is None and p["severity"] == "critical" and p["level"] == "action"
    assert p["shelved_until_ns"] is None and p["site"] == "suzhou"
    assert json.loads(payload_bytes(event(), site=None))["value"] == 4.5


def test_the_signature_recipe_accepts_fresh_and_refuses_replayed_or_altered() -> None:
    body, secret, ts = payload_bytes(event()), b"0123456789abcdef", 1_740_816_000
    sig = sign(secret, ts, body)
    assert sig.startswith("sha256=") and len(sig) == 7 + 64
    assert signature_ok(secret, body, str(ts), sig, now_s=ts + 10)
    assert not signature_ok(secret, body, str(ts), sig, now_s=ts + 301)  # replayed later
    assert not signature_ok(secret, body + b" ", str(ts), sig, now_s=ts)
    assert not signature_ok(secret, body, str(ts + 1), sig, now_s=ts)  # timestamp is signed
    assert not signature_ok(b"other-secret-xxxxx", body, str(ts), sig, now_s=ts)


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    p = RetryPolicy(base_delay_s=1.0, max_delay_s=5.0)
    assert [retry_delay_s(p, n, 0.0) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 2.5]
    assert all(retry_delay_s(p, n, 0.999) <= min(5.0, 2.0 ** (n - 1)) for n in range(1, 9))
    assert retry_delay_s(p, 1, 0.5) == 0.75


def test_which_statuses_are_retried() -> None:
    assert [
        c for c in (400, 401, 404, 408, 409, 422, 429, 500, 502, 503) if retryable_status(c)
    ] == [
        408,
        429,
        500,
        502,
        503,
    ]


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert parse_retry_after("7", 0) == 7.0
    assert parse_retry_after("Sat, 01 Mar 2025 08:00:30 GMT", 1_740_816_000) == 30.0
    assert parse_retry_after("soon", 0) is None and parse_retry_after(None, 0) is None


def test_email_text_has_the_summary_and_the_comment() -> None:
    text = email_body(event(kind=EventKind.ACKNOWLEDGED, actor="j.doe", comment="door"), site="sz")
    assert text.startswith("dp low\n") and "site: sz" in text and "by j.doe: door" in text

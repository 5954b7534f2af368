"""Alert delivery as data: an event's id, its JSON payload and e-mail text, the webhook
signature, retry delays and the delivery log's record. Pure: no I/O, clock or randomness.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from compute.alert_state import AlertEvent
from compute.model import NO_TS, NS_PER_S

PAYLOAD_SCHEMA = 1
SIGNATURE_HEADER = "X-PlantPulse-Signature"  # "sha256=" + hex HMAC-SHA256(secret, signed)
TIMESTAMP_HEADER = "X-PlantPulse-Timestamp"  # Unix seconds of the attempt, inside the signature
IDEMPOTENCY_HEADER = "Idempotency-Key"  # the event id: equal on every retry of one event
SIGNATURE_TOLERANCE_S = 300  # receivers refuse a timestamp further than this from their clock


class DeliveryOutcome(enum.StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"  # this attempt failed and another follows
    FAILED = "failed"  # refused for good (a 4xx), or the last attempt failed
    DROPPED = "dropped"  # the target's queue was full: never attempted
    SKIPPED = "skipped"  # not for this target: notify is false, or its filters exclude it


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryAttempt:
    """One row of the delivery log. attempt is 1 for a first try, 0 when none was made."""

    event_id: str
    alert_id: str
    target: str
    attempt: int
    outcome: DeliveryOutcome
    at_ns: int
    status_code: int | None = None
    error: str = ""
    latency_ms: float = 0.0


def event_id(e: AlertEvent) -> str:
    """alert_id.kind.ts_ns: the same on every retry and every replay of one transition. A shelf
    change with no open alert has no alert_id and takes rule/channel instead."""
    owner = e.alert_id or f"{e.rule_id}/{e.channel_id}"
    return f"{owner}.{e.kind.value}.{e.ts_ns}"


def iso_utc(ts_ns: int) -> str:
    """ISO 8601 in UTC with milliseconds, e.g. 2025-03-01T08:00:00.250Z."""
    s, ns = divmod(ts_ns, NS_PER_S)
    dt = datetime.fromtimestamp(s, UTC).replace(microsecond=ns // 1000)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def payload(e: AlertEvent, *, site: str | None = None) -> dict[str, Any]:
    """The JSON document a webhook receives and the alerts topic carries."""
    finite = e.value if math.isfinite(e.value) else None
    return {
        "schema": PAYLOAD_SCHEMA,
        "event_id": event_id(e),
        "alert_id": e.alert_id,
        "rule_id": e.rule_id,
        "channel_id": e.channel_id,
        "site": site,
        "kind": e.kind.value,
        "level": e.level.name.lower(),
        "severity": e.severity.name.lower(),
        "phase": e.phase.value,
        "ts_ns": e.ts_ns,
        "time": iso_utc(e.ts_ns),
        "value": finite,
        "message": e.message,
        "notify": e.notify,
        "actor": e.actor,
        "comment": e.comment,
        "shelved_until_ns": None if e.until_ns == NO_TS else e.until_ns,
    }


def payload_bytes(e: AlertEvent, *, site: str | None = None) -> bytes:
    return json.dumps(payload(e, site=site), separators=(",", ":"), allow_nan=False).encode()


def signed_content(timestamp_s: int, body: bytes) -> bytes:
    return f"{timestamp_s}.".encode() + body


def sign(secret: bytes, timestamp_s: int, body: bytes) -> str:
    """The X-PlantPulse-Signature value: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">."""
    mac = hmac.new(secret, signed_content(timestamp_s, body), hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def signature_ok(
    secret: bytes,
    body: bytes,
    timestamp: str,
    signature: str,
    now_s: float,
    tolerance_s: float = SIGNATURE_TOLERANCE_S,
) -> bool:
    """The receiver's check (the README's recipe): a fresh timestamp and a matching HMAC,
    compared in constant time."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs(now_s - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Exponential backoff with jitter: attempt n waits between half and all of
    min(max_delay_s, base_delay_s * 2**(n-1)). A Retry-After is honoured up to max_delay_s;
    a longer one ends the retries."""

    max_attempts: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0


def retry_delay_s(policy: RetryPolicy, attempt: int, u: float) -> float:
    """The wait after failed attempt `attempt` (1-based); u in [0, 1) is the jitter draw."""
    cap = min(policy.max_delay_s, policy.base_delay_s * 2.0 ** (attempt - 1))
    return cap / 2 + u * cap / 2


def retryable_status(status_code: int) -> bool:
    """Timeouts, throttling and server errors pass; another 4xx will not change on retry."""
    return status_code in (408, 425, 429) or status_code >= 500


def parse_retry_after(value: str | None, now_s: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now_s)


def email_subject(e: AlertEvent, *, site: str | None = None) -> str:
    where = f"{site} " if site else ""
    return f"[plantpulse {e.severity.name}] {where}{e.channel_id} {e.kind.value}: {e.rule_id}"


def email_body(e: AlertEvent, *, site: str | None = None) -> str:
    """Plain text: the summary line, then one field a line."""
    p = payload(e, site=site)
    lines = [e.message, ""]
    for key in ("time", "site", "channel_id", "rule_id", "kind", "severity", "level", "phase"):
        if p[key] is not None:
            lines.append(f"{key}: {p[key]}")
    lines.append(f"value: {p['value']}")
    if e.actor and e.comment:
        lines.append(f"by {e.actor}: {e.comment}")
    lines += [f"alert: {e.alert_id or '-'}", f"event: {p['event_id']}"]
    return "\n".join(lines) + "\n"

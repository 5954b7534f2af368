"""WebhookNotifier: POSTs an alert event's JSON, signed with the target's HMAC secret, and
retries connection errors, timeouts, 408/425/429 and 5xx (honouring Retry-After); another 4xx
is final. Every call has a timeout; the caller owns the httpx.AsyncClient."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httpx

from compute.alert_delivery import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    RetryPolicy,
    event_id,
    parse_retry_after,
    payload_bytes,
    retryable_status,
    sign,
)
from compute.alert_state import AlertEvent
from compute.model import NS_PER_S
from services.notify import ClockNs, DeliveryLog, Sleep, TryResult, deliver_with_retries

ATTEMPT_HEADER = "X-PlantPulse-Attempt"
_ERROR_BODY_CHARS = 200  # of a refusal's body, kept in the delivery log
WEBHOOK_RETRIES = RetryPolicy()


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookTarget:
    name: str  # logged as webhook:<name>
    url: str
    secret: bytes = field(repr=False)
    timeout_s: float = 5.0  # per attempt: connect, write, read and pool
    policy: RetryPolicy = WEBHOOK_RETRIES


class WebhookNotifier:
    """One webhook. The body is the same on every attempt; the timestamp and its signature are
    the attempt's own; the Idempotency-Key (the event id) lets receivers drop repeats."""

    def __init__(
        self,
        target: WebhookTarget,
        client: httpx.AsyncClient,
        log: DeliveryLog,
        *,
        sites: Mapping[str, str] | None = None,
        clock_ns: ClockNs = time.time_ns,
        sleep: Sleep = asyncio.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.target = target
        self.client = client
        self.log = log
        self.sites = dict(sites or {})
        self.clock_ns = clock_ns
        self.sleep = sleep
        self.jitter = jitter

    @property
    def name(self) -> str:
        return f"webhook:{self.target.name}"

    def headers(self, event: AlertEvent, body: bytes, attempt: int) -> dict[str, str]:
        ts = self.clock_ns() // NS_PER_S
        return {
            "Content-Type": "application/json",
            "User-Agent": "plantpulse-webhook/1",
            TIMESTAMP_HEADER: str(ts),
            SIGNATURE_HEADER: sign(self.target.secret, ts, body),
            IDEMPOTENCY_HEADER: event_id(event),
            ATTEMPT_HEADER: str(attempt),
        }

    async def _post(self, event: AlertEvent, body: bytes, attempt: int) -> TryResult:
        t = self.target
        try:
            r = await self.client.post(
                t.url,
                content=body,
                headers=self.headers(event, body, attempt),
                timeout=httpx.Timeout(t.timeout_s),
            )
        except httpx.TimeoutException as e:
            return TryResult(ok=False, retryable=True, error=f"timeout: {type(e).__name__}")
        except httpx.TransportError as e:  # refused, reset, dropped mid-response
            return TryResult(ok=False, retryable=True, error=f"{type(e).__name__}: {e}")
        if r.is_success:
            return TryResult(ok=True, status_code=r.status_code)
        return TryResult(
            ok=False,
            retryable=retryable_status(r.status_code),
            status_code=r.status_code,
            error=f"HTTP {r.status_code}: {r.text[:_ERROR_BODY_CHARS]}".strip(),
            retry_after_s=parse_retry_after(
                r.headers.get("retry-after"), self.clock_ns() / NS_PER_S
            ),
        )

    async def deliver(self, event: AlertEvent) -> None:
        body = payload_bytes(event, site=self.sites.get(event.channel_id))

        async def once(n: int) -> TryResult:
            return await self._post(event, body, n)

        await deliver_with_retries(
            once,
            event=event,
            target=self.name,
            policy=self.target.policy,
            log=self.log,
            clock_ns=self.clock_ns,
            sleep=self.sleep,
            jitter=self.jitter,
        )

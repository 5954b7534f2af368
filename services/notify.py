"""Alert delivery: the Notifier port, the delivery log, the one retry loop the notifiers share,
and a target's route with its filters. No transport here: services.notify_webhook and notify_smtp
deliver, driven by the outbox (services.alert_outbox)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from compute.alert_delivery import (
    DeliveryAttempt,
    DeliveryOutcome,
    RetryPolicy,
    event_id,
    retry_delay_s,
)
from compute.alert_rules import Severity
from compute.alert_state import AlertEvent
from compute.errors import PlantPulseError
from compute.plant import Plant
from services.metrics import Registry

log = logging.getLogger(__name__)

ClockNs = Callable[[], int]
Sleep = Callable[[float], Awaitable[None]]


class DeliveryError(PlantPulseError):
    """An event was not delivered to a target: refused, or still failing after the retries."""


class DeliveryLog(Protocol):
    """Where every attempt is recorded (the Store: alert_deliveries)."""

    async def record_delivery(self, a: DeliveryAttempt) -> None: ...


class Notifier(Protocol):
    """Delivers one alert event to one target, retrying as its transport allows, and records
    every attempt; raises DeliveryError when it gives up."""

    @property
    def name(self) -> str:
        """The target as the delivery log names it, e.g. webhook:ehs-pager."""
        ...

    async def deliver(self, event: AlertEvent) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class TryResult:
    """What one attempt came to; retry_after_s is the receiver's Retry-After."""

    ok: bool
    retryable: bool = False
    status_code: int | None = None
    error: str = ""
    retry_after_s: float | None = None


async def deliver_with_retries(
    attempt: Callable[[int], Awaitable[TryResult]],
    *,
    event: AlertEvent,
    target: str,
    policy: RetryPolicy,
    log: DeliveryLog,
    clock_ns: ClockNs = time.time_ns,
    sleep: Sleep = asyncio.sleep,
    jitter: Callable[[], float] = random.random,
) -> None:
    """The retry loop of every notifier: call attempt(n) for n = 1, 2, ... until it succeeds,
    fails for good, or policy.max_attempts is reached; log each; back off between them."""
    eid = event_id(event)
    for n in range(1, policy.max_attempts + 1):
        t0 = time.perf_counter()
        r = await attempt(n)
        latency_ms = (time.perf_counter() - t0) * 1000.0
        wait_s = retry_delay_s(policy, n, jitter())
        error = r.error
        if (after_s := r.retry_after_s) is not None:
            if after_s > policy.max_delay_s:
                error = f"{error}; Retry-After {after_s:.0f} s is past the retry window"
                r = TryResult(ok=False, status_code=r.status_code, error=error)
            else:
                wait_s = max(wait_s, after_s)
        last = n == policy.max_attempts or not r.retryable
        outcome = (
            DeliveryOutcome.DELIVERED
            if r.ok
            else (DeliveryOutcome.FAILED if last else DeliveryOutcome.RETRY)
        )
        await log.record_delivery(
            DeliveryAttempt(
                event_id=eid,
                alert_id=event.alert_id,
                target=target,
                attempt=n,
                outcome=outcome,
                at_ns=clock_ns(),
                status_code=r.status_code,
                error=error,
                latency_ms=latency_ms,
            )
        )
        if r.ok:
            return
        if last:
            raise DeliveryError(f"{target}: {eid} not delivered after {n} attempt(s): {error}")
        await sleep(wait_s)


class MeteredLog:
    """A DeliveryLog that counts every record by target and outcome, then stores it. A store
    failure is logged and counted, never raised: delivery goes on without its log row."""

    def __init__(self, inner: DeliveryLog, registry: Registry | None = None) -> None:
        self.inner = inner
        r = registry or Registry()
        self.records = r.counter(
            "plantpulse_alert_deliveries_total",
            "Alert delivery log records by target and outcome (delivered, retry, failed)",
            ("target", "outcome"),
        )
        self.latency = r.histogram(
            "plantpulse_alert_delivery_latency_seconds", "Time of one delivery attempt"
        )
        self.log_errors = r.counter(
            "plantpulse_alert_delivery_log_errors_total", "Delivery records the store refused"
        )

    async def record_delivery(self, a: DeliveryAttempt) -> None:
        self.records.inc(target=a.target, outcome=a.outcome.value)
        if a.attempt:
            self.latency.observe(a.latency_ms / 1000.0)
        try:
            await self.inner.record_delivery(a)
        except PlantPulseError as e:
            self.log_errors.inc()
            log.warning("delivery log: %s", e)


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """A paging target with its filters: it takes only the events that page people (notify)."""

    notifier: Notifier
    severities: frozenset[Severity] | None = None  # None: every severity
    sites: frozenset[str] | None = None  # None: every site

    def skip_reason(self, e: AlertEvent, site: str | None) -> str:
        """Why this target does not take the event; "" when it does."""
        if not e.notify:
            return "not a paging event (notify is false)"
        if self.severities is not None and e.severity not in self.severities:
            return f"severity {e.severity.name.lower()} filtered out"
        if self.sites is not None and site not in self.sites:
            return f"site {site} filtered out"
        return ""


def channel_sites(plant: Plant) -> dict[str, str]:
    """channel id -> site id, for site filters and payloads."""
    return {key: ref.site.id for key, ref in plant.channels.items()}

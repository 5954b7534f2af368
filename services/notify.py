"""Alert delivery: the Notifier port, the delivery log, the one retry loop the notifiers share,
and the Dispatcher that fans events out through a bounded queue per target. No transport here:
services.notify_webhook, notify_smtp and notify_bus deliver."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
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
            "Alert delivery log records by target and outcome (delivered, retry, failed, "
            "dropped, skipped)",
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
    """A target with its filters. Paging targets (only_notify) take the events that page
    people; the alerts topic takes every transition, for the live views."""

    notifier: Notifier
    only_notify: bool = True
    severities: frozenset[Severity] | None = None  # None: every severity
    sites: frozenset[str] | None = None  # None: every site

    def skip_reason(self, e: AlertEvent, site: str | None) -> str:
        """Why this target does not take the event; "" when it does."""
        if self.only_notify and not e.notify:
            return "not a paging event (notify is false)"
        if self.severities is not None and e.severity not in self.severities:
            return f"severity {e.severity.name.lower()} filtered out"
        if self.sites is not None and site not in self.sites:
            return f"site {site} filtered out"
        return ""


def channel_sites(plant: Plant) -> dict[str, str]:
    """channel id -> site id, for site filters and payloads."""
    return {key: ref.site.id for key, ref in plant.channels.items()}


class Dispatcher:
    """Fans each event out to its routes at once, each through its own bounded queue and
    worker, so a slow or hung target delays only itself. A full queue drops the event for that
    target: the drop is logged (outcome dropped) and counted. Each target gets its events in
    the order dispatched. Use as an async context manager; leaving it waits up to drain_s for
    the queues to empty, then stops the workers."""

    def __init__(
        self,
        routes: Sequence[Route],
        log: DeliveryLog,
        *,
        queue_size: int = 1000,
        sites: Mapping[str, str] | None = None,
        registry: Registry | None = None,
        clock_ns: ClockNs = time.time_ns,
        drain_s: float = 5.0,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        names = [r.notifier.name for r in routes]
        if len(set(names)) != len(names):
            raise ValueError(f"target names must be unique: {names}")
        self.routes = tuple(routes)
        self.log = log
        self.sites = dict(sites or {})
        self.clock_ns = clock_ns
        self.drain_s = drain_s
        self.queues = [asyncio.Queue[AlertEvent](maxsize=queue_size) for _ in self.routes]
        self._workers: list[asyncio.Task[None]] = []
        r = registry or Registry()
        self.dropped = r.counter(
            "plantpulse_alert_queue_dropped_total",
            "Events dropped because a target's queue was full",
            ("target",),
        )
        r.gauge(
            "plantpulse_alert_queue_depth",
            "Events waiting in the targets' queues",
            read=lambda: sum(q.qsize() for q in self.queues),
        )
        for route in self.routes:
            self.dropped.inc(0, target=route.notifier.name)

    async def __aenter__(self) -> Dispatcher:
        self._workers = [
            asyncio.create_task(self._work(route, q), name=f"notify {route.notifier.name}")
            for route, q in zip(self.routes, self.queues, strict=True)
        ]
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if t is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drain(), self.drain_s)
        for w in self._workers:
            w.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []

    async def dispatch(self, event: AlertEvent) -> None:
        """Queue the event for every route that takes it; never waits for a target. Skips
        and drops are written to the delivery log here."""
        site = self.sites.get(event.channel_id)
        for route, q in zip(self.routes, self.queues, strict=True):
            target = route.notifier.name
            if reason := route.skip_reason(event, site):
                await self._record(event, target, DeliveryOutcome.SKIPPED, reason)
                continue
            try:
                q.put_nowait(event)
            except asyncio.QueueFull:
                self.dropped.inc(target=target)
                await self._record(
                    event, target, DeliveryOutcome.DROPPED, f"queue full ({q.maxsize} waiting)"
                )

    async def drain(self) -> None:
        """Wait until every queued event has been delivered or given up."""
        await asyncio.gather(*(q.join() for q in self.queues))

    async def _record(
        self, event: AlertEvent, target: str, outcome: DeliveryOutcome, error: str
    ) -> None:
        a = DeliveryAttempt(
            event_id=event_id(event),
            alert_id=event.alert_id,
            target=target,
            attempt=0,
            outcome=outcome,
            at_ns=self.clock_ns(),
            error=error,
        )
        try:
            await self.log.record_delivery(a)
        except PlantPulseError as e:  # dispatching goes on without its log row
            log.warning("delivery log: %s", e)

    async def _work(self, route: Route, q: asyncio.Queue[AlertEvent]) -> None:
        while True:
            event = await q.get()
            try:
                await route.notifier.deliver(event)
            except DeliveryError as e:
                log.warning("%s", e)
            except Exception:  # a notifier's bug must not stop its target's deliveries
                log.exception("notifier %s failed on %s", route.notifier.name, event_id(event))
            finally:
                q.task_done()

"""Delivers the alert outbox: one worker per target sends its owed events in order, marks each
delivered in the store after the target accepted it, and retries with backoff. What a crash
left owed is read back from the store at start, so nothing stored is lost."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from compute.alert_delivery import RetryPolicy
from compute.alert_state import AlertEvent
from compute.errors import PlantPulseError
from services.alert_view import encode, event_of
from services.bus import Bus
from services.notify import DeliveryLog, Route, TryResult, deliver_with_retries
from services.store.alerts import AlertStore, OutboxItem

log = logging.getLogger(__name__)
T = TypeVar("T")


class Target(Protocol):
    """Where the outbox sends; `takes` says which events (by the event and its site)."""

    @property
    def name(self) -> str: ...

    def takes(self, event: AlertEvent, site: str | None) -> bool: ...

    async def send(self, data: Mapping[str, Any]) -> None: ...


class RouteTarget:
    """A notifier's route (services.notify: webhook, e-mail, with its filters) as an outbox
    target. The notifier retries and logs each attempt itself and raises when it gives up;
    the outbox then tries again later."""

    def __init__(self, route: Route) -> None:
        self.route = route

    @property
    def name(self) -> str:
        return self.route.notifier.name

    def takes(self, event: AlertEvent, site: str | None) -> bool:
        return not self.route.skip_reason(event, site)

    async def send(self, data: Mapping[str, Any]) -> None:
        await self.route.notifier.deliver(event_of(data))


class TopicTarget:
    """The alerts topic: every transition, keyed by alert so an alert's events keep order. Its
    messages carry compute.alert_delivery's payload plus the live hub's fields, so the API
    processes feed their live hubs from it (services.live_feed)."""

    def __init__(
        self,
        bus: Bus,
        topic: str,
        log: DeliveryLog,
        *,
        policy: RetryPolicy | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.bus = bus
        self.topic = topic
        self.log = log
        self.policy = policy or RetryPolicy(max_attempts=3)
        self.timeout_s = timeout_s

    @property
    def name(self) -> str:
        return f"bus:{self.topic}"

    def takes(self, event: AlertEvent, site: str | None) -> bool:
        return True

    async def send(self, data: Mapping[str, Any]) -> None:
        key = str(data.get("id") or f"{data['rule_id']}/{data['channel_id']}").encode()
        body = encode(data).encode()
        headers = [
            ("event_id", str(data["event_id"]).encode()),
            ("kind", str(data["kind"]).encode()),
        ]

        async def once(n: int) -> TryResult:
            try:
                async with asyncio.timeout(self.timeout_s):
                    await self.bus.publish(self.topic, key, body, headers)
            except TimeoutError:
                return TryResult(ok=False, retryable=True, error=f"timeout {self.timeout_s} s")
            except (PlantPulseError, OSError) as e:
                return TryResult(ok=False, retryable=True, error=f"{type(e).__name__}: {e}")
            return TryResult(ok=True)

        await deliver_with_retries(
            once, event=event_of(data), target=self.name, policy=self.policy, log=self.log
        )


class _Lane:
    def __init__(self) -> None:
        self.queue: OrderedDict[str, OutboxItem] = OrderedDict()
        self.wake = asyncio.Event()
        self.resync = True  # read what the store holds owed: at start, and after an overflow


class Outbox:
    """The delivery workers. `offer` hands over items just stored; `run` sends until cancelled."""

    def __init__(
        self,
        store: AlertStore,
        targets: Sequence[Target],
        *,
        clock_ns: Callable[[], int] = time.time_ns,
        timeout_s: float = 10.0,
        max_backoff_s: float = 60.0,
        max_queued: int = 10_000,
    ) -> None:
        self.store = store
        self.targets = {t.name: t for t in targets}
        self.clock_ns = clock_ns
        self.timeout_s = timeout_s
        self.max_backoff_s = max_backoff_s
        self.max_queued = max_queued
        self.lanes = {name: _Lane() for name in self.targets}
        self.delivered: dict[str, int] = dict.fromkeys(self.targets, 0)

    @property
    def routes(self) -> dict[str, Callable[[AlertEvent, str | None], bool]]:
        """Target name -> which events it takes (for the engine's outbox rows)."""
        return {n: t.takes for n, t in self.targets.items()}

    def offer(self, items: Sequence[OutboxItem]) -> None:
        """Items whose store transaction committed; a full lane falls back to the store."""
        for item in items:
            lane = self.lanes.get(item.target)
            if lane is None:
                continue
            if len(lane.queue) >= self.max_queued:
                lane.queue.clear()
                lane.resync = True
            else:
                lane.queue.setdefault(item.event_id, item)
            lane.wake.set()

    def owed(self) -> int:
        return sum(len(lane.queue) for lane in self.lanes.values())

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for name in self.targets:
                tg.create_task(self._work(name))

    async def _work(self, name: str) -> None:
        target, lane = self.targets[name], self.lanes[name]
        while True:
            if lane.resync:
                await self._resync(name, lane)
            if not lane.queue:
                lane.wake.clear()
                await lane.wake.wait()
                continue
            eid, item = next(iter(lane.queue.items()))
            await self._deliver(target, item)
            await self._retrying(
                f"marking {eid} delivered to {name}",
                functools.partial(self.store.outbox_delivered, eid, name, self.clock_ns()),
            )
            lane.queue.pop(eid, None)
            self.delivered[name] += 1

    async def _resync(self, name: str, lane: _Lane) -> None:
        got = await self._retrying(
            f"reading the outbox of {name}",
            lambda: self.store.pending_outbox(name, limit=self.max_queued),
        )
        merged = OrderedDict((i.event_id, i) for i in got)
        for eid, item in lane.queue.items():
            merged.setdefault(eid, item)
        lane.queue = merged
        lane.resync = len(got) >= self.max_queued  # more wait in the store
        if got:
            log.info("outbox: %d owed notifications for %s", len(got), name)

    async def _deliver(self, target: Target, item: OutboxItem) -> None:
        """Send until the target takes it: the head blocks its lane, so events keep order."""
        backoff_s = 0.5
        data = json.loads(item.payload)
        while True:
            try:
                async with asyncio.timeout(self.timeout_s):
                    await target.send(data)
                return
            except Exception as e:  # any failure of one target must not stop the others
                log.warning(
                    "outbox: %s to %s failed, retrying in %.1f s: %s",
                    item.event_id,
                    target.name,
                    backoff_s,
                    e or type(e).__name__,
                )
                err = f"{type(e).__name__}: {e}"
                await self._retrying(
                    "recording a failed delivery",
                    functools.partial(self.store.outbox_failed, item.event_id, target.name, err),
                )
            await asyncio.sleep(backoff_s)
            backoff_s = min(2 * backoff_s, self.max_backoff_s)

    async def _retrying(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        backoff_s = 0.5
        while True:
            try:
                return await call()
            except (PlantPulseError, OSError) as e:
                log.warning("outbox: %s failed, retrying in %.1f s: %s", what, backoff_s, e)
                await asyncio.sleep(backoff_s)
                backoff_s = min(2 * backoff_s, self.max_backoff_s)

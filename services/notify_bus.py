"""BusNotifier: alert events onto the bus topic plantpulse.alerts (Kafka, or MemoryBus in the
demo) for the live views and other consumers. Keyed by alert, so each alert's events keep order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from compute.alert_delivery import RetryPolicy, event_id, payload_bytes
from compute.alert_state import AlertEvent
from compute.errors import PlantPulseError
from services.notify import ClockNs, DeliveryLog, Sleep, TryResult, deliver_with_retries
from services.publisher import PublishingBus

ALERTS_TOPIC = "plantpulse.alerts"
BUS_RETRIES = RetryPolicy(max_attempts=3)


class BusNotifier:
    """Publishes each event's JSON payload (the webhook's) with headers event_id and kind."""

    def __init__(
        self,
        bus: PublishingBus,
        log: DeliveryLog,
        *,
        topic: str = ALERTS_TOPIC,
        sites: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
        policy: RetryPolicy = BUS_RETRIES,
        clock_ns: ClockNs = time.time_ns,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.bus = bus
        self.log = log
        self.topic = topic
        self.sites = dict(sites or {})
        self.timeout_s = timeout_s
        self.policy = policy
        self.clock_ns = clock_ns
        self.sleep = sleep

    @property
    def name(self) -> str:
        return f"bus:{self.topic}"

    async def deliver(self, event: AlertEvent) -> None:
        key = (event.alert_id or f"{event.rule_id}/{event.channel_id}").encode()
        body = payload_bytes(event, site=self.sites.get(event.channel_id))
        headers = [("event_id", event_id(event).encode()), ("kind", event.kind.value.encode())]

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
            once,
            event=event,
            target=self.name,
            policy=self.policy,
            log=self.log,
            clock_ns=self.clock_ns,
            sleep=self.sleep,
        )

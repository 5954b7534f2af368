"""Builds the alert Dispatcher from AlertSettings: webhooks, e-mail and the alerts topic, with
the delivery log metered. For the composition root; owns the HTTP client it opens."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping

import httpx

from compute.alert_delivery import RetryPolicy
from services.alert_settings import AlertSettings
from services.metrics import Registry
from services.notify import DeliveryLog, Dispatcher, MeteredLog, Route
from services.notify_bus import BusNotifier
from services.notify_smtp import SmtpNotifier, SmtpTarget
from services.notify_webhook import WebhookNotifier, WebhookTarget
from services.publisher import PublishingBus


def routes(
    s: AlertSettings,
    *,
    client: httpx.AsyncClient,
    log: DeliveryLog,
    bus: PublishingBus | None = None,
    sites: Mapping[str, str] | None = None,
) -> list[Route]:
    out = []
    for w in s.webhooks:
        target = WebhookTarget(
            name=w.target_name,
            url=w.url,
            secret=w.secret.get_secret_value().encode(),
            timeout_s=w.timeout_s,
            policy=RetryPolicy(max_attempts=w.max_attempts),
        )
        notifier = WebhookNotifier(target, client, log, sites=sites)
        out.append(Route(notifier=notifier, severities=w.severities, sites=w.sites))
    m = s.smtp
    if m.host and m.recipients:
        smtp = SmtpTarget(
            host=m.host,
            port=m.port,
            sender=m.sender,
            recipients=tuple(m.recipients),
            starttls=m.starttls,
            username=m.username,
            password=None if m.password is None else m.password.get_secret_value(),
            timeout_s=m.timeout_s,
            policy=RetryPolicy(max_attempts=m.max_attempts, base_delay_s=2.0),
        )
        notifier_smtp = SmtpNotifier(smtp, log, sites=sites)
        out.append(Route(notifier=notifier_smtp, severities=m.severities, sites=m.sites))
    if bus is not None and s.publish:
        out.append(
            Route(notifier=BusNotifier(bus, log, topic=s.topic, sites=sites), only_notify=False)
        )
    return out


@contextlib.asynccontextmanager
async def open_dispatcher(
    s: AlertSettings,
    log: DeliveryLog,
    *,
    bus: PublishingBus | None = None,
    sites: Mapping[str, str] | None = None,
    registry: Registry | None = None,
) -> AsyncIterator[Dispatcher]:
    """The Dispatcher of the configured targets; log is the Store (its alert_deliveries)."""
    metered = MeteredLog(log, registry)
    async with httpx.AsyncClient() as client:
        rs = routes(s, client=client, log=metered, bus=bus, sites=sites)
        async with Dispatcher(
            rs, metered, queue_size=s.queue_size, sites=sites, registry=registry
        ) as d:
            yield d

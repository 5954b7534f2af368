"""The paging routes from AlertSettings: webhooks and e-mail with their filters, for the alert
outbox (services.alerting_setup). Builds only: the caller owns the HTTP client and the log."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from compute.alert_delivery import RetryPolicy
from services.alert_settings import AlertSettings
from services.notify import DeliveryLog, Route
from services.notify_smtp import SmtpNotifier, SmtpTarget
from services.notify_webhook import WebhookNotifier, WebhookTarget


def routes(
    s: AlertSettings,
    *,
    client: httpx.AsyncClient,
    log: DeliveryLog,
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
    return out

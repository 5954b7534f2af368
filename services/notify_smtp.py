"""SmtpNotifier: an alert event as a plain-text e-mail through stdlib smtplib on a worker
thread, with optional STARTTLS and login. Connection errors and 4xx replies are retried; 5xx
replies are final. Every socket operation has the target's timeout."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate

from compute.alert_delivery import RetryPolicy, email_body, email_subject, event_id
from compute.alert_state import AlertEvent
from compute.model import NS_PER_S
from services.notify import ClockNs, DeliveryLog, Sleep, TryResult, deliver_with_retries

SMTP_RETRIES = RetryPolicy(max_attempts=3, base_delay_s=2.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class SmtpTarget:
    host: str
    sender: str
    recipients: tuple[str, ...]
    name: str = "email"  # logged as smtp:<name>
    port: int = 25
    starttls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout_s: float = 10.0
    policy: RetryPolicy = SMTP_RETRIES


def message(t: SmtpTarget, event: AlertEvent, *, site: str | None, now_ns: int) -> EmailMessage:
    m = EmailMessage()
    m["From"] = t.sender
    m["To"] = ", ".join(t.recipients)
    m["Subject"] = email_subject(event, site=site)
    m["Date"] = formatdate(now_ns / NS_PER_S, usegmt=True)
    m["Message-ID"] = f"<{event_id(event).replace('/', '.')}@plantpulse>"  # same on a retry
    m.set_content(email_body(event, site=site))
    return m


def _text(reply: bytes | str) -> str:
    return reply if isinstance(reply, str) else reply.decode(errors="replace")


class SmtpNotifier:
    def __init__(
        self,
        target: SmtpTarget,
        log: DeliveryLog,
        *,
        sites: Mapping[str, str] | None = None,
        clock_ns: ClockNs = time.time_ns,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.target = target
        self.log = log
        self.sites = dict(sites or {})
        self.clock_ns = clock_ns
        self.sleep = sleep

    @property
    def name(self) -> str:
        return f"smtp:{self.target.name}"

    def _send(self, m: EmailMessage) -> None:
        t = self.target
        with smtplib.SMTP(t.host, t.port, timeout=t.timeout_s) as s:
            if t.starttls:
                s.starttls(context=ssl.create_default_context())
            if t.username:
                s.login(t.username, t.password or "")
            s.send_message(m, from_addr=t.sender, to_addrs=list(t.recipients))

    async def _try(self, m: EmailMessage) -> TryResult:
        try:
            await asyncio.to_thread(self._send, m)
        except smtplib.SMTPRecipientsRefused as e:
            codes = [code for code, _ in e.recipients.values()]
            return TryResult(
                ok=False,
                retryable=all(400 <= c < 500 for c in codes),
                status_code=codes[0] if codes else None,
                error=f"recipients refused: {e.recipients}",
            )
        except smtplib.SMTPResponseException as e:
            return TryResult(
                ok=False,
                retryable=400 <= e.smtp_code < 500,
                status_code=e.smtp_code,
                error=f"SMTP {e.smtp_code}: {_text(e.smtp_error)}",
            )
        except (smtplib.SMTPException, OSError) as e:  # refused, dropped, timed out
            return TryResult(ok=False, retryable=True, error=f"{type(e).__name__}: {e}")
        return TryResult(ok=True, status_code=250)

    async def deliver(self, event: AlertEvent) -> None:
        m = message(
            self.target, event, site=self.sites.get(event.channel_id), now_ns=self.clock_ns()
        )

        async def once(n: int) -> TryResult:
            return await self._try(m)

        await deliver_with_retries(
            once,
            event=event,
            target=self.name,
            policy=self.target.policy,
            log=self.log,
            clock_ns=self.clock_ns,
            sleep=self.sleep,
        )

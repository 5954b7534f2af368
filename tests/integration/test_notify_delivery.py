"""Webhook and e-mail delivery against real servers on loopback: a scripted HTTP server that
fails first (503, then a dropped connection), and an aiosmtpd SMTP server."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from compute.alert_delivery import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    DeliveryAttempt,
    DeliveryOutcome,
    RetryPolicy,
    event_id,
    signature_ok,
)
from compute.alert_rules import AlertLevel, Severity
from compute.alert_state import AlertEvent, AlertPhase, EventKind
from services.notify import DeliveryError
from services.notify_smtp import SmtpNotifier, SmtpTarget
from services.notify_webhook import WebhookNotifier, WebhookTarget
from services.store.sqlite import SqliteStore
from tests.harness import free_port

SECRET = b"whsec-0123456789abcdef"
EVENT = AlertEvent(
    alert_id="9f2c",
    rule_id="dp-min",
    channel_id="cleanroom-a-env.dp",
    kind=EventKind.RAISED,
    level=AlertLevel.ACTION,
    severity=Severity.CRITICAL,
    ts_ns=1_740_816_000_000_000_000,
    value=4.5,
    message="cleanroom-a-env.dp raised, ACTION level of dp-min: below 5 Pa; value 4.5",
    phase=AlertPhase.ACTIVE,
    notify=True,
)


@dataclass
class Seen:
    headers: dict[str, str]
    body: bytes


@dataclass
class ScriptedServer:
    """Answers the n-th request with script[n]: (status, extra headers), "drop" (close without
    answering) or "hang"; the last entry repeats."""

    script: list[Any]
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (x.partition(":") for x in lines[1:] if x)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.seen.append(Seen(headers=headers, body=body))
            step = self.script[min(len(self.seen), len(self.script)) - 1]
            if step == "drop":
                return
            if step == "hang":
                await asyncio.sleep(30)
                return
            status, extra = step
            text = f"status {status}".encode()
            out = [f"HTTP/1.1 {status} X", f"Content-Length: {len(text)}", "Connection: close"]
            out += [f"{k}: {v}" for k, v in extra.items()]
            writer.write(("\r\n".join(out) + "\r\n\r\n").encode() + text)
            await writer.drain()
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def scripted(*script: Any) -> AsyncIterator[ScriptedServer]:
    s = ScriptedServer(script=list(script))
    server = await asyncio.start_server(s.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    s.url = f"http://127.0.0.1:{port}/hooks/plantpulse"
    async with server:
        yield s
        server.close()


class ListLog:
    def __init__(self) -> None:
        self.rows: list[DeliveryAttempt] = []

    async def record_delivery(self, a: DeliveryAttempt) -> None:
        self.rows.append(a)


def recorder() -> tuple[list[float], Callable[[float], Awaitable[None]]]:
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    return slept, sleep


def webhook(
    url: str,
    log: Any,
    sleep: Callable[[float], Awaitable[None]],
    client: httpx.AsyncClient,
    **kw: Any,
) -> WebhookNotifier:
    target = WebhookTarget(name="pager", url=url, secret=SECRET, **kw)
    return WebhookNotifier(target, client, log, sites={EVENT.channel_id: "suzhou"}, sleep=sleep)


async def test_webhook_retries_a_503_and_a_dropped_connection_then_delivers_once(
    tmp_path: Path,
) -> None:
    slept, sleep = recorder()
    async with (
        scripted((503, {"Retry-After": "1"}), "drop", (200, {})) as srv,
        SqliteStore(tmp_path / "s.sqlite3") as store,
        httpx.AsyncClient() as client,
    ):
        await webhook(srv.url, store, sleep, client).deliver(EVENT)
        log = await store.deliveries(event_id(EVENT))
    assert len(srv.seen) == 3
    assert [(a.attempt, a.outcome, a.status_code) for a in log] == [
        (1, DeliveryOutcome.RETRY, 503),
        (2, DeliveryOutcome.RETRY, None),
        (3, DeliveryOutcome.DELIVERED, 200),
    ]
    assert "RemoteProtocolError" in log[1].error and all(a.target == "webhook:pager" for a in log)
    assert slept[0] >= 1.0 and len(slept) == 2  # Retry-After honoured, then the backoff
    for s in srv.seen:  # the documented recipe verifies every attempt
        ts, sig = s.headers[TIMESTAMP_HEADER.lower()], s.headers[SIGNATURE_HEADER.lower()]
        assert signature_ok(SECRET, s.body, ts, sig, now_s=time.time())
        assert s.headers[IDEMPOTENCY_HEADER.lower()] == event_id(EVENT)
    assert len({s.body for s in srv.seen}) == 1
    assert b'"site":"suzhou"' in srv.seen[0].body


async def test_webhook_does_not_retry_a_400() -> None:
    slept, sleep = recorder()
    log = ListLog()
    async with scripted((400, {})) as srv, httpx.AsyncClient() as client:
        with pytest.raises(DeliveryError, match="after 1 attempt"):
            await webhook(srv.url, log, sleep, client).deliver(EVENT)
    assert len(srv.seen) == 1 and slept == []
    ((a,),) = [log.rows]
    assert (a.outcome, a.status_code, a.error) == (
        DeliveryOutcome.FAILED,
        400,
        "HTTP 400: status 400",
    )


async def test_webhook_gives_up_after_its_attempts_and_on_a_long_retry_after() -> None:
    _, sleep = recorder()
    log = ListLog()
    async with scripted((502, {})) as srv, httpx.AsyncClient() as client:
        with pytest.raises(DeliveryError, match="after 3 attempt"):
            await webhook(srv.url, log, sleep, client, policy=RetryPolicy(max_attempts=3)).deliver(
                EVENT
            )
    assert [a.outcome for a in log.rows] == [DeliveryOutcome.RETRY] * 2 + [DeliveryOutcome.FAILED]
    log = ListLog()
    async with scripted((429, {"Retry-After": "3600"})) as srv, httpx.AsyncClient() as client:
        with pytest.raises(DeliveryError, match="past the retry window"):
            await webhook(srv.url, log, sleep, client).deliver(EVENT)
    assert len(srv.seen) == 1


async def test_webhook_times_out_a_hung_receiver_and_retries_a_refused_connection() -> None:
    _, sleep = recorder()
    log = ListLog()
    policy = RetryPolicy(max_attempts=2)
    async with scripted("hang") as srv, httpx.AsyncClient() as client:
        t0 = time.monotonic()
        with pytest.raises(DeliveryError):
            await webhook(srv.url, log, sleep, client, timeout_s=0.2, policy=policy).deliver(EVENT)
        assert time.monotonic() - t0 < 5
    assert [a.error for a in log.rows] == ["timeout: ReadTimeout"] * 2
    log = ListLog()
    closed = f"http://127.0.0.1:{free_port()}/"
    async with httpx.AsyncClient() as client:
        with pytest.raises(DeliveryError):
            await webhook(closed, log, sleep, client, policy=policy).deliver(EVENT)
    assert [a.outcome for a in log.rows] == [DeliveryOutcome.RETRY, DeliveryOutcome.FAILED]
    assert "ConnectError" in log.rows[0].error


class Mailbox:
    def __init__(self, replies: list[str]) -> None:
        self.replies = replies
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.tries = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.tries += 1
        reply = self.replies[min(self.tries, len(self.replies)) - 1]
        if reply.startswith("250"):
            self.messages.append((envelope.mail_from, envelope.rcpt_tos, envelope.content))
        return reply


@contextlib.contextmanager
def smtp_server(*replies: str) -> Any:
    box = Mailbox(list(replies))
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield box, controller.port
    finally:
        controller.stop()


async def test_email_is_delivered_to_a_local_smtp_server_after_a_temporary_refusal() -> None:
    _, sleep = recorder()
    log = ListLog()
    with smtp_server("451 4.3.0 try again later", "250 OK") as (box, port):
        target = SmtpTarget(
            host="127.0.0.1",
            port=port,
            sender="plantpulse@plant.example",
            recipients=("ehs@plant.example", "qa@plant.example"),
            timeout_s=5,
        )
        notifier = SmtpNotifier(target, log, sites={EVENT.channel_id: "suzhou"}, sleep=sleep)
        await notifier.deliver(EVENT)
    assert [(a.outcome, a.status_code) for a in log.rows] == [
        (DeliveryOutcome.RETRY, 451),
        (DeliveryOutcome.DELIVERED, 250),
    ]
    ((sender, rcpts, raw),) = box.messages
    assert sender == "plantpulse@plant.example" and rcpts == list(target.recipients)
    msg = message_from_bytes(raw)
    assert msg["Subject"] == "[plantpulse CRITICAL] suzhou cleanroom-a-env.dp raised: dp-min"
    assert msg["Message-ID"] == f"<{event_id(EVENT)}@plantpulse>"
    text = msg.get_payload(decode=True).decode()
    assert "below 5 Pa" in text and "severity: critical" in text


async def test_email_refused_for_good_is_not_retried() -> None:
    _, sleep = recorder()
    log = ListLog()
    with smtp_server("554 5.7.1 rejected") as (box, port):
        target = SmtpTarget(host="127.0.0.1", port=port, sender="a@b.c", recipients=("x@y.z",))
        with pytest.raises(DeliveryError):
            await SmtpNotifier(target, log, sleep=sleep).deliver(EVENT)
    assert box.tries == 1 and [a.outcome for a in log.rows] == [DeliveryOutcome.FAILED]

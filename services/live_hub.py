"""The live hub: the newest state per key (channel, site, alert), fanned out to stream clients.
A client holds only its newest pending event per key and a wake-up flag: a slow client skips
intermediate updates, its memory is bounded by its keys, and nothing queues."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import asdict, dataclass

from compute.errors import PlantPulseError


class EventType(enum.StrEnum):
    CHANNEL = "channel"
    SITE = "site"
    ALERT = "alert"


class AlertState(enum.StrEnum):
    ACTIVE = "active"
    ACKNOWLEDGED = "acknowledged"
    CLEARED = "cleared"  # sent once to the clients, then dropped from the hub's state


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertEvent:
    """An alert's current state, as the alerting work publishes it; `id` is its key."""

    id: str
    site: str
    state: AlertState
    severity: str  # e.g. "alert" or "action"
    message: str
    ts_ns: int  # when it entered this state
    area: str | None = None
    channel_id: str | None = None
    value: float | None = None
    limit: float | None = None
    rule: str | None = None
    acknowledged_by: str | None = None
    comment: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> AlertEvent:
        """From its JSON object (e.g. a message of an alerts topic); raises LiveError if bad."""
        try:
            fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
            fields["state"] = AlertState(str(data["state"]))
            return cls(**fields)  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError) as e:
            raise LiveError(f"not an alert event: {e}") from e


class LiveError(PlantPulseError):
    """A live event or a stream request is malformed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One published state, serialised once for every client that gets it."""

    type: EventType
    key: str
    seq: int
    site: str
    area: str | None
    channel_id: str | None
    json: str  # the payload
    sse: bytes  # as a Server-Sent Event
    ws: str  # as a WebSocket text message


def _event(
    type_: EventType,
    key: str,
    seq: int,
    data: str,
    *,
    site: str,
    area: str | None,
    channel_id: str | None,
) -> Event:
    return Event(
        type=type_,
        key=key,
        seq=seq,
        site=site,
        area=area,
        channel_id=channel_id,
        json=data,
        sse=f"event: {type_}\nid: {seq}\ndata: {data}\n\n".encode(),
        ws=f'{{"event":"{type_}","id":{seq},"data":{data}}}',
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Scope:
    """What one client receives: the channels, sites and areas it resolved to, and event types."""

    channels: frozenset[str]
    sites: frozenset[str]
    areas: frozenset[str] | None  # None: any area of its sites
    types: frozenset[EventType]

    def matches(self, e: Event) -> bool:
        if e.type not in self.types or e.site not in self.sites:
            return False
        if e.type is EventType.CHANNEL:
            return e.channel_id in self.channels
        if e.channel_id is not None and e.channel_id not in self.channels:
            return False
        return self.areas is None or e.area is None or e.area in self.areas

    def key_bound(self, max_alerts: int) -> int:
        return len(self.channels) + len(self.sites) + max_alerts


class Client:
    """One stream's pending events: the newest per key, in first-changed order."""

    def __init__(self, scope: Scope, max_alerts: int) -> None:
        self.scope = scope
        self.max_alerts = max_alerts
        self.pending: dict[str, Event] = {}
        self.pending_alerts = 0
        self.wake = asyncio.Event()
        self.closed = False
        self.coalesced = 0  # updates that replaced a pending one: what the client skipped

    def offer(self, e: Event) -> None:
        if e.key in self.pending:
            self.coalesced += 1
        elif e.type is EventType.ALERT:
            if self.pending_alerts >= self.max_alerts:
                oldest = next(k for k, x in self.pending.items() if x.type is EventType.ALERT)
                del self.pending[oldest]
                self.coalesced += 1
            else:
                self.pending_alerts += 1
        self.pending[e.key] = e
        self.wake.set()

    def take(self) -> list[Event]:
        """Every pending event, oldest change first; the client is clean after."""
        out = list(self.pending.values())
        self.pending.clear()
        self.pending_alerts = 0
        self.wake.clear()
        return out

    async def wait(self, timeout_s: float) -> list[Event]:
        """The pending events, waiting up to timeout_s for some; [] on timeout or when closed."""
        if not self.pending and not self.closed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self.wake.wait()
        return [] if self.closed else self.take()


class LiveHub:
    """The newest event per key and the clients it fans them out to."""

    def __init__(self, *, max_alerts: int = 1000, max_clients: int = 10_000) -> None:
        self.max_alerts = max_alerts
        self.max_clients = max_clients
        self.state: dict[str, Event] = {}
        self.clients: set[Client] = set()
        self.closed = False
        self._seq = itertools.count(1)

    def publish(
        self,
        type_: EventType,
        key: str,
        data: Mapping[str, object],
        *,
        site: str,
        area: str | None = None,
        channel_id: str | None = None,
    ) -> Event:
        payload = json.dumps(data, separators=(",", ":"), allow_nan=False)
        e = _event(
            type_, key, next(self._seq), payload, site=site, area=area, channel_id=channel_id
        )
        self.state[key] = e
        for c in self.clients:
            if c.scope.matches(e):
                c.offer(e)
        return e

    def publish_channel(
        self, channel_id: str, data: Mapping[str, object], *, site: str, area: str
    ) -> Event:
        return self.publish(
            EventType.CHANNEL,
            f"channel:{channel_id}",
            data,
            site=site,
            area=area,
            channel_id=channel_id,
        )

    def publish_site(self, site: str, data: Mapping[str, object]) -> Event:
        return self.publish(EventType.SITE, f"site:{site}", data, site=site)

    def publish_alert(self, alert: AlertEvent) -> Event:
        """Fan an alert's new state out; active and acknowledged alerts are kept for clients that
        connect later (at most max_alerts, oldest dropped), a cleared one is dropped after."""
        data = {k: (str(v) if isinstance(v, enum.Enum) else v) for k, v in asdict(alert).items()}
        key = f"alert:{alert.id}"
        self.state.pop(key, None)  # re-inserted last: the dict keeps alerts in update order
        e = self.publish(
            EventType.ALERT,
            key,
            data,
            site=alert.site,
            area=alert.area,
            channel_id=alert.channel_id,
        )
        if alert.state is AlertState.CLEARED:
            del self.state[key]
        alerts = [k for k, x in self.state.items() if x.type is EventType.ALERT]
        for k in alerts[: max(0, len(alerts) - self.max_alerts)]:
            del self.state[k]
        return e

    def active_alerts(self) -> list[Event]:
        return [x for x in self.state.values() if x.type is EventType.ALERT]

    def refusal(self) -> str | None:
        """Why a new client would be refused, or None."""
        if self.closed:
            return "the server is shutting down"
        if len(self.clients) >= self.max_clients:
            return f"too many stream clients (at most {self.max_clients})"
        return None

    @contextlib.contextmanager
    def client(self, scope: Scope) -> Iterator[Client]:
        """A client whose first events are the current state of its scope; its slot is freed on
        exit, however the stream ended."""
        if reason := self.refusal():
            raise LiveError(reason)
        c = Client(scope, self.max_alerts)
        for e in self.state.values():
            if scope.matches(e):
                c.offer(e)
        self.clients.add(c)
        try:
            yield c
        finally:
            self.clients.discard(c)

    def close(self) -> None:
        """End every stream: on shutdown, so that the server does not wait for them."""
        self.closed = True
        for c in self.clients:
            c.closed = True
            c.wake.set()


async def drain(client: Client, keepalive_s: float) -> AsyncIterator[list[Event]]:
    """The client's events in batches; an empty batch every keepalive_s without any."""
    while not client.closed:
        yield await client.wait(keepalive_s)

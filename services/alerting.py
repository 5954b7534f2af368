"""The alerting process: consume readings in its own group, evaluate the rules, store states, events
and owed notifications in one transaction, then commit, then notify. A crash replays the batch
(same alert ids) or finds its states stored; the outbox sends what is still owed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from compute import codec
from compute.alert_eval import split_by_channel
from compute.alert_series import Series
from compute.alert_state import EventKind
from compute.errors import CodecError, PlantPulseError
from compute.meter_events import is_control
from compute.model import NS_PER_S, ReadingBatch
from compute.plant import Plant
from services.alert_baselines import baseline_channels, learn_baselines
from services.alert_engine import AlertEngine, Prepared, Step
from services.alert_outbox import Outbox
from services.alert_rulebook import bind, rules_of
from services.bus import Bus, Message, Subscription
from services.progress import Progress
from services.store import Store

log = logging.getLogger(__name__)

LiveSink = Callable[[Sequence[Mapping[str, Any]]], None]
_LOGGED = {EventKind.RAISED, EventKind.UPGRADED, EventKind.ESCALATED}


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertingOptions:
    group: str = "plantpulse-alerting"
    topic: str = "plantpulse.readings"
    max_records: int = 2000
    poll_s: float = 0.25  # the longest wait for readings; operator requests are read as often
    tick_s: float = 1.0  # time-driven rules run, and the rules' version is checked, this often
    bucket_s: int = 60
    baseline_refresh_s: float = 86_400.0
    max_backoff_s: float = 30.0
    # A step with no transition (only detector progress) waits up to this long for others, so
    # quiet readings cost one store write per flush, not one per poll; any transition or
    # operator request is written at once. Bus offsets wait for the write either way.
    flush_s: float = 0.5
    chunk: int = 64  # bindings evaluated between two yields to the event loop (~5 ms)


def readings_of(messages: Sequence[Message]) -> tuple[dict[str, Series], dict[str, int], int]:
    """The messages' readings per channel, how far each channel is known complete (its batches'
    receive time) and the newest reading's time (0: none). Control messages are not readings,
    and undecodable ones are the aggregator's to dead-letter."""
    batches: list[ReadingBatch] = []
    for m in messages:
        if is_control(m.headers):
            continue
        try:
            batches.append(codec.decode(m.value))
        except CodecError:
            continue
    if not batches:
        return {}, {}, 0
    keys: dict[str, int] = {}
    complete: dict[str, int] = {}
    channels = []
    for b in batches:
        lut = np.array([keys.setdefault(c, len(keys)) for c in b.channel_ids], np.int32)
        channels.append(lut[b.channel_index])
        for c in b.channel_ids:
            complete[c] = max(complete.get(c, b.receive_ts_ns), b.receive_ts_ns)
    ts = np.concatenate([b.ts_ns for b in batches])
    series = split_by_channel(
        list(keys),
        np.concatenate(channels),
        ts,
        np.concatenate([b.value for b in batches]),
        np.concatenate([b.quality for b in batches]),
    )
    return series, complete, int(ts.max()) if ts.size else 0


class Alerting:
    """One alerting process per plant: it is the only writer of the point states."""

    def __init__(
        self,
        plant: Plant,
        bus: Bus,
        store: Store,
        outbox: Outbox,
        *,
        options: AlertingOptions | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
        live: LiveSink | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.plant = plant
        self.bus = bus
        self.store = store
        self.outbox = outbox
        self.opt = options or AlertingOptions()
        self.clock_ns = clock_ns
        self.live = live
        self.progress = progress or Progress("alerting")  # what GET /readyz reports
        self.engine = AlertEngine(plant, targets=outbox.routes)
        self.tick_ns = int(self.opt.tick_s * NS_PER_S)
        self.poll_ns = int(self.opt.poll_s * NS_PER_S)
        self.flush_ns = int(self.opt.flush_s * NS_PER_S)
        self.ticked_ns = self.checked_ns = self.requested_ns = self.learned_ns = 0
        self.flushed_ns = 0
        self.events_total = 0
        self.pending = Step()  # evaluated, not yet stored: adopted only once it is
        self.pending_messages: list[Message] = []

    async def start(self) -> None:
        """Load the stored states, open alerts and rules; close alerts of points whose rule went
        while the process was down; learn the baselines."""
        points = await self.store.alert_points()
        self.engine.load(points, await self.store.alerts(closed=False, limit=1_000_000))
        now = self.clock_ns()
        s = Step()
        await self._reload(s, now, force=True)
        await self._store(s, now, ())
        await self._learn(now)
        log.info(
            "alerting: %d rules on %d channels, %d open alerts",
            len({b.rule.id for b in self.engine.bindings}),
            len({b.channel_id for b in self.engine.bindings}),
            len(self.engine.rows),
        )

    async def run(self) -> None:
        """Until cancelled: the outbox's workers and the consuming loop."""
        await self.start()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.outbox.run())
            tg.create_task(self._consume())

    async def _consume(self) -> None:
        async with self.bus.subscribe(self.opt.topic, self.opt.group) as sub:
            log.info("alerting consuming %s as group %s", self.opt.topic, self.opt.group)
            backoff_s = 0.5
            while True:
                try:
                    await self.cycle(sub)
                    backoff_s = 0.5
                    self.progress.done()
                except (PlantPulseError, OSError) as e:
                    self.progress.failed(f"{type(e).__name__}: {e}")
                    log.error(
                        "alerting failed, retrying in %.1f s from the last commit: %s", backoff_s, e
                    )
                    self.pending, self.pending_messages = Step(), []
                    await asyncio.sleep(backoff_s)
                    backoff_s = min(2 * backoff_s, self.opt.max_backoff_s)
                    await sub.rewind()

    async def cycle(self, sub: Subscription) -> None:
        """One poll: rules reload, readings, operator requests and the tick; stored in one
        transaction when something happened (or at the flush interval); then the bus commit;
        then the notifications."""
        messages = await sub.poll(self.opt.max_records, timeout_s=self.opt.poll_s)
        now = self.clock_ns()
        s = self.pending
        if now - self.checked_ns >= self.tick_ns:
            await self._reload(s, now)
        if messages:
            readings, complete, newest = readings_of(messages)
            # Readings advance time-driven rules only to their own time, so a consumer
            # catching up on a backlog never finds a channel stale that was not.
            done = {c: t for c, t in complete.items() if t <= now}
            bindings = self.engine.affected(s, readings)
            for i in range(0, len(bindings), self.opt.chunk):
                part = bindings[i : i + self.opt.chunk]
                self.engine.evaluate(s, readings, part, now_ns=min(newest, now), complete_ns=done)
                await asyncio.sleep(0)  # let deliveries and the API run meanwhile
        if now - self.requested_ns >= self.poll_ns:
            self.requested_ns = now
            for r in await self.store.pending_alert_requests():
                self.engine.request(s, r, now)
        if len(messages) < self.opt.max_records and now - self.ticked_ns >= self.tick_ns:
            self.ticked_ns = now
            self.engine.tick(s, now)
        self.pending_messages += messages
        urgent = s.events or s.outcomes or s.dropped or s.bindings is not None
        if urgent or now - self.flushed_ns >= self.flush_ns:
            taken = self.pending_messages
            self.pending, self.pending_messages, self.flushed_ns = Step(), [], now
            await self._store(s, now, taken, sub)
        if now - self.learned_ns >= self.opt.baseline_refresh_s * NS_PER_S:
            await self._learn(now)

    async def _store(
        self,
        s: Step,
        now: int,
        messages: Sequence[Message],
        sub: Subscription | None = None,
    ) -> None:
        p: Prepared | None = None
        if s:
            p = self.engine.prepare(s, now)
            await self.store.write_alerting(p.write)
            self.engine.adopt(s, p)
            self._log(s)
        try:
            if messages and sub is not None:
                await sub.commit(messages)
        finally:
            if p is not None:  # stored: owed whether or not the commit went through
                self.outbox.offer(p.write.outbox)
                if self.live is not None and p.payloads:
                    self.live(p.payloads)

    async def _reload(self, s: Step, now: int, *, force: bool = False) -> None:
        """Re-read the rules when their version moved (an API change) and re-bind them."""
        self.checked_ns = now
        version = await self.store.alert_rules_version()
        if version == self.engine.rules_version and not force:
            return
        bindings = bind(rules_of(await self.store.alert_rules()), self.plant)
        self.engine.rebind(s, bindings, version, now)
        if not force:
            log.info("alert rules version %d: %d bindings", version, len(bindings))
            if set(baseline_channels(bindings)) - set(self.engine.baselines):
                self.learned_ns = 0  # a new deviation rule: learn its baseline next

    async def _learn(self, now: int) -> None:
        self.learned_ns = now
        self.engine.baselines = await learn_baselines(
            self.store, self.engine.bindings, end_ns=now, bucket_ns=self.opt.bucket_s * NS_PER_S
        )

    def _log(self, s: Step) -> None:
        self.events_total += len(s.events)
        for e in s.events:
            if e.kind in _LOGGED:
                log.info("alert %s %s: %s", e.alert_id, e.kind, e.message)

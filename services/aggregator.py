"""The aggregator process: consume reading batches, run the compute step, write, then commit.

Offsets are committed only after the store transaction holding their effects has committed; a
failed write rewinds to the committed position and retries with backoff, which is also the
backpressure: nothing more is consumed while the store is down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np

from compute import codec
from compute.aggregate import ChannelSpec, Readings, Replacement, step
from compute.buckets import BucketDeltas, bucket_columns, merge_buckets
from compute.errors import CodecError, PlantPulseError
from compute.late import closed_part, recount, stored_readings
from compute.meter_events import decode_event
from compute.model import NS_PER_S, ReadingBatch, datetime_ns
from compute.plant import ChannelKind, ChannelRef, Plant
from compute.rollups import rollup_deltas
from compute.windows import RollingSpec
from services.bus import Bus, Message, Subscription
from services.live import LiveWindows
from services.progress import Progress
from services.replacement_recount import in_order, refusal, replacement_write, with_recorded
from services.store import Revisions, Store, StoreWrite

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejected:
    message: Message
    reason: str


GAP_INTERVALS = 3  # an interval between good readings longer than this many polls is a gap


def channel_spec(ref: ChannelRef) -> ChannelSpec:
    c = ref.channel
    return ChannelSpec(
        is_counter=c.kind is ChannelKind.COUNTER,
        wrap_modulus=ref.wrap_modulus,
        max_rate_per_s=(c.max_rate_per_h or 0.0) / 3600.0,
        resolution=c.modbus.scale if c.modbus is not None else 0.0,
        gap_ns=int(GAP_INTERVALS * ref.meter.interval_s * NS_PER_S),
        replacements=tuple(
            Replacement(
                ts_ns=datetime_ns(r.at),
                old_final=r.old_final,
                new_initial=r.new_initial,
            )
            for r in c.replacements
        ),
    )


def channel_specs(plant: Plant) -> dict[str, ChannelSpec]:
    return {k: channel_spec(r) for k, r in plant.channels.items()}


class ChannelCheck:
    """The channels of a table that the plant does not know, memoised per table: a meter sends
    the same one every poll, and the codec hands out the same tuple for it."""

    MAX_TABLES = 4096

    def __init__(self, known: Collection[str]) -> None:
        self.known = known
        self._memo: dict[tuple[str, ...], list[str]] = {}

    def unknown(self, channel_ids: tuple[str, ...]) -> list[str]:
        got = self._memo.get(channel_ids)
        if got is None:
            if len(self._memo) >= self.MAX_TABLES:
                self._memo.clear()
            got = self._memo[channel_ids] = [c for c in channel_ids if c not in self.known]
        return got


def decode_all(
    messages: Sequence[Message], check: ChannelCheck
) -> tuple[list[ReadingBatch], list[Rejected]]:
    """Decode messages; those that fail to decode or name unknown channels are rejected with why."""
    good, bad = [], []
    for m in messages:
        try:
            batch = codec.decode(m.value)
        except CodecError as e:
            bad.append(Rejected(message=m, reason=f"undecodable: {e}"))
            continue
        if unknown := check.unknown(batch.channel_ids):
            bad.append(
                Rejected(
                    message=m, reason=f"unknown channels {unknown} from meter {batch.meter_id!r}"
                )
            )
        else:
            good.append(batch)
    return good, bad


class Aggregator:
    def __init__(
        self,
        plant: Plant,
        bus: Bus,
        store: Store,
        *,
        group: str,
        topic: str = "plantpulse.readings",
        bucket_s: int = 60,
        max_records: int = 2000,
        max_backoff_s: float = 30.0,
        allowed_lateness_s: float = 120.0,
        clock_ns: Callable[[], int] = time.time_ns,
        metrics_topic: str = "plantpulse.metrics",
        publish_interval_s: float = 5.0,
        progress: Progress | None = None,
    ) -> None:
        self.configured = channel_specs(plant)
        self.specs = dict(self.configured)  # with the meter replacements recorded in the store
        self.interval_ns = {
            k: int(r.meter.interval_s * NS_PER_S) for k, r in plant.channels.items()
        }
        self.tz_of = {k: r.site.timezone for k, r in plant.channels.items()}
        self.check = ChannelCheck(self.specs)
        self.bus = bus
        self.store = store
        self.group = group
        self.topic = topic
        self.dlq_topic = f"{topic}.dlq"
        self.bucket_ns = bucket_s * NS_PER_S
        self.max_records = max_records
        self.max_backoff_s = max_backoff_s
        self.lateness_ns = int(allowed_lateness_s * NS_PER_S)
        self.clock_ns = clock_ns
        self.metrics_topic = metrics_topic
        self.publish_interval_ns = int(publish_interval_s * NS_PER_S)
        self.live = LiveWindows(
            plant, spec=RollingSpec(bucket_s=bucket_s), allowed_lateness_s=allowed_lateness_s
        )
        self.progress = progress or Progress("aggregator")  # what GET /readyz reports

    async def handle(self, messages: Sequence[Message]) -> None:
        """Apply one poll's messages: DLQ the bad ones, write the effects of the good ones. A
        meter replacement recorded through the API arrives as a control message on its meter's
        partition and takes effect at its place there; the recorded ones are re-read every poll,
        so an aggregator given a partition by a rebalance counts with them too."""
        self.specs = with_recorded(self.configured, await self.store.meter_replacements())
        for run, control in in_order(messages):
            batches, rejected = decode_all(run, self.check)
            for r in rejected:
                await self._dead_letter(r)
            if batches:
                await self._aggregate(batches)
            if control is not None:
                await self._replace(control)

    async def _replace(self, m: Message) -> None:
        """Record a meter replacement and recount what it changes, in one transaction; a replayed
        one (recorded already) changes nothing."""
        try:
            e = decode_event(m.value)
        except CodecError as err:
            await self._dead_letter(Rejected(message=m, reason=str(err)))
            return
        spec = self.specs.get(e.channel_id)
        if (why := refusal(e, spec)) is not None or spec is None:
            if why:  # "" is a replay of one recorded already
                await self._dead_letter(Rejected(message=m, reason=why))
            return
        now_ns = self.clock_ns()
        w = await replacement_write(
            self.store,
            e,
            spec,
            tz=self.tz_of[e.channel_id],
            bucket_ns=self.bucket_ns,
            interval_ns=self.interval_ns[e.channel_id],
            lateness_ns=self.lateness_ns,
            now_ns=now_ns,
        )
        await self.store.write(w)
        self.specs = with_recorded(self.configured, await self.store.meter_replacements())
        if not self.live.unseen([e.channel_id]):
            self.live.apply(w.buckets, now_ns)

    async def _dead_letter(self, r: Rejected) -> None:
        m = r.message
        log.warning("to DLQ %s[%d]@%d: %s", m.topic, m.partition, m.offset, r.reason)
        source = f"{m.topic}/{m.partition}/{m.offset}".encode()
        await self.bus.publish(
            self.dlq_topic,
            m.key or b"",
            m.value,
            [("reason", r.reason.encode()), ("source", source)],
        )

    async def _aggregate(self, batches: Sequence[ReadingBatch]) -> None:
        """One step over the batches, with late readings recounted, written in one transaction;
        then the live windows follow."""
        keys = sorted({c for b in batches for c in b.channel_ids})
        now_ns = self.clock_ns()
        if unseen := self.live.unseen(keys):
            since_ns = now_ns - self.live.history_s * NS_PER_S
            self.live.rebuild(await self.store.series_many(unseen, since_ns, now_ns), now_ns)
        state = await self.store.load_state(keys)
        result = step(batches, self.specs, state, self.bucket_ns)
        buckets, revisions = result.buckets, None
        if len(result.late.ts_ns):
            corrections = await self._recount(result.late)
            buckets = merge_buckets(
                buckets.keys, [bucket_columns(buckets), bucket_columns(corrections)], self.bucket_ns
            )
            closed = closed_part(corrections, self.bucket_ns, now_ns - self.lateness_ns)
            if len(closed.channel):
                revisions = Revisions(buckets=closed, revised_at_ns=now_ns)
        await self.store.write(
            StoreWrite(
                readings=result.readings,
                buckets=buckets,
                state=result.state,
                events=result.events,
                revisions=revisions,
                new=result.fresh,
                rollups={p.value: d for p, d in rollup_deltas(buckets, self.tz_of).items()},
            )
        )
        self.live.apply(buckets, now_ns)

    async def publish_live(self) -> None:
        """The rolling figures of the channels handled here, to the metrics topic."""
        await self.bus.publish(
            self.metrics_topic, self.group.encode(), self.live.snapshot(self.clock_ns())
        )

    async def _recount(self, late: Readings) -> BucketDeltas:
        """Bucket corrections for the late readings not stored yet (replays add nothing)."""
        rows = []
        for c in np.unique(late.channel).tolist():
            ts = late.ts_ns[late.channel == c]
            around = await self.store.readings_around(late.keys[c], int(ts[0]), int(ts[-1]))
            rows += [(c, t, v, q) for t, v, q in around]
        new, corrections = recount(
            late, stored_readings(late.keys, rows), self.specs, self.bucket_ns
        )
        if len(new.ts_ns):
            log.info(
                "%d late readings of %d channels: their buckets recounted",
                len(new.ts_ns),
                len(np.unique(new.channel)),
            )
        return corrections

    async def _cycle(self, sub: Subscription) -> None:
        messages = await sub.poll(self.max_records, timeout_s=1.0)
        if messages:
            await self.handle(messages)
            await sub.commit(messages)

    async def run(self) -> None:
        """Consume until cancelled; publish the rolling figures every publish interval."""
        async with self.bus.subscribe(self.topic, self.group) as sub:
            log.info("aggregator consuming %s as group %s", self.topic, self.group)
            backoff_s = 0.5
            published_ns = 0
            while True:
                try:
                    await self._cycle(sub)
                    if self.clock_ns() - published_ns >= self.publish_interval_ns:
                        await self.publish_live()
                        published_ns = self.clock_ns()
                    backoff_s = 0.5
                    self.progress.done()
                except (PlantPulseError, OSError) as e:
                    self.progress.failed(f"{type(e).__name__}: {e}")
                    log.error(
                        "aggregation failed, retrying in %.1f s from the last commit: %s",
                        backoff_s,
                        e,
                    )
                    await asyncio.sleep(backoff_s)
                    backoff_s = min(2 * backoff_s, self.max_backoff_s)
                    await sub.rewind()

"""The aggregator's side of meter replacements recorded through the API: control messages in a
poll, the specs with the recorded replacements, and the write that records one and recounts
around it. Used by the aggregator only; it knows no bus."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence

from compute.aggregate import ChannelSpec, no_events, no_readings
from compute.buckets import no_buckets
from compute.late import closed_part, stored_readings
from compute.meter_events import ReplacementEvent, is_control, recount
from compute.rollups import rollup_deltas
from services.bus import Message
from services.store import Revisions, Store, StoreWrite
from services.store.external import replacement_entry

log = logging.getLogger(__name__)

FIRST_WINDOW_INTERVALS = 16  # readings after the swap looked at first; the window grows 4x


def in_order(messages: Sequence[Message]) -> list[tuple[list[Message], Message | None]]:
    """The poll's messages as runs of reading batches, each followed by the control message
    (a meter replacement) that ended it, so each takes effect at its place in the stream."""
    runs: list[tuple[list[Message], Message | None]] = []
    run: list[Message] = []
    for m in messages:
        if is_control(m.headers):
            runs.append((run, m))
            run = []
        else:
            run.append(m)
    if run or not runs:
        runs.append((run, None))
    return runs


def with_recorded(
    configured: Mapping[str, ChannelSpec], recorded: Iterable[ReplacementEvent]
) -> dict[str, ChannelSpec]:
    """The configured specs with the recorded replacements of their channels added."""
    extra: dict[str, list[ReplacementEvent]] = {}
    for e in recorded:
        if e.channel_id in configured:
            extra.setdefault(e.channel_id, []).append(e)
    specs = dict(configured)
    for c, events in extra.items():
        added = tuple(e.replacement for e in events)
        specs[c] = dataclasses.replace(specs[c], replacements=specs[c].replacements + added)
    return specs


def refusal(e: ReplacementEvent, spec: ChannelSpec | None) -> str | None:
    """Why e cannot be applied to a channel of that spec ("" when it is recorded already, as
    after a replay), or None."""
    if spec is None or not spec.is_counter:
        return f"{e.channel_id}: not a counter of the plant"
    same = [x for x in spec.replacements if x.ts_ns == e.at_ns]
    if same == [e.replacement]:
        return ""
    if same:
        return f"{e.channel_id}: another replacement is recorded at that instant"
    return None


async def replacement_write(
    store: Store,
    e: ReplacementEvent,
    spec: ChannelSpec,
    *,
    tz: str,
    bucket_ns: int,
    interval_ns: int,
    lateness_ns: int,
    now_ns: int,
) -> StoreWrite:
    """The write recording e with its audit entry, and, when the channel's readings have passed
    the swap already, the bucket corrections (restatements for closed buckets) of recounting the
    stored readings from the last good one before it with the replacement.

    The window after the swap grows until the counts with and without it agree (usually at the
    second reading of the new meter); when it reaches the newest reading first, the channel's
    counter state is replaced by the one with the replacement.
    """
    c = e.channel_id
    keys = (c,)
    base = StoreWrite(
        readings=no_readings(keys),
        buckets=no_buckets(keys),
        state={},
        events=no_events(keys),
        replacements=[e],
        audit=[replacement_entry(e, now_ns)],
    )
    state = (await store.load_state([c])).get(c)
    if state is None or state.last_ts_ns < e.at_ns:
        return base  # not passed yet: counted as configured ones are, when readings pass it
    with_it = dataclasses.replace(spec, replacements=(*spec.replacements, e.replacement))
    end_ns, step_ns = e.at_ns, FIRST_WINDOW_INTERVALS * interval_ns
    while True:
        rows = await store.readings_around(c, e.at_ns, end_ns)
        got = recount(stored_readings(keys, [(0, *x) for x in rows]), spec, with_it, bucket_ns)
        if got.converged or end_ns >= state.last_ts_ns:
            break
        end_ns, step_ns = min(state.last_ts_ns, end_ns + step_ns), 4 * step_ns
    new_state = {}
    if not got.converged:
        new_state[c] = dataclasses.replace(
            state,
            counter_ts_ns=got.state_ts[0],
            counter_value=got.state_value[0],
            held_ts_ns=got.state_ts[1],
            held_value=got.state_value[1],
        )
    closed = closed_part(got.buckets, bucket_ns, now_ns - lateness_ns)
    log.info(
        "meter replacement of %s at %d recorded after the fact: %d readings recounted",
        c,
        e.at_ns,
        len(rows),
    )
    return dataclasses.replace(
        base,
        buckets=got.buckets,
        state=new_state,
        revisions=Revisions(buckets=closed, revised_at_ns=now_ns) if len(closed.channel) else None,
        rollups={p.value: d for p, d in rollup_deltas(got.buckets, {c: tz}).items()},
    )

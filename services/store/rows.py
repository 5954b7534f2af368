"""Row conversions and read queries shared by the store implementations."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from compute.aggregate import ChannelState, CounterEvents, Readings
from compute.buckets import BucketDeltas
from compute.calendar import Period
from compute.denominators import PeriodValue
from compute.indicators import Denominator
from compute.kernels import CounterEvent
from compute.model import NO_TS
from compute.rollups import Part
from services.store import Bucket, ChannelTotal, Latest, Revisions, StoredReading

SERIES_SQL = (
    "SELECT channel_id, bucket_start_ns, n, n_good, sum, min, max, last, estimated FROM buckets"
    " WHERE channel_id = %s AND bucket_start_ns >= %s AND bucket_start_ns < %s"
    " ORDER BY bucket_start_ns"
)
AROUND_SQL = (
    "SELECT ts_ns, value, quality FROM readings WHERE channel_id = %s"
    " AND ts_ns >= coalesce((SELECT max(ts_ns) FROM readings"
    " WHERE channel_id = %s AND ts_ns < %s AND quality = 0), %s)"
    " AND ts_ns <= coalesce((SELECT min(ts_ns) FROM readings"
    " WHERE channel_id = %s AND ts_ns > %s AND quality = 0), %s)"
    " ORDER BY ts_ns"
)
INSERT_REVISION_SQL = (  # corrections made at the same instant add up
    "INSERT INTO bucket_revisions AS r VALUES (%s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (channel_id, bucket_start_ns, revised_at_ns) DO UPDATE SET"
    " n = r.n + excluded.n, n_good = r.n_good + excluded.n_good,"
    " sum = r.sum + excluded.sum, estimated = r.estimated + excluded.estimated"
)
REVISIONS_SQL = (
    "SELECT bucket_start_ns, revised_at_ns, sum FROM bucket_revisions"
    " WHERE channel_id = %s AND bucket_start_ns >= %s AND bucket_start_ns < %s"
    " ORDER BY bucket_start_ns, revised_at_ns"
)
READINGS_PAGE_SQL = (  # keyset pagination: the rows after (channel_id, ts_ns) = (%s, %s)
    "SELECT channel_id, ts_ns, value, quality, receive_ts_ns, server_ts_ns FROM readings"
    " WHERE {in_channels} AND ts_ns >= %s AND ts_ns < %s AND (channel_id, ts_ns) > (%s, %s)"
    " ORDER BY channel_id, ts_ns LIMIT %s"
)
PERIOD_VALUES_SQL = (
    "SELECT site_id, kind, start_ns, end_ns, value, source, recorded_at_ns FROM period_values"
    " WHERE site_id = %s AND kind = %s AND start_ns < %s AND end_ns > %s"
    " ORDER BY start_ns, recorded_at_ns"
)
INSERT_PERIOD_VALUE_SQL = "INSERT INTO period_values VALUES (%s, %s, %s, %s, %s, %s, %s)"
EVENTS_SQL = (
    "SELECT ts_ns, event, value FROM counter_events"
    " WHERE channel_id = %s AND ts_ns >= %s AND ts_ns < %s ORDER BY ts_ns, event"
)
STATE_COLUMNS = "channel_id, last_ts_ns, counter_ts_ns, counter_value, held_ts_ns, held_value"
# {in_channels}: the dialect's test of channel_id against one parameter holding every channel id
# (one parameter, so no limit on the number of channels and one prepared statement)
IN_CHANNELS_PG = "channel_id = ANY(%s)"
IN_CHANNELS_SQLITE = "channel_id IN (SELECT value FROM json_each(?))"
STATE_SQL = "SELECT " + STATE_COLUMNS + " FROM channel_state WHERE {in_channels}"
SERIES_MANY_SQL = (
    "SELECT channel_id, bucket_start_ns, n, n_good, sum, min, max, last, estimated FROM buckets"
    " WHERE {in_channels} AND bucket_start_ns >= %s AND bucket_start_ns < %s"
)
ROLLUP_STARTS_SQL = "SELECT period, from_ns FROM rollup_starts"
TOTALS_SQL = (
    "SELECT channel_id, sum(sum), sum(n), sum(n_good), count(*), sum(estimated) FROM buckets"
    " WHERE {in_channels} AND bucket_start_ns >= %s AND bucket_start_ns < %s"
    " GROUP BY channel_id"
)


def _f(x: float) -> float | None:
    return None if x != x else float(x)


def reading_rows(r: Readings) -> Iterator[tuple[str, int, float | None, int, int, int | None]]:
    """Rows in the readings table's column order; unknown server times become NULL."""
    keys = r.keys
    for c, t, v, q, rt, st in zip(
        r.channel.tolist(),
        r.ts_ns.tolist(),
        r.value.tolist(),
        r.quality.tolist(),
        r.receive_ts_ns.tolist(),
        r.server_ts_ns.tolist(),
        strict=True,
    ):
        yield keys[c], t, _f(v), q, rt, (None if st == NO_TS else st)


def latest_rows(r: Readings) -> Iterator[tuple[str, int, float | None, int, int]]:
    """The newest reading per channel (readings are sorted by channel, then time)."""
    if len(r.channel) == 0:
        return
    last = np.flatnonzero(np.append(r.channel[1:] != r.channel[:-1], True))
    for i in last.tolist():
        yield (
            r.keys[int(r.channel[i])],
            int(r.ts_ns[i]),
            _f(float(r.value[i])),
            int(r.quality[i]),
            int(r.receive_ts_ns[i]),
        )


# How a bucket or roll-up row absorbs a delta row (PostgreSQL: the existing row is "b").
MERGE_SET = """
    n = b.n + excluded.n,
    n_good = b.n_good + excluded.n_good,
    sum = b.sum + excluded.sum,
    estimated = b.estimated + excluded.estimated,
    min = LEAST(b.min, excluded.min),
    max = GREATEST(b.max, excluded.max),
    last = CASE WHEN coalesce(excluded.last_ts_ns, -1) > coalesce(b.last_ts_ns, -1)
                THEN excluded.last ELSE b.last END,
    last_ts_ns = GREATEST(b.last_ts_ns, excluded.last_ts_ns)"""


def bucket_rows(b: BucketDeltas) -> Iterator[tuple[Any, ...]]:
    """Rows in the buckets table's column order."""
    for c, s, n, ng, sm, mn, mx, la, lt, est in zip(
        b.channel.tolist(),
        b.bucket_start_ns.tolist(),
        b.n.tolist(),
        b.n_good.tolist(),
        b.sum.tolist(),
        b.min.tolist(),
        b.max.tolist(),
        b.last.tolist(),
        b.last_ts_ns.tolist(),
        b.estimated.tolist(),
        strict=True,
    ):
        last_ts = lt if _f(la) is not None else None
        yield b.keys[c], s, n, ng, sm, _f(mn), _f(mx), _f(la), last_ts, est


def rollup_rows(rollups: Mapping[str, BucketDeltas]) -> Iterator[tuple[Any, ...]]:
    """Rows in the rollups table's column order, from roll-up deltas per period name."""
    for period, deltas in rollups.items():
        for key, *rest in bucket_rows(deltas):
            yield key, period, *rest


def state_rows(state: dict[str, ChannelState]) -> Iterator[tuple[str, int, int, float, int, float]]:
    """Rows in STATE_COLUMNS order."""
    for c, s in state.items():
        yield c, s.last_ts_ns, s.counter_ts_ns, s.counter_value, s.held_ts_ns, s.held_value


def channel_state(row: Any) -> ChannelState:
    _, last, base_ts, base, held_ts, held = row
    return ChannelState(
        last_ts_ns=last,
        counter_ts_ns=base_ts,
        counter_value=base,
        held_ts_ns=held_ts,
        held_value=held,
    )


def around_params(channel_id: str, start_ns: int, end_ns: int) -> tuple[Any, ...]:
    """AROUND_SQL's parameters: with no good neighbour, from the first or to the last reading."""
    lo, hi = -(2**63), 2**63 - 1
    return channel_id, channel_id, start_ns, lo, channel_id, end_ns, hi


def revision_rows(rev: Revisions) -> Iterator[tuple[Any, ...]]:
    b = rev.buckets
    for c, s, n, ng, sm, est in zip(
        b.channel.tolist(),
        b.bucket_start_ns.tolist(),
        b.n.tolist(),
        b.n_good.tolist(),
        b.sum.tolist(),
        b.estimated.tolist(),
        strict=True,
    ):
        yield b.keys[c], s, rev.revised_at_ns, n, ng, sm, est


def event_rows(e: CounterEvents) -> Iterator[tuple[str, int, int, float]]:
    for c, t, k, v in zip(
        e.channel.tolist(), e.ts_ns.tolist(), e.event.tolist(), e.value.tolist(), strict=True
    ):
        yield e.keys[c], t, k, v


def latest(row: Any) -> Latest:
    c, t, v, q, rt = row
    return Latest(
        channel_id=c,
        ts_ns=t,
        value=v if v is not None else float("nan"),
        quality=q,
        receive_ts_ns=rt,
    )


def bucket(row: Any) -> Bucket:
    c, s, n, ng, sm, mn, mx, la, est = row
    return Bucket(
        channel_id=c,
        bucket_start_ns=s,
        n=n,
        n_good=ng,
        sum=sm,
        estimated=est,
        min=mn,
        max=mx,
        last=la,
    )


def stored_reading(row: Any) -> tuple[int, float, int]:
    t, v, q = row
    return int(t), (float("nan") if v is None else float(v)), int(q)


def period_value(row: Any) -> PeriodValue:
    site, kind, start, end, value, source, at = row
    return PeriodValue(
        site=site,
        kind=Denominator(kind),
        start_ns=int(start),
        end_ns=int(end),
        value=float(value),
        source=source,
        recorded_at_ns=int(at),
    )


def period_value_row(v: PeriodValue) -> tuple[Any, ...]:
    """In the period_values table's column order."""
    return v.site, v.kind.value, v.start_ns, v.end_ns, v.recorded_at_ns, v.value, v.source


def stored(row: Any) -> StoredReading:
    c, t, v, q, rt, st = row
    return StoredReading(
        channel_id=c, ts_ns=t, value=v, quality=q, receive_ts_ns=rt, server_ts_ns=st
    )


def counter_event(row: Any) -> tuple[int, CounterEvent, float]:
    t, k, v = row
    return int(t), CounterEvent(k), float(v)


def total(row: Any) -> ChannelTotal:
    c, sm, n, ng, k, est = row
    return ChannelTotal(
        channel_id=c,
        sum=float(sm),
        estimated=float(est),
        n=int(n),
        n_good=int(ng),
        buckets=int(k),
    )


def rollup_starts(rows: list[tuple[Any, ...]]) -> dict[Period, int]:
    """Per kind of roll-up, the start of its complete periods, from rollup_starts' rows."""
    return {Period(period): int(from_ns) for period, from_ns in rows}


_PART_SQL = {  # one part of a plan: its rows' sums, counts and estimated parts
    "buckets": "SELECT channel_id, sum, n, n_good, estimated FROM buckets"
    " WHERE {in_channels} AND bucket_start_ns >= {start} AND bucket_start_ns < {end}",
    "rollups": "SELECT channel_id, sum, n, n_good, estimated FROM rollups"
    " WHERE {in_channels} AND period = {period} AND period_start_ns >= {start}"
    " AND period_start_ns < {end}",
}


def plan_totals_sql(
    parts: Sequence[Part], in_channels: str, name: Callable[[str], str]
) -> tuple[str, dict[str, Any]]:
    """One statement summing every part of a plan (compute.rollups.plan) per channel, so a
    period costs one round trip; and its parameters but the channels'. in_channels tests
    channel_id against the parameter named "channels"; name(key) spells a named parameter."""
    selects: list[str] = []
    params: dict[str, Any] = {}
    for i, part in enumerate(parts):
        keys = {"start": f"s{i}", "end": f"e{i}", "period": f"p{i}"}
        params |= {keys["start"]: part.start_ns, keys["end"]: part.end_ns}
        if part.source != "buckets":
            params[keys["period"]] = part.source
        sql = _PART_SQL["buckets" if part.source == "buckets" else "rollups"]
        selects.append(sql.format(in_channels=in_channels, **{k: name(v) for k, v in keys.items()}))
    union = " UNION ALL ".join(selects)
    return (
        "SELECT channel_id, sum(sum), sum(n), sum(n_good), count(*), sum(estimated)"
        f" FROM ({union}) AS parts GROUP BY channel_id",
        params,
    )

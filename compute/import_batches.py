"""Parsed readings checked against the stored ones around them, summarised, and cut into
ReadingBatches of one meter each. Pure: the caller fetches the stored readings and publishes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from compute.import_csv import (
    ImportChannel,
    Issue,
    ParsedReadings,
    plausible_step,
    replaced_between,
)
from compute.model import NO_TS, Quality, ReadingBatch

MAX_BATCH_READINGS = 5_000  # one bus message; the aggregator recounts late readings per poll


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelSummary:
    """What an import brings to one channel: readings new to the store, readings it holds
    already (the same value and quality at the same time), and the time range of both."""

    channel_id: str
    readings: int
    already_stored: int
    first_ts_ns: int
    last_ts_ns: int


def _same(a_value: float, a_quality: int, b_value: float, b_quality: int) -> bool:
    both_nan = math.isnan(a_value) and math.isnan(b_value)
    return a_quality == b_quality and (both_nan or a_value == b_value)


def stored_issues(
    p: ParsedReadings,
    c: int,
    stored: Sequence[tuple[int, float, int]],
    info: ImportChannel,
) -> tuple[list[Issue], npt.NDArray[np.bool_]]:
    """Problems of channel index c's readings against the stored (ts_ns, value, quality) around
    them, oldest first: a stored reading at the same time with another value or quality (a
    reading is never replaced), and a counter going back between an imported reading and a
    stored good neighbour. Also the mask, over p.of(c), of readings stored identically already.
    """
    cid = p.channel_ids[c]
    part = p.of(c)
    ts, val, q, rows = p.ts_ns[part], p.value[part], p.quality[part], p.row[part]
    at = {t: (v, qq) for t, v, qq in stored}
    issues: list[Issue] = []
    known = np.zeros(len(ts), np.bool_)
    for i, t in enumerate(ts.tolist()):
        if (s := at.get(t)) is None:
            continue
        if _same(float(val[i]), int(q[i]), float(s[0]), int(s[1])):
            known[i] = True
        else:
            issues.append(
                Issue(
                    row=int(rows[i]),
                    column="value",
                    message=f"channel {cid!r} has a stored reading at this time, {s[0]:g} "
                    f"({Quality(int(s[1])).name.lower()}): a stored reading is never replaced",
                )
            )
    if not info.is_counter or issues:
        return issues, known
    # good readings, stored and imported, in time order; an identical pair counts once
    merged = [(t, v, 0) for t, v, qq in stored if qq == Quality.GOOD]
    good = (q == Quality.GOOD) & ~known
    merged += [(t, v, int(r)) for t, v, r in zip(ts[good], val[good], rows[good], strict=True)]
    merged.sort(key=lambda x: x[0])
    for (t0, v0, r0), (t1, v1, r1) in pairwise(merged):
        if (r0 or r1) and not (r0 and r1) and v1 < v0:  # imported beside stored
            if plausible_step(v0, v1, info.wrap_modulus) or replaced_between(info, t0, t1):
                continue
            row, other = (
                (r1, "the stored reading before it") if r1 else (r0, "the stored one after")
            )
            issues.append(
                Issue(
                    row=row,
                    column="value",
                    message=f"counter {cid!r} goes back between this reading and {other} "
                    f"({v0:g} -> {v1:g}): record the meter replacement first if there was one",
                )
            )
    return issues, known


def summaries(p: ParsedReadings, known: npt.NDArray[np.bool_]) -> list[ChannelSummary]:
    """Per channel, in the order of p.channel_ids sorted: new and already-stored counts, and the
    time range of the channel's readings in the input."""
    out = []
    for c in sorted(range(len(p.channel_ids)), key=lambda i: p.channel_ids[i]):
        part = p.of(c)
        ts, dup = p.ts_ns[part], known[part]
        out.append(
            ChannelSummary(
                channel_id=p.channel_ids[c],
                readings=int((~dup).sum()),
                already_stored=int(dup.sum()),
                first_ts_ns=int(ts[0]),
                last_ts_ns=int(ts[-1]),
            )
        )
    return out


def batches(
    p: ParsedReadings,
    keep: npt.NDArray[np.bool_],
    channels: Mapping[str, ImportChannel],
    *,
    source: str,
    receive_ts_ns: int,
    max_readings: int = MAX_BATCH_READINGS,
) -> list[tuple[str, ReadingBatch]]:
    """(bus key, batch) pairs of the kept readings: one meter per batch, in time order, at most
    max_readings each. The key is the meter's id, so a meter's imported readings share the
    partition (and the order) of its live ones; the batch's meter_id is "<source>:<meter>"."""
    meter_of = np.array([channels[cid].meter_id for cid in p.channel_ids], dtype=object)
    out: list[tuple[str, ReadingBatch]] = []
    for meter in sorted(set(meter_of.tolist())):
        mine = keep & (meter_of[p.channel] == meter) if p.size else keep
        idx = np.flatnonzero(mine)
        idx = idx[np.lexsort((p.channel[idx], p.ts_ns[idx]))]
        for lo in range(0, len(idx), max_readings):
            chunk = idx[lo : lo + max_readings]
            used, local = np.unique(p.channel[chunk], return_inverse=True)
            out.append(
                (
                    meter,
                    ReadingBatch(
                        meter_id=f"{source}:{meter}",
                        channel_ids=tuple(p.channel_ids[int(c)] for c in used),
                        channel_index=local.astype(np.uint16),
                        ts_ns=p.ts_ns[chunk],
                        value=p.value[chunk],
                        quality=p.quality[chunk],
                        server_ts_ns=np.full(len(chunk), NO_TS, np.int64),
                        receive_ts_ns=receive_ts_ns,
                    ),
                )
            )
    return out

"""Meter replacements recorded after the fact: the event and its checks, the control message that
carries it to the aggregator in stream order, and the recount of the stored readings it separates.
Pure: the API and the aggregator fetch and store.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from compute.aggregate import ChannelSpec, Readings, Replacement, counter_pass
from compute.buckets import BucketDeltas, merge_buckets
from compute.errors import CodecError, PlantPulseError
from compute.model import NO_TS

KIND_HEADER = "kind"  # a bus header; readings batches have none
REPLACEMENT_KIND = b"meter-replacement"


class ReplacementError(PlantPulseError, ValueError):
    """A replacement event is impossible or clashes with what is recorded; the message says why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplacementEvent:
    """A counter's meter swapped at at_ns: the old meter's final reading and the new one's
    initial reading, who recorded it, when and why."""

    channel_id: str
    at_ns: int
    old_final: float
    new_initial: float
    reason: str
    actor: str
    recorded_at_ns: int

    def __post_init__(self) -> None:
        problems = []
        for name in ("old_final", "new_initial"):
            x = getattr(self, name)
            if not (math.isfinite(x) and x >= 0.0):
                problems.append(f"{name} must be a finite reading >= 0, got {x!r}")
        if not self.reason.strip():
            problems.append("a replacement needs its reason (work order, SOP, note)")
        if not self.actor.strip():
            problems.append("a replacement needs who recorded it")
        if problems:
            raise ReplacementError("; ".join(problems))

    @property
    def replacement(self) -> Replacement:
        return Replacement(ts_ns=self.at_ns, old_final=self.old_final, new_initial=self.new_initial)


def check_event(
    e: ReplacementEvent,
    known_ns: Sequence[int],
    before: tuple[int, float] | None,
    after: tuple[int, float] | None,
) -> None:
    """Refuse an event at the instant of a known (configured or recorded) replacement, an old
    final reading below the last good reading before the swap, or a new initial reading above
    the first good reading after it; `before` and `after` are those (ts_ns, value), if any."""
    if e.at_ns in known_ns:
        raise ReplacementError(f"{e.channel_id!r} has a replacement at that instant already")
    if before is not None and e.old_final < before[1]:
        raise ReplacementError(
            f"old_final {e.old_final:g} is below the old meter's last reading before the swap, "
            f"{before[1]:g}: a counter does not go back"
        )
    if after is not None and after[1] < e.new_initial:
        raise ReplacementError(
            f"new_initial {e.new_initial:g} is above the new meter's first reading after the "
            f"swap, {after[1]:g}: a counter does not go back"
        )


def encode_event(e: ReplacementEvent) -> bytes:
    """The control message's value: the event as JSON."""
    doc = {
        "channel_id": e.channel_id,
        "at_ns": e.at_ns,
        "old_final": e.old_final,
        "new_initial": e.new_initial,
        "reason": e.reason,
        "actor": e.actor,
        "recorded_at_ns": e.recorded_at_ns,
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def decode_event(raw: bytes) -> ReplacementEvent:
    """The event of a control message; CodecError saying why it is not one."""
    try:
        doc = json.loads(raw)
        return ReplacementEvent(
            channel_id=str(doc["channel_id"]),
            at_ns=int(doc["at_ns"]),
            old_final=float(doc["old_final"]),
            new_initial=float(doc["new_initial"]),
            reason=str(doc["reason"]),
            actor=str(doc["actor"]),
            recorded_at_ns=int(doc["recorded_at_ns"]),
        )
    except (ValueError, KeyError, TypeError) as e:
        raise CodecError(f"not a meter-replacement event: {e}") from e


def is_control(headers: Sequence[tuple[str, bytes]]) -> bool:
    return (KIND_HEADER, REPLACEMENT_KIND) in headers


@dataclass(frozen=True, slots=True, kw_only=True)
class Recount:
    """The bucket correction a replacement causes over some stored readings, and whether the
    counter states with and without it agree after them (`converged`: later readings count alike).
    `state_ts` / `state_value` are the counter state with it: base and held-back reading."""

    buckets: BucketDeltas
    converged: bool
    state_ts: tuple[int, int]
    state_value: tuple[float, float]


def _negated(part: tuple[npt.NDArray[np.generic], ...]) -> tuple[npt.NDArray[np.generic], ...]:
    ch, b, n, ng, amt, est, *rest = part
    return (
        ch,
        b,
        n,
        ng,
        np.negative(amt, dtype=np.float64),
        np.negative(est, dtype=np.float64),
        *rest,
    )


def recount(stored: Readings, without: ChannelSpec, with_: ChannelSpec, bucket_ns: int) -> Recount:
    """The consumption of one channel's stored readings counted with the replacement minus
    counted without it, each from the first reading as the base (as compute.late recounts).

    `stored` holds one channel (keys of length 1), sorted, from the last good reading before the
    replacement on; the correction is complete once `converged`.
    """
    first = int(stored.ts_ns[0]) if len(stored.ts_ns) else NO_TS
    last_ts = np.array([first - 1], np.int64)
    empty_ts = np.full((1, 2), NO_TS, np.int64)
    old = counter_pass(stored, [without], last_ts, empty_ts, np.zeros((1, 2)), bucket_ns)
    new = counter_pass(stored, [with_], last_ts, empty_ts, np.zeros((1, 2)), bucket_ns)
    o_ts, n_ts = old.state_ts[0].tolist(), new.state_ts[0].tolist()
    o_v, n_v = old.state_value[0].tolist(), new.state_value[0].tolist()
    held_alike = o_ts[1] == NO_TS or o_v[1] == n_v[1]
    same = o_ts == n_ts and o_v[0] == n_v[0] and held_alike
    return Recount(
        buckets=merge_buckets(stored.keys, [new.spread, _negated(old.spread)], bucket_ns),
        converged=same,
        state_ts=(int(new.state_ts[0, 0]), int(new.state_ts[0, 1])),
        state_value=(float(new.state_value[0, 0]), float(new.state_value[0, 1])),
    )

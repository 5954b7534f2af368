"""The Store port and its records: readings, base buckets, channel state, latest values, totals.

A write is one transaction holding a step's readings, bucket deltas and channel state, so a
replay after a crash finds the state it left and counts nothing twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from compute.aggregate import ChannelState, CounterEvents, Readings
from compute.alert_delivery import DeliveryAttempt
from compute.alert_state import AlertEvent
from compute.audit_chain import Chain, ChainRow
from compute.buckets import BucketDeltas
from compute.calendar import Period
from compute.denominators import PeriodValue
from compute.emissions import EmissionFactor
from compute.factor_versions import FactorVersion
from compute.indicators import Denominator
from compute.kernels import CounterEvent
from compute.meter_events import ReplacementEvent
from compute.rollups import Part
from services.access import ApiToken
from services.store.alerts import AlertStore
from services.store.records import AuditEntry, ConfigVersion
from services.store.reporting import ReportRestatement, ReportSnapshot, RowSum


@dataclass(frozen=True, slots=True, kw_only=True)
class Revisions:
    """Corrections late readings made to closed buckets, kept apart as a restatement record."""

    buckets: BucketDeltas
    revised_at_ns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreWrite:
    """One step's effects. `new` marks the readings known not to be stored yet (after their
    channel's last stored reading, the state being written in the same transaction), which a
    store may insert without looking for a duplicate; None: look for every one."""

    readings: Readings
    buckets: BucketDeltas
    state: dict[str, ChannelState]
    events: CounterEvents
    revisions: Revisions | None = None
    new: npt.NDArray[np.bool_] | None = None
    rollups: Mapping[str, BucketDeltas] | None = None  # roll-up deltas per period name
    # meter replacements applied by this write (kept unless one exists at that instant already)
    replacements: Sequence[ReplacementEvent] = ()
    audit: Sequence[AuditEntry] = ()  # appended in the same transaction


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredReading:
    channel_id: str
    ts_ns: int
    value: float | None
    quality: int
    receive_ts_ns: int
    server_ts_ns: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Latest:
    channel_id: str
    ts_ns: int
    value: float
    quality: int
    receive_ts_ns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Bucket:
    channel_id: str
    bucket_start_ns: int
    n: int
    n_good: int
    sum: float
    estimated: float  # the part of sum spread over a gap in the readings
    min: float | None
    max: float | None
    last: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelTotal:
    channel_id: str
    sum: float
    estimated: float
    n: int
    n_good: int
    buckets: int  # rows summed: base buckets, or roll-ups where they served


class Store(AlertStore, Protocol):
    async def load_state(self, channel_ids: Sequence[str]) -> dict[str, ChannelState]: ...

    async def write(self, w: StoreWrite) -> None:
        """Apply a step atomically: readings and counter events idempotently, bucket deltas
        additively, channel state."""
        ...

    async def latest(self) -> list[Latest]: ...

    async def series(self, channel_id: str, start_ns: int, end_ns: int) -> list[Bucket]:
        """Base buckets of one channel with start in [start_ns, end_ns), oldest first."""
        ...

    async def readings_around(
        self, channel_id: str, start_ns: int, end_ns: int
    ) -> list[tuple[int, float, int]]:
        """Stored (ts_ns, value, quality) of a channel, oldest first, from its last good reading
        before start_ns to its first good one after end_ns (or the ends of what is stored)."""
        ...

    async def revisions(
        self, channel_id: str, start_ns: int, end_ns: int
    ) -> list[tuple[int, int, float]]:
        """(bucket_start_ns, revised_at_ns, sum change) of a channel's restated buckets."""
        ...

    async def counter_events(
        self, channel_id: str, start_ns: int, end_ns: int
    ) -> list[tuple[int, CounterEvent, float]]:
        """(ts_ns, event, value) of a counter's wraps, spikes, drops, resets and replacements
        in [start_ns, end_ns), oldest first."""
        ...

    async def series_many(
        self, channel_ids: Sequence[str], start_ns: int, end_ns: int
    ) -> list[Bucket]:
        """Base buckets of several channels with start in [start_ns, end_ns)."""
        ...

    async def readings_page(
        self,
        channel_ids: Sequence[str],
        start_ns: int,
        end_ns: int,
        after: tuple[str, int],
        limit: int,
    ) -> list[StoredReading]:
        """Up to `limit` raw readings of the channels in [start_ns, end_ns), ordered by
        (channel_id, ts_ns) and after `after`: ("", NO_TS) for the first page."""
        ...

    async def record_config(self, configs: dict[str, tuple[str, str]], at_ns: int) -> int:
        """Append the channels whose configuration (sha256, JSON) differs from the latest
        recorded one; return how many were appended."""
        ...

    async def config_history(self, channel_id: str) -> list[ConfigVersion]: ...

    async def add_emission_factor(self, f: EmissionFactor, recorded_at_ns: int) -> None:
        """Add a factor version; an existing (id, version) raises DuplicateRecordError."""
        ...

    async def emission_factors(self) -> list[EmissionFactor]: ...

    async def append_audit(self, e: AuditEntry) -> None:
        """Append to the hash-chained audit log (compute.audit_chain), serialised with every
        other chained append."""
        ...

    async def append_alert_events(
        self, events: Sequence[AlertEvent], *, recorded_at_ns: int
    ) -> None:
        """Append alert transitions to the hash-chained alert_events, in order, atomically."""
        ...

    async def chain_page(self, chain: Chain, after_seq: int, limit: int) -> list[ChainRow]:
        """Up to `limit` rows of a chained table with seq > after_seq, in seq order."""
        ...

    async def chain_origin(self, chain: Chain) -> int:
        """The last seq written before the chain began (migration 0013); 0 if none."""
        ...

    async def record_delivery(self, a: DeliveryAttempt) -> None:
        """Append one notification attempt to the delivery log (alert_deliveries)."""
        ...

    async def deliveries(self, event_id: str | None = None) -> list[DeliveryAttempt]:
        """The delivery log, oldest first, of one event or of all."""
        ...

    async def audit_log(self, subject: str | None = None) -> list[AuditEntry]:
        """The audit entries, oldest first, of one subject or of all."""
        ...

    async def add_token(self, t: ApiToken, *, actor: str, reason: str) -> None:
        """Store a new API token (its hash) with its audit entry, in one transaction; an
        existing id raises DuplicateRecordError."""
        ...

    async def token(self, token_id: str) -> ApiToken | None: ...

    async def tokens(self) -> list[ApiToken]:
        """Every token, revoked and expired ones too, oldest first."""
        ...

    async def revoke_token(self, token_id: str, *, at_ns: int, actor: str, reason: str) -> ApiToken:
        """Set the token's revoked_at_ns, once, with its audit entry, in one transaction; an
        unknown or already revoked token raises TokenError."""
        ...

    async def add_period_value(self, v: PeriodValue, *, actor: str = "", reason: str = "") -> None:
        """Record a denominator's value; refused (PeriodValueError) when its period overlaps a
        recorded one of the same site and kind without matching it, checked in the same
        transaction. With an actor, its audit entry is written in that transaction too, and a
        restatement of a recorded period needs a reason."""
        ...

    async def meter_replacements(self, channel_id: str | None = None) -> list[ReplacementEvent]:
        """The recorded (applied) meter replacements of a channel or of all, by channel and time."""
        ...

    async def add_factor_version(self, v: FactorVersion, *, actor: str, reason: str) -> None:
        """Add an emission-factor version with its audit entry, in one transaction, checked by
        compute.factor_versions.check_new against every recorded version (FactorConflict)."""
        ...

    async def factor_versions(self) -> list[FactorVersion]:
        """Every recorded factor version with what it supersedes, in the order recorded."""
        ...

    async def period_values(
        self, site: str, kind: Denominator, start_ns: int, end_ns: int
    ) -> list[PeriodValue]:
        """Every version of the site's values of that kind whose period overlaps the range."""
        ...

    async def rollups_from_ns(self) -> dict[Period, int]:
        """Per kind of roll-up, it is complete for periods starting at or after this
        (rollup_starts)."""
        ...

    async def plan_totals(
        self, channel_ids: Sequence[str], parts: Sequence[Part]
    ) -> dict[str, ChannelTotal]:
        """Sums over the parts of a plan (compute.rollups.plan), each from base buckets or from
        roll-ups of its kind, in one query; per channel that has any."""
        ...

    async def totals(
        self, channel_ids: Sequence[str], start_ns: int, end_ns: int
    ) -> dict[str, ChannelTotal]:
        """Sums over base buckets with start in [start_ns, end_ns), per channel that has any."""
        ...

    async def row_sums(
        self, channel_ids: Sequence[str], source: str, start_ns: int, end_ns: int
    ) -> list[RowSum]:
        """Per row start in [start_ns, end_ns), oldest first, the sums over the channels of
        their base buckets (source "buckets") or roll-ups of a kind ("hour", "day", "month")."""
        ...

    async def add_report_snapshot(self, s: ReportSnapshot) -> None:
        """Record a closed report (its version 1) with its audit entry, in one transaction; a
        report_id closed already raises DuplicateRecordError."""
        ...

    async def report_snapshot(self, report_id: str) -> ReportSnapshot | None: ...

    async def add_report_restatement(self, r: ReportRestatement) -> None:
        """Record a report's next version with its audit entry, in one transaction; refused
        (StaleVersionError) unless r.previous_sha256 is the hash of its latest version."""
        ...

    async def report_restatements(self, report_id: str) -> list[ReportRestatement]:
        """A report's restatements, oldest first."""
        ...

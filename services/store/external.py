"""External and manual records in the store: meter replacements, emission-factor versions with
what they supersede, and the audit entries of these and of period values. SQL in PostgreSQL's
parameter style (SqliteStore swaps %s for ?)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from compute.denominators import PeriodValue, PeriodValueError
from compute.factor_versions import FactorVersion
from compute.meter_events import ReplacementEvent
from services.store.records import AuditEntry, factor, factor_row

_REPLACEMENT = "channel_id, at_ns, old_final, new_initial, reason, actor, recorded_at_ns"
INSERT_REPLACEMENT_SQL = (
    f"INSERT INTO meter_replacements ({_REPLACEMENT}) VALUES (%s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT DO NOTHING"  # a replayed control message: the first one stands
)
REPLACEMENTS_SQL = (
    f"SELECT {_REPLACEMENT} FROM meter_replacements"
    " WHERE CAST(%s AS TEXT) IS NULL OR channel_id = %s ORDER BY channel_id, at_ns"
)
_FACTOR = (
    "id, version, activity, region, basis, valid_from_ns, valid_to_ns, value, unit, source,"
    " recorded_at_ns"
)
INSERT_FACTOR_VERSION_SQL = (
    f"INSERT INTO emission_factors ({_FACTOR}, supersedes)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
FACTOR_VERSIONS_SQL = (
    f"SELECT {_FACTOR}, supersedes FROM emission_factors ORDER BY recorded_at_ns, id, version"
)


def replacement_row(e: ReplacementEvent) -> tuple[Any, ...]:
    return (
        e.channel_id, e.at_ns, e.old_final, e.new_initial, e.reason, e.actor, e.recorded_at_ns,
    )  # fmt: skip


def replacement(row: Any) -> ReplacementEvent:
    channel_id, at, old, new, reason, actor, recorded = row
    return ReplacementEvent(
        channel_id=channel_id,
        at_ns=int(at),
        old_final=float(old),
        new_initial=float(new),
        reason=reason,
        actor=actor,
        recorded_at_ns=int(recorded),
    )


def replacement_entry(e: ReplacementEvent, at_ns: int) -> AuditEntry:
    """The audit entry of a replacement, written when the aggregator applies it."""
    new = {"at_ns": e.at_ns, "old_final": e.old_final, "new_initial": e.new_initial}
    return AuditEntry(
        at_ns=at_ns,
        actor=e.actor,
        action="meter replacement recorded",
        subject=e.channel_id,
        old_value=None,
        new_value=json.dumps(new, separators=(",", ":")),
        reason=e.reason,
    )


def factor_version_row(v: FactorVersion) -> tuple[Any, ...]:
    return (*factor_row(v.factor, v.recorded_at_ns), json.dumps(list(v.supersedes)))


def factor_version(row: Any) -> FactorVersion:
    *fields, recorded, supersedes = row
    return FactorVersion(
        factor=factor(fields),
        supersedes=tuple(json.loads(supersedes)),
        recorded_at_ns=int(recorded),
    )


def _factor_doc(v: FactorVersion) -> str:
    f = v.factor
    doc = {
        "ref": f.ref,
        "activity": f.activity.value,
        "region": f.region,
        "basis": f.basis.value,
        "valid_from_ns": f.valid_from_ns,
        "valid_to_ns": f.valid_to_ns,
        "value": f.value,
        "unit": f.unit,
        "source": f.source,
    }
    return json.dumps(doc, separators=(",", ":"))


def factor_entry(
    v: FactorVersion, superseded: Sequence[FactorVersion], actor: str, reason: str
) -> AuditEntry:
    """The audit entry of a new factor version: the superseded versions are its old value."""
    old = "[" + ",".join(_factor_doc(s) for s in superseded) + "]" if superseded else None
    return AuditEntry(
        at_ns=v.recorded_at_ns,
        actor=actor,
        action="emission factor version added",
        subject=f"emission-factor:{v.factor.id}",
        old_value=old,
        new_value=_factor_doc(v),
        reason=reason,
    )


def previous_version(v: PeriodValue, recorded: Sequence[PeriodValue]) -> PeriodValue | None:
    """The latest recorded value of exactly v's site, kind and period: what v restates."""
    same = [
        x
        for x in recorded
        if (x.site, x.kind, x.start_ns, x.end_ns) == (v.site, v.kind, v.start_ns, v.end_ns)
    ]
    return max(same, key=lambda x: x.recorded_at_ns, default=None)


def period_value_entry(
    v: PeriodValue, recorded: Sequence[PeriodValue], actor: str, reason: str
) -> AuditEntry:
    """The audit entry of a period value; a restatement must say why (PeriodValueError)."""
    old = previous_version(v, recorded)
    if old is not None and not reason.strip():
        raise PeriodValueError(
            f"restating {v.kind} for this period ({old.value:g} recorded by {old.source!r}) "
            "needs a reason"
        )
    return AuditEntry(
        at_ns=v.recorded_at_ns,
        actor=actor,
        action="period value restated" if old is not None else "period value recorded",
        subject=f"period-value:{v.site}/{v.kind.value}/{v.start_ns}-{v.end_ns}",
        old_value=None if old is None else repr(old.value),
        new_value=repr(v.value),
        reason=reason.strip() or f"from {v.source}",
    )

"""Reporting records in the store: closed report snapshots and their restatements (append-only,
each with its audit entry), and sums per row start for tariff periods. SQL in PostgreSQL's
parameter style; SqliteStore swaps %s for ?. Holds no connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compute.errors import PlantPulseError
from services.store.records import AuditEntry

SNAPSHOT_COLUMNS = (
    "report_id, kind, site_id, start_ns, end_ns, created_at_ns, sha256, content, actor, reason"
)
INSERT_SNAPSHOT_SQL = (
    f"INSERT INTO report_snapshots ({SNAPSHOT_COLUMNS})"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
SNAPSHOT_SQL = f"SELECT {SNAPSHOT_COLUMNS} FROM report_snapshots WHERE report_id = %s"
RESTATEMENT_COLUMNS = "report_id, restated_at_ns, previous_sha256, sha256, content, reason, actor"
INSERT_RESTATEMENT_SQL = (
    f"INSERT INTO report_restatements ({RESTATEMENT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)"
)
RESTATEMENTS_SQL = (
    f"SELECT {RESTATEMENT_COLUMNS} FROM report_restatements WHERE report_id = %s"
    " ORDER BY restated_at_ns"
)
# the hash of a report's latest version: its newest restatement, else its snapshot
LATEST_SHA_SQL = (
    "SELECT coalesce((SELECT sha256 FROM report_restatements WHERE report_id = %s"
    " ORDER BY restated_at_ns DESC LIMIT 1), (SELECT sha256 FROM report_snapshots"
    " WHERE report_id = %s))"
)
_SUMS = "sum(sum), sum(estimated), sum(n), sum(n_good)"
ROW_SUMS_SQL = {
    "buckets": f"SELECT bucket_start_ns, {_SUMS} FROM buckets WHERE {{in_channels}}"
    " AND bucket_start_ns >= %s AND bucket_start_ns < %s GROUP BY bucket_start_ns"
    " ORDER BY bucket_start_ns",
    "rollups": f"SELECT period_start_ns, {_SUMS} FROM rollups WHERE {{in_channels}}"
    " AND period = %s AND period_start_ns >= %s AND period_start_ns < %s"
    " GROUP BY period_start_ns ORDER BY period_start_ns",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class RowSum:
    """Sums over several channels of their rows (base buckets or roll-ups) starting at start_ns."""

    start_ns: int
    sum: float
    estimated: float
    n: int
    n_good: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportSnapshot:
    """A report as published when its period was closed: version 1 of report_id."""

    report_id: str
    kind: str  # "esg"
    site: str
    start_ns: int
    end_ns: int
    created_at_ns: int
    sha256: str  # of content (compute.esg_output.content_hash)
    content: str  # the report's JSON
    actor: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportRestatement:
    """A later version of a closed report, replacing the one whose hash is previous_sha256."""

    report_id: str
    restated_at_ns: int
    previous_sha256: str
    sha256: str
    content: str
    reason: str
    actor: str


class ReportStoreError(PlantPulseError):
    """The database refused or failed to record a report version."""


class StaleVersionError(PlantPulseError):
    """A restatement names a previous version that is not the report's latest (or no report)."""


def row_sums_query(source: str, in_channels: str) -> str:
    """The row-sums SQL for a source ("buckets", or a roll-up kind: "hour", "day", "month")."""
    return ROW_SUMS_SQL["buckets" if source == "buckets" else "rollups"].format(
        in_channels=in_channels
    )


def row_sums_params(channels: Any, source: str, start_ns: int, end_ns: int) -> tuple[Any, ...]:
    kind = () if source == "buckets" else (source,)
    return (channels, *kind, start_ns, end_ns)


def row_sum(row: Any) -> RowSum:
    start, s, est, n, n_good = row
    return RowSum(
        start_ns=int(start), sum=float(s), estimated=float(est), n=int(n), n_good=int(n_good)
    )


def snapshot_row(s: ReportSnapshot) -> tuple[Any, ...]:
    return (
        s.report_id, s.kind, s.site, s.start_ns, s.end_ns, s.created_at_ns, s.sha256, s.content,
        s.actor, s.reason,
    )  # fmt: skip


def snapshot(row: Any) -> ReportSnapshot:
    rid, kind, site, start, end, created, sha, content, actor, reason = row
    return ReportSnapshot(
        report_id=rid,
        kind=kind,
        site=site,
        start_ns=int(start),
        end_ns=int(end),
        created_at_ns=int(created),
        sha256=sha,
        content=content,
        actor=actor,
        reason=reason,
    )


def restatement_row(r: ReportRestatement) -> tuple[Any, ...]:
    return (
        r.report_id, r.restated_at_ns, r.previous_sha256, r.sha256, r.content, r.reason, r.actor,
    )  # fmt: skip


def restatement(row: Any) -> ReportRestatement:
    rid, at, previous, sha, content, reason, actor = row
    return ReportRestatement(
        report_id=rid,
        restated_at_ns=int(at),
        previous_sha256=previous,
        sha256=sha,
        content=content,
        reason=reason,
        actor=actor,
    )


def subject(report_id: str) -> str:
    """The audit log's subject for a report."""
    return f"report:{report_id}"


def closed_entry(s: ReportSnapshot) -> AuditEntry:
    return AuditEntry(
        at_ns=s.created_at_ns,
        actor=s.actor,
        action="report.close",
        subject=subject(s.report_id),
        old_value=None,
        new_value=s.sha256,
        reason=s.reason,
    )


def restated_entry(r: ReportRestatement) -> AuditEntry:
    return AuditEntry(
        at_ns=r.restated_at_ns,
        actor=r.actor,
        action="report.restate",
        subject=subject(r.report_id),
        old_value=r.previous_sha256,
        new_value=r.sha256,
        reason=r.reason,
    )


def check_latest(r: ReportRestatement, latest_sha256: str | None) -> None:
    """Refuse a restatement that does not follow the report's latest version."""
    if latest_sha256 is None:
        raise StaleVersionError(f"report {r.report_id!r} is not closed: nothing to restate")
    if latest_sha256 != r.previous_sha256:
        raise StaleVersionError(
            f"report {r.report_id!r} changed meanwhile: its latest version is {latest_sha256},"
            f" not {r.previous_sha256}"
        )

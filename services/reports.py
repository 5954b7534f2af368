"""A site's ESG report over a span: its inputs from the roll-ups (one query for every counter),
the recorded denominators and the factors in effect, built by compute.esg; and the versions of
a closed period: its snapshot, its restatements, and what changed since.
"""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from compute.denominators import denominator_over
from compute.errors import PlantPulseError
from compute.esg import build_report
from compute.esg_inputs import esg_inputs, streams
from compute.esg_model import EsgError
from compute.esg_output import HASH_KEY, Restatement, content_hash, restatements, to_dict
from compute.grouping import ChannelSum
from compute.indicators import Coverage, Denominator, Figure
from compute.periods import Span
from compute.plant import ChannelKind, ChannelRef, Plant, Utility
from compute.units import UnitError
from services.factors import factor_table
from services.series import period_totals
from services.store import Store
from services.store.records import DuplicateRecordError
from services.store.reporting import ReportRestatement, ReportSnapshot, StaleVersionError
from services.totals import expected_samples

KIND = "esg"
CHANNELS_KEY = "channels"  # the counters behind each input: part of the hashed content
DENOMINATORS_KEY = "denominator_sources"


class ReportError(PlantPulseError, ValueError):
    """A report cannot be made as asked; the message says why (answered with 422)."""


class ReportConflict(PlantPulseError):
    """A close or restatement conflicts with what is recorded (answered with 409)."""


class ReportStatus(enum.StrEnum):
    OPEN = "open"  # not closed: the report shows the current figures
    CLOSED = "closed"  # closed, and the current figures publish as the closed ones
    RESTATED = "restated"  # restated, and the current figures publish as the latest version
    CHANGED = "changed"  # late data or a revised factor changed figures: restatement pending


@dataclass(frozen=True, slots=True, kw_only=True)
class Version:
    """One recorded version of a closed report: 1 is the close, then each restatement."""

    number: int
    action: str  # "close" or "restate"
    at_ns: int
    actor: str
    reason: str
    sha256: str
    previous_sha256: str | None
    content: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportView:
    """A period's report as the API shows it. `report` is the closed snapshot's content when
    the period is closed, else the current figures'. `since_close` lists every figure the
    current data change against the closed one, `pending` those not yet recorded as a
    restatement."""

    report_id: str
    status: ReportStatus
    report: dict[str, Any]
    current: dict[str, Any]
    versions: list[Version]
    since_close: tuple[Restatement, ...]
    pending: tuple[Restatement, ...]


def report_id(site: str, span: Span) -> str:
    return f"{KIND}:{site}:{span.start_ns}:{span.end_ns}"


class Reports:
    """Builds, closes and restates the ESG reports of a plant's sites over a store."""

    def __init__(
        self, plant: Plant, store: Store, clock_ns: Callable[[], int] = time.time_ns
    ) -> None:
        self.plant, self.store, self.clock_ns = plant, store, clock_ns

    async def build(self, site: str, span: Span) -> dict[str, Any]:
        """The report's content (compute.esg_output.to_dict, with the counters of each input),
        ending with its content hash."""
        s = self.plant.site(site)
        assert s is not None  # the API checked it
        if s.region is None:
            raise ReportError(
                f"site {site!r} has no emission-factor region (sites[].region in the plant"
                " config): an ESG report needs one"
            )
        by_input = streams(self.plant, site)
        made = [
            r
            for r in self.plant.channels.values()
            if r.site.id == site
            and r.channel.kind is ChannelKind.COUNTER
            and r.channel.utility is Utility.PRODUCTION
        ]
        refs = list({r.key: r for rs in (*by_input.values(), made) for r in rs}.values())
        a, b = span.start_ns, span.end_ns
        raw = await period_totals(self.store, [r.key for r in refs], a, b, s.timezone)
        sums = {}
        for r in refs:
            t = raw.get(r.key)
            sums[r.key] = ChannelSum(
                key=r.key,
                total=0.0 if t is None else t.sum,
                estimated=0.0 if t is None else t.estimated,
                samples=0 if t is None else t.n,
                samples_good=0 if t is None else t.n_good,
                samples_expected=expected_samples(r, span),
            )
        denominators, sources = await self._denominators(site, span, made, sums)
        try:
            inputs = esg_inputs(
                site=site,
                region=s.region,
                start_ns=a,
                end_ns=b,
                streams=by_input,
                sums=sums,
                denominators=denominators,
            )
        except (EsgError, UnitError) as e:
            raise ReportError(str(e)) from e
        report = build_report(inputs, await factor_table(self.store))
        content = to_dict(report)
        del content[HASH_KEY]
        content[CHANNELS_KEY] = {k: [r.key for r in rs] for k, rs in sorted(by_input.items())}
        content[DENOMINATORS_KEY] = sources
        content[HASH_KEY] = content_hash(content)
        return content

    async def _denominators(
        self, site: str, span: Span, made: list[ChannelRef], sums: dict[str, ChannelSum]
    ) -> tuple[dict[Denominator, Figure], dict[str, str]]:
        """Each denominator from its recorded period values; units produced from the site's
        production counters when none is recorded (as /v1/sites/{site}/intensity does)."""
        a, b = span.start_ns, span.end_ns
        out, sources = {}, {}
        for kind in Denominator:
            recorded = await self.store.period_values(site, kind, a, b)
            if recorded or kind is not Denominator.UNITS_PRODUCED or not made:
                out[kind] = denominator_over(recorded, kind, a, b)
                sources[kind.value] = "period values"
                continue
            parts = [sums[r.key] for r in made]
            out[kind] = Figure(
                value=sum(p.total for p in parts),
                unit=kind.unit,
                start_ns=a,
                end_ns=b,
                coverage=Coverage(
                    expected=sum(p.samples_expected for p in parts),
                    received=sum(p.samples for p in parts),
                    good=sum(p.samples_good for p in parts),
                ),
            )
            sources[kind.value] = "production counters: " + ", ".join(r.key for r in made)
        return out, sources

    async def versions(self, site: str, span: Span) -> list[Version]:
        """The closed report's versions, oldest first; none while the period is open."""
        rid = report_id(site, span)
        snap = await self.store.report_snapshot(rid)
        if snap is None:
            return []
        out = [
            Version(
                number=1,
                action="close",
                at_ns=snap.created_at_ns,
                actor=snap.actor,
                reason=snap.reason,
                sha256=snap.sha256,
                previous_sha256=None,
                content=json.loads(snap.content),
            )
        ]
        for n, r in enumerate(await self.store.report_restatements(rid), start=2):
            out.append(
                Version(
                    number=n,
                    action="restate",
                    at_ns=r.restated_at_ns,
                    actor=r.actor,
                    reason=r.reason,
                    sha256=r.sha256,
                    previous_sha256=r.previous_sha256,
                    content=json.loads(r.content),
                )
            )
        return out

    async def view(self, site: str, span: Span) -> ReportView:
        current = await self.build(site, span)
        versions = await self.versions(site, span)
        since: tuple[Restatement, ...] = ()
        pending: tuple[Restatement, ...] = ()
        if not versions:
            status, shown = ReportStatus.OPEN, current
        else:
            shown = versions[0].content
            since = restatements(shown, current)
            pending = restatements(versions[-1].content, current)
            status = (
                ReportStatus.CHANGED
                if pending
                else ReportStatus.CLOSED
                if len(versions) == 1
                else ReportStatus.RESTATED
            )
        return ReportView(
            report_id=report_id(site, span),
            status=status,
            report=shown,
            current=current,
            versions=versions,
            since_close=since,
            pending=pending,
        )

    async def close(self, site: str, span: Span, *, actor: str, reason: str) -> ReportView:
        """Store the period's report as its version 1, with the audit entry."""
        now = self.clock_ns()
        if span.end_ns > now:
            raise ReportError("the period has not ended yet: close it once it has")
        content = await self.build(site, span)
        snap = ReportSnapshot(
            report_id=report_id(site, span),
            kind=KIND,
            site=site,
            start_ns=span.start_ns,
            end_ns=span.end_ns,
            created_at_ns=now,
            sha256=content[HASH_KEY],
            content=json.dumps(content, sort_keys=True, ensure_ascii=False),
            actor=actor,
            reason=reason,
        )
        try:
            await self.store.add_report_snapshot(snap)
        except DuplicateRecordError as e:
            raise ReportConflict(
                f"report {snap.report_id} is closed already: to record changed figures, POST"
                " .../reports/esg/restate with a reason"
            ) from e
        return await self.view(site, span)

    async def restate(self, site: str, span: Span, *, actor: str, reason: str) -> ReportView:
        """Store the current figures as the closed report's next version, with the audit entry;
        refused when the period is not closed or nothing changed since the latest version."""
        versions = await self.versions(site, span)
        if not versions:
            raise ReportConflict("the period is not closed: close it first, nothing to restate")
        latest = versions[-1]
        content = await self.build(site, span)
        if content[HASH_KEY] == latest.sha256:
            raise ReportConflict(
                f"nothing to restate: the figures equal version {latest.number} ({latest.sha256})"
            )
        r = ReportRestatement(
            report_id=report_id(site, span),
            restated_at_ns=self.clock_ns(),
            previous_sha256=latest.sha256,
            sha256=content[HASH_KEY],
            content=json.dumps(content, sort_keys=True, ensure_ascii=False),
            reason=reason,
            actor=actor,
        )
        try:
            await self.store.add_report_restatement(r)
        except (StaleVersionError, DuplicateRecordError) as e:
            raise ReportConflict(str(e)) from e
        return await self.view(site, span)

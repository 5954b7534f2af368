"""A site's totals over a span: each counter's total from the roll-ups and buckets, in the unit
asked for (tCO2e with the factors valid then), grouped, and compared with other spans.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from compute.calendar import CalendarError
from compute.emissions import (
    EmissionFactor,
    EmissionsError,
    FactorKey,
    FactorTable,
    MissingFactorError,
)
from compute.errors import PlantPulseError
from compute.esg_tags import EsgRole
from compute.grouping import (
    ChannelSum,
    Comparison,
    Grouping,
    GroupingError,
    Row,
    compare,
    counters,
    members,
    rows,
)
from compute.model import NS_PER_S
from compute.periods import Compare, Span, compared
from compute.plant import ChannelRef, Plant, Utility
from compute.units import FITS, Unit, UnitError, activity_scale, base_scale, check_fit, scale
from services.factors import factor_table
from services.series import period_totals
from services.store import ChannelTotal, Store
from services.tariff_totals import TariffError, tariff_rows

ROLLUPS_NOTE = (
    "Each channel's total reads whole local months, days and hours from the roll-ups and the "
    "ragged edges from the base buckets; a counter's total is its advance over the span."
)
COVERAGE_NOTE = (
    "coverage = good samples ÷ samples expected from each meter's poll interval over the span; "
    "estimated = the part spread over gaps in the readings, in the row's unit."
)


class TotalsError(PlantPulseError, ValueError):
    """The request cannot be answered as asked; the message says why (answered with 422)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TotalsRequest:
    site: str
    span: Span
    grouping: Grouping = Grouping.UTILITY
    unit: Unit | None = None
    utilities: tuple[Utility, ...] = ()  # none: every utility the unit fits (all without one)
    compare: tuple[Compare, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelFigure:
    ref: ChannelRef
    sum: ChannelSum
    unit: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Totals:
    span: Span
    rows: list[Row]
    utilities: list[Row]  # per utility over the root meters: the group=utility rows
    channels: list[ChannelFigure]  # every counter asked for
    comparisons: dict[Compare, tuple[Span, list[Comparison]]]
    factors: tuple[EmissionFactor, ...]  # every version behind a tCO2e figure, by ref
    notes: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Figures:
    rows: list[Row]
    utilities: list[Row]
    channels: list[ChannelFigure]


@dataclass(slots=True)
class _Method:
    """What the figures of one request used, gathered as they are made."""

    notes: dict[str, None] = field(default_factory=dict)
    factors: dict[str, EmissionFactor] = field(default_factory=dict)

    def note(self, text: str) -> None:
        self.notes[text] = None


class TotalsReader:
    """Answers totals requests for the sites of a plant from a store."""

    def __init__(self, plant: Plant, store: Store, bucket_ns: int) -> None:
        self.plant, self.store, self.bucket_ns = plant, store, bucket_ns

    def select(self, req: TotalsRequest) -> list[ChannelRef]:
        """The site's counters of the utilities asked for, or those the unit fits."""
        present = {r.channel.utility for r in counters(self.plant, req.site, list(Utility))}
        if req.utilities:
            missing = [u.value for u in req.utilities if u not in present]
            if missing:
                raise TotalsError(f"site {req.site!r} has no {', '.join(missing)} counters")
            chosen = list(req.utilities)
            if req.unit is not None:
                for u in chosen:
                    _fit(u, req.unit)
        elif req.unit is not None:
            chosen = [u for u in present if req.unit in FITS.get(u, ())]
            if not chosen:
                raise TotalsError(f"no counter of site {req.site!r} can be given in {req.unit}")
        else:
            chosen = list(present)
        refs = counters(self.plant, req.site, chosen)
        if req.unit is not None:
            for r in refs:
                try:
                    base_scale(r.channel.utility, r.channel.unit)
                except UnitError as e:
                    raise TotalsError(f"channel {r.key}: {e}") from e
        return refs

    async def totals(self, req: TotalsRequest) -> Totals:
        site = self.plant.site(req.site)
        assert site is not None  # the API checked it
        if req.unit is Unit.TCO2E and site.region is None:
            raise TotalsError(
                f"site {req.site!r} has no emission-factor region (sites[].region in the plant"
                " config): tCO2e needs one"
            )
        if req.grouping is Grouping.TARIFF and site.tariffs is None:
            raise TotalsError(
                f"site {req.site!r} has no tariffs (sites[].tariffs in the plant config)"
            )
        refs = self.select(req)
        table = await factor_table(self.store) if req.unit is Unit.TCO2E else None
        method = _Method()
        method.note(ROLLUPS_NOTE)
        now = await self._figures(req, refs, req.span, table, method)
        comparisons = {}
        for how in req.compare:
            try:
                then_span = compared(site.timezone, req.span, how)
            except CalendarError as e:
                raise TotalsError(f"{how}: {e}") from e
            then = await self._figures(req, refs, then_span, table, method, what=f"{how}: ")
            comparisons[how] = (then_span, compare(now.rows, then.rows))
        method.note(COVERAGE_NOTE)
        return Totals(
            span=req.span,
            rows=now.rows,
            utilities=now.utilities,
            channels=now.channels,
            comparisons=comparisons,
            factors=tuple(method.factors[k] for k in sorted(method.factors)),
            notes=tuple(method.notes),
        )

    async def _figures(
        self,
        req: TotalsRequest,
        refs: list[ChannelRef],
        span: Span,
        table: FactorTable | None,
        method: _Method,
        what: str = "",
    ) -> _Figures:
        groups = members(self.plant, refs, req.grouping)
        try:
            sums = await self._channel_sums(refs, span, req.unit, table, method)
            unit_of = {r.key: req.unit or r.channel.unit for r in refs}
            roots = members(self.plant, refs, Grouping.UTILITY)
            by_utility = rows(roots, sums, unit_of, merge_utilities=False)
            if req.grouping is Grouping.TARIFF:
                site = self.plant.site(req.site)
                assert site is not None and site.tariffs is not None
                got, notes = await tariff_rows(
                    self.store,
                    groups,
                    span,
                    site,
                    site.tariffs,
                    self.bucket_ns,
                    req.unit,
                    table,
                )
                for n in notes:
                    method.note(n)
                for f in (f for row in got for f in row.factor_refs):
                    if table is not None:
                        method.factors.setdefault(f, _by_ref(table, f))
            else:
                got = rows(groups, sums, unit_of, merge_utilities=req.grouping is Grouping.SITE)
        except (GroupingError, UnitError, TariffError) as e:
            raise TotalsError(f"{what}{e}") from e
        except (MissingFactorError, EmissionsError) as e:
            raise TotalsError(f"{what}{e}: record the factor, or ask for another unit") from e
        channels = [ChannelFigure(ref=r, sum=sums[r.key], unit=unit_of[r.key]) for r in refs]
        return _Figures(rows=got, utilities=by_utility, channels=channels)

    async def _channel_sums(
        self,
        refs: list[ChannelRef],
        span: Span,
        unit: Unit | None,
        table: FactorTable | None,
        method: _Method,
    ) -> dict[str, ChannelSum]:
        if not refs:
            return {}
        tz = refs[0].site.timezone
        a, b = span.start_ns, span.end_ns
        raw = await period_totals(self.store, [r.key for r in refs], a, b, tz)
        out: dict[str, ChannelSum] = {}
        for r in refs:
            t = raw.get(r.key)
            if unit is Unit.TCO2E:
                assert table is not None
                out[r.key] = await self._emissions(r, span, t, table, method)
                continue
            factor = 1.0
            if unit is not None:
                sc = scale(r.channel.utility, r.channel.unit, unit)
                factor = sc.factor
                method.note(f"{r.channel.utility} [{r.channel.unit}] in {unit}: {sc.formula}")
            out[r.key] = _sum(r, span, t, factor)
        return out

    async def _emissions(
        self,
        r: ChannelRef,
        span: Span,
        t: ChannelTotal | None,
        table: FactorTable,
        method: _Method,
    ) -> ChannelSum:
        """tCO2e of one counter: its total in each part of the span that one factor version
        covers, × that version (exact where a factor changes inside the span)."""
        if r.channel.esg is EsgRole.ONSITE_PV:
            method.note("On-site PV is not purchased electricity: 0 tCO2e (no Scope 2).")
            return _sum(r, span, t, 0.0)
        activity, per_unit = activity_scale(r.channel.utility, r.channel.unit)
        region = r.site.region or ""
        key = FactorKey(activity=activity, region=region)
        segments = table.segments(key, span.start_ns, span.end_ns)
        total = estimated = 0.0
        tz = r.site.timezone
        for seg in segments:
            f = seg.factor
            method.factors[f.ref] = f
            if len(segments) == 1:
                part = t
            else:
                got = await period_totals(self.store, [r.key], seg.start_ns, seg.end_ns, tz)
                part = got.get(r.key)
            if part is not None:
                total += part.sum * per_unit * f.value
                estimated += part.estimated * per_unit * f.value
        method.note(
            f"{r.channel.utility} in tCO2e: total [{r.channel.unit}] × {per_unit:g}"
            f" {activity.unit}/{r.channel.unit} × the {key} factor [{activity.factor_unit}]"
            " valid over each part of the span (location-based for electricity)"
        )
        refs = tuple(s.factor.ref for s in segments)
        base = _sum(r, span, t, 1.0)
        return ChannelSum(
            key=r.key,
            total=total,
            estimated=estimated,
            samples=base.samples,
            samples_good=base.samples_good,
            samples_expected=base.samples_expected,
            factor_refs=refs,
        )


def _by_ref(table: FactorTable, ref: str) -> EmissionFactor:
    return next(f for f in table.factors if f.ref == ref)


def expected_samples(r: ChannelRef, span: Span) -> int:
    """Samples the meter's poll interval expects over the span."""
    return int((span.end_ns - span.start_ns) / (r.meter.interval_s * NS_PER_S))


def _sum(r: ChannelRef, span: Span, t: ChannelTotal | None, factor: float) -> ChannelSum:
    return ChannelSum(
        key=r.key,
        total=0.0 if t is None else t.sum * factor,
        estimated=0.0 if t is None else t.estimated * factor,
        samples=0 if t is None else t.n,
        samples_good=0 if t is None else t.n_good,
        samples_expected=expected_samples(r, span),
    )


def _fit(utility: Utility, unit: Unit) -> None:
    try:
        check_fit(utility, unit)
    except UnitError as e:
        raise TotalsError(str(e)) from e

"""Which counters a site's totals add up per group (site, utility, area, meter, channel, tariff
period), and the rows they make, each with its coverage and provenance. Pure: sums come in.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from compute.errors import PlantPulseError
from compute.plant import ChannelKind, ChannelRef, Plant, Utility


class GroupingError(PlantPulseError, ValueError):
    """A grouping cannot be formed from the channels asked for; says why."""


class Grouping(enum.StrEnum):
    """How totals are grouped. site adds every utility asked for (in a unit they share);
    utility and tariff count the site's root meters (no parent); area counts each area's top
    meters (whose parent lies outside the area); meter and channel count every counter."""

    SITE = "site"
    UTILITY = "utility"
    AREA = "area"
    METER = "meter"
    CHANNEL = "channel"
    TARIFF = "tariff"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelSum:
    """A total over a span in the unit of its row, with the samples behind it and the factor
    versions (id@version) that made it, if any."""

    key: str
    total: float
    estimated: float  # the part spread over gaps in the readings
    samples: int
    samples_good: int
    samples_expected: int
    factor_refs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One group's total: the sum of its channels' totals in `unit`, with their samples."""

    key: str
    utilities: tuple[Utility, ...]
    unit: str
    total: float
    estimated: float
    samples: int
    samples_good: int
    samples_expected: int
    channels: tuple[str, ...]
    factor_refs: tuple[str, ...]

    @property
    def ident(self) -> tuple[str, tuple[Utility, ...], str]:
        return self.key, self.utilities, self.unit

    @property
    def coverage(self) -> float:
        """Good samples ÷ expected samples, at most 1; nothing expected is complete."""
        return min(1.0, self.samples_good / self.samples_expected) if self.samples_expected else 1.0

    @property
    def estimated_share(self) -> float:
        return abs(self.estimated / self.total) if self.total else 0.0


def counters(plant: Plant, site: str, utilities: Collection[Utility]) -> list[ChannelRef]:
    """The site's counters of those utilities, in configuration order."""
    return [
        r
        for r in plant.channels.values()
        if r.site.id == site
        and r.channel.kind is ChannelKind.COUNTER
        and r.channel.utility in utilities
    ]


def _top_of_area(ref: ChannelRef, area_of: Mapping[str, str]) -> bool:
    parent = ref.meter.parent
    return parent is None or area_of.get(parent) != ref.area.id


def members(
    plant: Plant, refs: Sequence[ChannelRef], grouping: Grouping
) -> dict[str, list[ChannelRef]]:
    """The channels each group adds, by group key, in configuration order."""
    out: dict[str, list[ChannelRef]] = {}
    area_of = {m.id: m.area for m in plant.meters}
    for r in refs:
        root = r.meter.parent is None
        match grouping:
            case Grouping.SITE if root:
                out.setdefault(r.site.id, []).append(r)
            case Grouping.UTILITY | Grouping.TARIFF if root:
                out.setdefault(r.channel.utility.value, []).append(r)
            case Grouping.AREA if _top_of_area(r, area_of):
                out.setdefault(r.area.id, []).append(r)
            case Grouping.METER:
                out.setdefault(r.meter.id, []).append(r)
            case Grouping.CHANNEL:
                out[r.key] = [r]
    if grouping is Grouping.UTILITY or grouping is Grouping.TARIFF:
        order = list(Utility)
        return dict(sorted(out.items(), key=lambda kv: order.index(Utility(kv[0]))))
    return out


def make_row(key: str, utilities: Sequence[Utility], unit: str, parts: Sequence[ChannelSum]) -> Row:
    """The sum of `parts` as one row; estimated and totals are added exactly (fsum)."""
    return Row(
        key=key,
        utilities=tuple(u for u in Utility if u in utilities),
        unit=unit,
        total=math.fsum(p.total for p in parts),
        estimated=math.fsum(p.estimated for p in parts),
        samples=sum(p.samples for p in parts),
        samples_good=sum(p.samples_good for p in parts),
        samples_expected=sum(p.samples_expected for p in parts),
        channels=tuple(p.key for p in parts),
        factor_refs=tuple(dict.fromkeys(f for p in parts for f in p.factor_refs)),
    )


def rows(
    groups: Mapping[str, Sequence[ChannelRef]],
    sums: Mapping[str, ChannelSum],
    unit_of: Mapping[str, str],
    *,
    merge_utilities: bool,
) -> list[Row]:
    """A row per group and (utility, unit); with merge_utilities (the site grouping) one row per
    group, whose channels must all be in one unit. unit_of gives each channel's row unit."""
    out = []
    for key, refs in groups.items():
        split: dict[tuple[Utility | None, str], list[ChannelRef]] = {}
        for r in refs:
            split.setdefault(
                (None if merge_utilities else r.channel.utility, unit_of[r.key]), []
            ).append(r)
        if merge_utilities and len(split) > 1:
            units = sorted({u for _, u in split})
            raise GroupingError(
                f"grouping by site adds utilities, but they are in {', '.join(units)}: ask for a"
                " unit they share (unit=kWh, MWh, GJ, tce or tCO2e for energy; m3 or ML for water)"
                " or for one utility"
            )
        for (_, unit), members_ in split.items():
            utilities = {r.channel.utility for r in members_}
            out.append(make_row(key, list(utilities), unit, [sums[r.key] for r in members_]))
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class Comparison:
    """A row's total against the same row of another span: difference = now − then, percent of
    then (None when then is zero or the row is missing there)."""

    total: float | None
    difference: float | None
    percent: float | None
    samples_good: int
    samples_expected: int
    coverage: float


def compare(now: Sequence[Row], then: Sequence[Row]) -> list[Comparison]:
    """For each row of `now`, in order, its comparison with the matching row of `then`."""
    by_ident = {r.ident: r for r in then}
    out = []
    for r in now:
        t = by_ident.get(r.ident)
        if t is None:
            out.append(
                Comparison(
                    total=None,
                    difference=None,
                    percent=None,
                    samples_good=0,
                    samples_expected=0,
                    coverage=0.0,
                )
            )
            continue
        diff = r.total - t.total
        out.append(
            Comparison(
                total=t.total,
                difference=diff,
                percent=diff / t.total * 100.0 if t.total else None,
                samples_good=t.samples_good,
                samples_expected=t.samples_expected,
                coverage=t.coverage,
            )
        )
    return out

"""Totals split by a site's tariff bands (peak, flat, valley): the sums per row start over its
root counters, from local hour roll-ups when every band boundary is on a whole hour, else from
the base buckets, each row in the band of its local start time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from compute.calendar import Period
from compute.emissions import FactorKey, FactorTable
from compute.errors import PlantPulseError
from compute.esg_tags import EsgRole
from compute.grouping import Row
from compute.model import NS_PER_S
from compute.periods import Span
from compute.plant import ChannelRef, Site, Utility
from compute.rollups import Part, plan
from compute.tariffs import BANDS, Tariffs, band_codes, band_seconds
from compute.units import Unit, activity_scale, scale
from services.store import Store

NEVER_NS = np.iinfo(np.int64).max  # a roll-up kind that must not serve: complete from never
HOURS_NOTE = (
    "Tariff bands: every band boundary is on a whole local hour, so the local hour roll-ups "
    "split exactly (the ragged edges come from the base buckets); each row belongs to the band "
    "of its local start time, and a fall-back night's repeated hour counts twice in its band."
)
BUCKETS_NOTE = (
    "Tariff bands: a band boundary is not on a whole hour, so the base buckets are split by "
    "their local start time (slower than the hour roll-ups over long spans)."
)


class TariffError(PlantPulseError, ValueError):
    """Totals cannot be split by tariff band as asked."""


@dataclass(slots=True)
class _Band:
    total: float = 0.0
    estimated: float = 0.0
    samples: int = 0
    samples_good: int = 0
    expected: int = 0
    channels: list[str] = field(default_factory=list)
    factor_refs: dict[str, None] = field(default_factory=dict)


async def _row_sums(
    store: Store, keys: list[str], parts: Sequence[Part]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    got = [x for p in parts for x in await store.row_sums(keys, p.source, p.start_ns, p.end_ns)]
    return (
        np.array([x.start_ns for x in got], np.int64),
        np.array([x.sum for x in got], np.float64),
        np.array([x.estimated for x in got], np.float64),
        np.array([x.n for x in got], np.int64),
        np.array([x.n_good for x in got], np.int64),
    )


def _multipliers(
    refs: Sequence[ChannelRef],
    starts: np.ndarray,
    span: Span,
    unit: Unit | None,
    table: FactorTable | None,
) -> tuple[np.ndarray, str, tuple[str, ...]]:
    """Per row, what turns the metered sum into the row unit; the unit; the factor versions."""
    first = refs[0]
    utility, metered = first.channel.utility, first.channel.unit
    if unit is None:
        return np.ones(starts.size), metered, ()
    if unit is not Unit.TCO2E:
        return np.full(starts.size, scale(utility, metered, unit).factor), unit, ()
    if first.channel.esg is EsgRole.ONSITE_PV:
        return np.zeros(starts.size), unit, ()
    assert table is not None
    activity, per_unit = activity_scale(utility, metered)
    key = FactorKey(activity=activity, region=first.site.region or "")
    segments = table.segments(key, span.start_ns, span.end_ns)
    seg_starts = np.array([s.start_ns for s in segments], np.int64)
    values = np.array([s.factor.value for s in segments])
    at = np.searchsorted(seg_starts, starts, side="right") - 1
    return per_unit * values[np.clip(at, 0, None)], unit, tuple(s.factor.ref for s in segments)


async def tariff_rows(
    store: Store,
    groups: Mapping[str, Sequence[ChannelRef]],
    span: Span,
    site: Site,
    tariffs: Tariffs,
    bucket_ns: int,
    unit: Unit | None,
    table: FactorTable | None,
) -> tuple[list[Row], list[str]]:
    """A row per (utility, unit) of each group and band the schedule uses; and the method
    note. Expected samples per band are each meter's samples over the band's seconds."""
    a, b, tz = span.start_ns, span.end_ns, site.timezone
    if tariffs.whole_hours:
        hour_from = (await store.rollups_from_ns())[Period.HOUR]
        kinds = {Period.HOUR: hour_from, Period.DAY: NEVER_NS, Period.MONTH: NEVER_NS}
        parts, note = plan(a, b, tz, kinds), HOURS_NOTE
    else:
        parts, note = [Part(source="buckets", start_ns=a, end_ns=b)], BUCKETS_NOTE
    seconds = band_seconds(a, b, bucket_ns, tz, tariffs)
    used = tariffs.bands()
    acc: dict[tuple[Utility, str], dict[int, _Band]] = {}
    for refs in groups.values():
        subgroups: dict[tuple[Utility, str, bool], list[ChannelRef]] = {}
        for r in refs:
            pv = r.channel.esg is EsgRole.ONSITE_PV
            subgroups.setdefault((r.channel.utility, r.channel.unit, pv), []).append(r)
        for (utility, _, _), sub in subgroups.items():
            starts, sums, est, n, n_good = await _row_sums(store, [r.key for r in sub], parts)
            mult, out_unit, factor_refs = _multipliers(sub, starts, span, unit, table)
            codes = band_codes(starts, tz, tariffs)
            per = {
                name: np.bincount(codes, weights=col, minlength=len(BANDS))
                for name, col in (
                    ("total", sums * mult),
                    ("estimated", est * mult),
                    ("samples", n.astype(np.float64)),
                    ("good", n_good.astype(np.float64)),
                )
            }
            bands = acc.setdefault((utility, out_unit), {})
            for code, band in enumerate(BANDS):
                if band not in used:
                    continue
                x = bands.setdefault(code, _Band())
                x.total += float(per["total"][code])
                x.estimated += float(per["estimated"][code])
                x.samples += int(per["samples"][code])
                x.samples_good += int(per["good"][code])
                x.expected += sum(
                    int(seconds[band] * NS_PER_S / (r.meter.interval_s * NS_PER_S)) for r in sub
                )
                x.channels += [r.key for r in sub]
                x.factor_refs.update(dict.fromkeys(factor_refs))
    out = [
        Row(
            key=BANDS[code].value,
            utilities=(utility,),
            unit=out_unit,
            total=x.total,
            estimated=x.estimated,
            samples=x.samples,
            samples_good=x.samples_good,
            samples_expected=x.expected,
            channels=tuple(x.channels),
            factor_refs=tuple(x.factor_refs),
        )
        for (utility, out_unit), bands in sorted(
            acc.items(), key=lambda kv: list(Utility).index(kv[0][0])
        )
        for code, x in sorted(bands.items())
    ]
    return out, [note]

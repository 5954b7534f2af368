"""Which counters of a site feed each input of its ESG report (grid, PV, gas, water by source,
discharge, recycled, production and office electricity, production water), and the EsgInputs
their period totals make. Pure: the totals come in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from compute.esg_model import EsgInputs, Measured, WaterSource
from compute.esg_tags import EsgRole
from compute.grouping import ChannelSum
from compute.indicators import Coverage, Denominator, Figure
from compute.plant import AreaKind, ChannelKind, ChannelRef, Plant, Utility
from compute.units import base_scale

GRID, PV, GAS = "grid_electricity", "pv_electricity", "natural_gas"
DISCHARGE, RECYCLED = "water_discharge", "water_recycled"
PRODUCTION_KWH, OFFICE_KWH = "production_electricity", "office_electricity"
PRODUCTION_WATER = "production_water"
WITHDRAWAL = "water_withdrawal/"  # + the source
PRODUCTION_AREAS = frozenset({AreaKind.PRODUCTION, AreaKind.CLEANROOM})
OFFICE_AREAS = frozenset({AreaKind.OFFICE})
_NOTHING = Coverage(expected=0, received=0, good=0)


def _role(r: ChannelRef) -> EsgRole | None:
    """The counter's role: its tag, else what a root meter's utility implies, else none."""
    c = r.channel
    if c.esg is not None:
        return c.esg
    if r.meter.parent is not None:
        return None
    return {
        Utility.ELECTRICITY: EsgRole.GRID,
        Utility.WATER: EsgRole.WITHDRAWAL,
        Utility.RECYCLED_WATER: EsgRole.RECYCLED,
    }.get(c.utility)


def _top_in(r: ChannelRef, kinds: frozenset[AreaKind], kind_of: Mapping[str, AreaKind]) -> bool:
    """In an area of those kinds, below no meter in such an area (no double counting)."""
    parent = r.meter.parent
    return r.area.kind in kinds and (parent is None or kind_of[parent] not in kinds)


def streams(plant: Plant, site: str) -> dict[str, list[ChannelRef]]:
    """Per ESG input, the site's counters that add up to it, in configuration order. A root
    meter's untagged counters are grid electricity, natural gas, third-party water withdrawal
    and recycled water; production (and cleanroom) and office figures count the top meters of
    those areas; PV, discharge and other sources need the channel's `esg` tag."""
    site_obj = plant.site(site)
    areas = {a.id: a.kind for a in site_obj.areas} if site_obj else {}
    kind_of = {m.id: areas.get(m.area, AreaKind.UTILITY) for m in plant.meters if m.site == site}
    out: dict[str, list[ChannelRef]] = {}
    for r in plant.channels.values():
        if r.site.id != site or r.channel.kind is not ChannelKind.COUNTER:
            continue
        role, utility = _role(r), r.channel.utility
        names = []
        if utility is Utility.ELECTRICITY:
            names.append(
                GRID if role is EsgRole.GRID else PV if role is EsgRole.ONSITE_PV else None
            )
            if role is not EsgRole.ONSITE_PV and role is not EsgRole.NONE:
                names.append(PRODUCTION_KWH if _top_in(r, PRODUCTION_AREAS, kind_of) else None)
                names.append(OFFICE_KWH if _top_in(r, OFFICE_AREAS, kind_of) else None)
        elif utility is Utility.NATURAL_GAS and r.meter.parent is None:
            names.append(GAS)
        elif utility in (Utility.WATER, Utility.RECYCLED_WATER):
            source = r.channel.water_source or WaterSource.THIRD_PARTY
            water = {
                EsgRole.WITHDRAWAL: WITHDRAWAL + source.value,
                EsgRole.DISCHARGE: DISCHARGE,
                EsgRole.RECYCLED: RECYCLED,
            }
            names.append(None if role is None else water.get(role))
            in_production = _top_in(r, PRODUCTION_AREAS, kind_of)
            if utility is Utility.WATER and role is not EsgRole.DISCHARGE and in_production:
                names.append(PRODUCTION_WATER)
        for name in names:
            if name is not None:
                out.setdefault(name, []).append(r)
    return out


def measured(refs: Sequence[ChannelRef], sums: Mapping[str, ChannelSum]) -> Measured:
    """The channels' totals added in their utility's base unit (kWh or m3), with their
    samples and the estimated share; channels without a sum had no data (nothing received)."""
    amounts, estimated = [], []
    coverage = _NOTHING
    for r in refs:
        s = sums.get(r.key)
        to_base = base_scale(r.channel.utility, r.channel.unit)
        if s is None:
            coverage = coverage + Coverage(expected=1, received=0, good=0)
            continue
        amounts.append(s.total * to_base)
        estimated.append(s.estimated * to_base)
        coverage = coverage + Coverage(
            expected=s.samples_expected, received=s.samples, good=s.samples_good
        )
    value = max(0.0, math.fsum(amounts))  # counters never go back: only rounding can
    share = min(1.0, abs(math.fsum(estimated)) / value) if value else 0.0
    return Measured(value=value, coverage=coverage, estimated_share=share)


def _missing(what: str) -> Measured:
    return Measured(
        value=None, coverage=Coverage(expected=1, received=0, good=0), reason=f"no {what}"
    )


def esg_inputs(
    *,
    site: str,
    region: str,
    start_ns: int,
    end_ns: int,
    streams: Mapping[str, Sequence[ChannelRef]],
    sums: Mapping[str, ChannelSum],
    denominators: Mapping[Denominator, Figure],
) -> EsgInputs:
    """A site's ESG inputs over [start_ns, end_ns) from its streams' totals. What the site has
    no counter for is missing (grid, withdrawal, discharge, production and office figures) or
    none (natural gas and recycled water: 0; PV and certificates: not reported)."""

    def of(name: str) -> Measured | None:
        refs = streams.get(name)
        return measured(refs, sums) if refs else None

    withdrawal = {
        source: m for source in WaterSource if (m := of(WITHDRAWAL + source.value)) is not None
    }
    zero = Measured(value=0.0, coverage=_NOTHING)
    return EsgInputs(
        site=site,
        region=region,
        start_ns=start_ns,
        end_ns=end_ns,
        grid_electricity_kwh=of(GRID) or _missing("grid electricity counter on a root meter"),
        pv_electricity_kwh=of(PV),
        production_electricity_kwh=of(PRODUCTION_KWH),
        office_electricity_kwh=of(OFFICE_KWH),
        natural_gas_m3=of(GAS) or zero,
        water_withdrawal_m3=withdrawal
        or {WaterSource.THIRD_PARTY: _missing("water withdrawal counter on a root meter")},
        water_discharge_m3=of(DISCHARGE) or _missing("water counter tagged esg: discharge"),
        water_recycled_m3=of(RECYCLED) or zero,
        production_water_m3=of(PRODUCTION_WATER),
        denominators=dict(denominators),
    )

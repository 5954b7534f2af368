"""Versioned emission-factor tables and Scope 1 / Scope 2 emissions that name the factors they used.

Pure: factors arrive as records with validity in UTC ns (the edge converts dates). No I/O, no clock.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise

from compute.errors import PlantPulseError

CO2_PER_C = 44.0 / 12.0  # molar mass ratio CO2 / C (IPCC 2006 Guidelines, vol. 2 eq. 2.1)


class EmissionsError(PlantPulseError, ValueError):
    """A factor, a factor table or an activity figure is invalid."""


class MissingFactorError(PlantPulseError, LookupError):
    """No factor covers an instant or part of a period; the message names what is missing."""


class Basis(enum.StrEnum):
    """Scope 2 accounting basis (GHG Protocol Scope 2 Guidance). Fuel factors are LOCATION."""

    LOCATION = "location"
    MARKET = "market"


class Activity(enum.StrEnum):
    """What a factor multiplies; `unit` is the activity's unit, factors are tCO2 per it."""

    NATURAL_GAS = "natural_gas"
    DIESEL = "diesel"
    GASOLINE = "gasoline"
    ELECTRICITY_GRID = "electricity_grid"
    HEAT = "heat"

    @property
    def scope(self) -> int:
        return 2 if self in (Activity.ELECTRICITY_GRID, Activity.HEAT) else 1

    @property
    def unit(self) -> str:
        return {"natural_gas": "1000m3", "electricity_grid": "MWh", "heat": "GJ"}.get(self, "t")

    @property
    def factor_unit(self) -> str:
        return f"tCO2/{self.unit}"


@dataclass(frozen=True, slots=True, kw_only=True)
class FuelCombustion:
    """Combustion properties of a fuel per activity unit, and the CO2 factor they give.

    tCO2/unit = LHV [GJ/unit] × 10^-3 [TJ/GJ] × carbon content [tC/TJ] × oxidation × 44/12
    (GB/T 32150-2015 and the IPCC 2006 tier-1 method).
    """

    lhv_gj_per_unit: float
    carbon_tc_per_tj: float
    oxidation_fraction: float
    source: str

    @property
    def tco2_per_unit(self) -> float:
        tc_per_unit = self.lhv_gj_per_unit / 1_000.0 * self.carbon_tc_per_tj
        return tc_per_unit * self.oxidation_fraction * CO2_PER_C


NATURAL_GAS_DEFAULT = FuelCombustion(  # per 1000 m3: ≈ 2.1622 tCO2/1000 m3
    lhv_gj_per_unit=38.931,
    carbon_tc_per_tj=15.3,
    oxidation_fraction=0.99,
    source="GB/T 32150-2015 defaults / IPCC 2006: LHV 389.31 GJ/10^4 m3, 15.3 tC/TJ, 99 % oxidised",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class FactorKey:
    """Which factor series: an activity on a basis in a region.

    `region` is a "/"-separated path from broad to specific ("CN", "CN/east", "CN/east/jiangsu").
    """

    activity: Activity
    region: str
    basis: Basis = Basis.LOCATION

    def __str__(self) -> str:
        return f"{self.basis}-based {self.activity} in region {self.region!r}"

    def broader(self) -> list[FactorKey]:
        """This key and those of its ancestor regions, most specific first."""
        names = self.region.split("/")
        regions = ("/".join(names[:n]) for n in range(len(names), 0, -1))
        return [dataclasses.replace(self, region=r) for r in regions]


@dataclass(frozen=True, slots=True, kw_only=True)
class EmissionFactor:
    """One version of one factor, valid over [valid_from_ns, valid_to_ns); None is open-ended.

    `value` is in `unit`, which must be `activity.factor_unit` (e.g. tCO2/MWh, tCO2/1000m3).
    """

    id: str
    version: str
    activity: Activity
    region: str
    valid_from_ns: int
    valid_to_ns: int | None = None
    value: float
    unit: str
    basis: Basis = Basis.LOCATION
    source: str

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not self.id or not self.version or not self.source:
            problems.append("id, version and source are required")
        if not self.region or "" in self.region.split("/"):
            problems.append(f"region {self.region!r} is not a path like 'CN/east'")
        if self.valid_to_ns is not None and self.valid_to_ns <= self.valid_from_ns:
            problems.append("valid_to_ns must be after valid_from_ns")
        if not (math.isfinite(self.value) and self.value >= 0.0):
            problems.append(f"value must be finite and >= 0, got {self.value!r}")
        if self.unit != self.activity.factor_unit:
            problems.append(f"unit {self.unit!r} is not {self.activity.factor_unit!r}")
        if self.activity.scope == 1 and self.basis is not Basis.LOCATION:
            problems.append("a Scope 1 fuel factor has no market basis")
        if problems:
            raise EmissionsError(f"factor {self.ref}: " + "; ".join(problems))

    @property
    def ref(self) -> str:
        return f"{self.id}@{self.version}"

    @property
    def key(self) -> FactorKey:
        return FactorKey(activity=self.activity, region=self.region, basis=self.basis)

    def covers(self, ts_ns: int) -> bool:
        return self.valid_from_ns <= ts_ns and (
            self.valid_to_ns is None or ts_ns < self.valid_to_ns
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class FactorSegment:
    """The part [start_ns, end_ns) of a period under one factor; weight is its share of the time."""

    start_ns: int
    end_ns: int
    weight: float
    factor: EmissionFactor


def _iso(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns // 1_000_000_000, tz=UTC).isoformat()


class FactorTable:
    """A validated set of factor versions; selection picks the most specific region covering a time.

    Invalid (every problem reported at once): a repeated (id, version), or two factors with the same
    key and overlapping validity. A revision therefore ends the validity of what it replaces or
    lives in a new table, so restating a period under it is an explicit act.
    """

    def __init__(self, factors: Iterable[EmissionFactor]) -> None:
        self.factors = tuple(factors)
        self._by_key: dict[FactorKey, list[EmissionFactor]] = {}
        problems: list[str] = []
        for n, f in enumerate(self.factors):
            if any(g.ref == f.ref for g in self.factors[:n]):
                problems.append(f"{f.ref} appears twice")
            self._by_key.setdefault(f.key, []).append(f)
        for key, fs in self._by_key.items():
            fs.sort(key=lambda f: f.valid_from_ns)
            for a, b in pairwise(fs):
                if a.valid_to_ns is None or b.valid_from_ns < a.valid_to_ns:
                    problems.append(f"{a.ref} and {b.ref} overlap for {key}")
        if problems:
            raise EmissionsError("invalid factor table: " + "; ".join(problems))

    def _candidates(self, key: FactorKey) -> list[EmissionFactor]:
        return [f for k in key.broader() for f in self._by_key.get(k, [])]

    def _find(self, key: FactorKey, ts_ns: int) -> EmissionFactor | None:
        # candidates run most specific region first, so the first that covers ts_ns wins
        return next((f for f in self._candidates(key) if f.covers(ts_ns)), None)

    def select(self, key: FactorKey, at_ns: int) -> EmissionFactor:
        """The factor valid at `at_ns` for the most specific ancestor-or-self of `key.region`."""
        found = self._find(key, at_ns)
        if found is None:
            raise MissingFactorError(f"no {key} factor at {_iso(at_ns)}")
        return found

    def segments(self, key: FactorKey, start_ns: int, end_ns: int) -> tuple[FactorSegment, ...]:
        """Split [start_ns, end_ns) where the selected factor changes; the weights sum to 1.

        Raises MissingFactorError listing every interval of the period that no factor covers.
        """
        if end_ns <= start_ns:
            raise EmissionsError(f"empty period [{start_ns}, {end_ns})")
        cuts = {start_ns, end_ns}
        for f in self._candidates(key):
            edges = (f.valid_from_ns, f.valid_to_ns)
            cuts.update(t for t in edges if t is not None and start_ns < t < end_ns)
        parts: list[tuple[int, int, EmissionFactor]] = []
        gaps: list[tuple[int, int]] = []
        for a, b in pairwise(sorted(cuts)):  # no validity edge inside (a, b): one factor for all
            found = self._find(key, a)
            if found is None:  # a cut is some factor's edge, so two gaps never touch
                gaps.append((a, b))
            elif parts and parts[-1][2] is found:
                parts[-1] = (parts[-1][0], b, found)
            else:
                parts.append((a, b, found))
        if gaps:
            spans = ", ".join(f"[{_iso(a)}, {_iso(b)})" for a, b in gaps)
            raise MissingFactorError(f"no {key} factor covers {spans}")
        span = end_ns - start_ns
        return tuple(
            FactorSegment(start_ns=a, end_ns=b, weight=(b - a) / span, factor=f)
            for a, b, f in parts
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class FactorUse:
    """Provenance of one segment: the factor version that multiplied the activity quantity."""

    segment: FactorSegment
    quantity: float  # in the activity's unit
    emissions_tco2: float


@dataclass(frozen=True, slots=True, kw_only=True)
class EmissionResult:
    """Emissions of one factor series over [start_ns, end_ns), with each factor used, in order."""

    key: FactorKey
    start_ns: int
    end_ns: int
    quantity: float  # activity that received a factor, in key.activity.unit
    emissions_tco2: float
    uses: tuple[FactorUse, ...]
    certificates_mwh: float = 0.0  # market-based: certificates applied against purchases

    @property
    def scope(self) -> int:
        return self.key.activity.scope

    @property
    def factor_refs(self) -> tuple[str, ...]:
        return tuple(u.segment.factor.ref for u in self.uses)


def _check(name: str, value: float) -> float:
    if not (math.isfinite(value) and value >= 0.0):
        raise EmissionsError(f"{name} must be finite and >= 0, got {value!r}")
    return value


def emissions(
    table: FactorTable,
    key: FactorKey,
    start_ns: int,
    end_ns: int,
    quantity: float | Sequence[float],
) -> EmissionResult:
    """Emissions [tCO2] = Σ over factor segments of quantity × the factor valid in that segment.

    GHG Protocol activity × factor; T/LTIA 27-2024 EPE = PE × CEFE and EPT = PTE × CEFTE. Quantity
    is in `key.activity.unit`: a number is split across segments by their share of the period
    (uniform use), the last taking the remainder so the parts add up; a sequence gives one quantity
    per segment, in the order of `table.segments(...)` (exact when use is not uniform).
    """
    segs = table.segments(key, start_ns, end_ns)
    if isinstance(quantity, Sequence):
        if len(quantity) != len(segs):
            raise EmissionsError(f"{len(quantity)} quantities for {len(segs)} factor segments")
        parts = [_check(f"{key.activity} quantity", float(q)) for q in quantity]
    else:
        _check(f"{key.activity} quantity", quantity)
        parts = [quantity * s.weight for s in segs[:-1]]
        parts.append(max(0.0, quantity - math.fsum(parts)))
    uses = tuple(
        FactorUse(segment=s, quantity=q, emissions_tco2=q * s.factor.value)
        for s, q in zip(segs, parts, strict=True)
    )
    total = math.fsum(u.emissions_tco2 for u in uses)
    return EmissionResult(
        key=key,
        start_ns=start_ns,
        end_ns=end_ns,
        quantity=math.fsum(parts),
        emissions_tco2=total,
        uses=uses,
    )


def scope1_natural_gas(
    table: FactorTable, region: str, start_ns: int, end_ns: int, *, volume_m3: float
) -> EmissionResult:
    """Scope 1 from natural gas burned on site: volume [m3] ÷ 1 000 × factor [tCO2/1000m3]."""
    key = FactorKey(activity=Activity.NATURAL_GAS, region=region)
    return emissions(table, key, start_ns, end_ns, _check("volume_m3", volume_m3) / 1_000.0)


def scope2_location(
    table: FactorTable, region: str, start_ns: int, end_ns: int, *, purchased_mwh: float
) -> EmissionResult:
    """Location-based Scope 2: purchased grid electricity [MWh] × grid-average factor [tCO2/MWh].

    E.g. China's national grid 0.5810 tCO2/MWh (notice for 2021-2022 reporting), 0.5703 for 2022
    data. Self-consumed on-site PV is not purchased and is not part of `purchased_mwh`.
    """
    key = FactorKey(activity=Activity.ELECTRICITY_GRID, region=region)
    return emissions(table, key, start_ns, end_ns, purchased_mwh)


def scope2_market(
    table: FactorTable,
    region: str,
    start_ns: int,
    end_ns: int,
    *,
    purchased_mwh: float,
    certificates_mwh: float = 0.0,
) -> EmissionResult:
    """Market-based Scope 2 = max(0, purchased − certificates) [MWh] × contract/residual factor.

    Green-electricity certificates count as zero emissions up to the purchased amount, so surplus
    certificates never make emissions negative; the factor is the MARKET-basis one (supplier,
    contract or residual mix). Self-consumed on-site PV is not purchased and not passed here.
    """
    _check("certificates_mwh", certificates_mwh)
    net_mwh = max(0.0, _check("purchased_mwh", purchased_mwh) - certificates_mwh)
    key = FactorKey(activity=Activity.ELECTRICITY_GRID, region=region, basis=Basis.MARKET)
    result = emissions(table, key, start_ns, end_ns, net_mwh)
    return dataclasses.replace(result, certificates_mwh=min(purchased_mwh, certificates_mwh))

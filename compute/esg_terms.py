"""Unrounded terms of an ESG report and the builder that publishes them as rounded indicators.

Pure: a term carries its value, unit, coverage, estimated share, raw inputs and factors; no I/O.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from compute.emissions import (
    Activity,
    Basis,
    EmissionFactor,
    EmissionResult,
    FactorKey,
    FactorTable,
    MissingFactorError,
)
from compute.esg_model import (
    EsgInputs,
    Framework,
    Indicator,
    InputUse,
    Measured,
    ReportSpec,
    Rounding,
)
from compute.indicators import Coverage, Denominator, Figure, intensity, round_half_up

INTENSITY_DECIMALS = 6  # intensities per unit produced are small: keep six places
NOTHING_EXPECTED = Coverage(expected=0, received=0, good=0)  # vacuously complete
NOTHING_RECEIVED = Coverage(expected=1, received=0, good=0)

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Term:
    """An unrounded figure with its data quality, the raw inputs and the factors behind it."""

    value: float | None
    unit: str
    coverage: Coverage
    estimated_share: float
    reason: str
    inputs: tuple[InputUse, ...]
    factors: tuple[EmissionFactor, ...] = ()


def unique(items: Sequence[_T]) -> tuple[_T, ...]:
    """`items` without repeats, in first-seen order."""
    return tuple(dict.fromkeys(items))


def raw(name: str, m: Measured | None, unit: str) -> Term:
    """A raw input in `unit`; an optional one not given (no PV, no certificates) enters as 0."""
    if m is None:
        m = Measured(value=0.0, coverage=NOTHING_EXPECTED, reason="none reported: taken as 0")
    use = InputUse(
        name=name,
        value=m.value,
        unit=unit,
        coverage=m.coverage,
        estimated_share=m.estimated_share,
        reason=m.reason,
    )
    return Term(
        value=m.value,
        unit=unit,
        coverage=m.coverage,
        estimated_share=m.estimated_share,
        reason=f"{name} missing: {m.reason}" if m.value is None else "",
        inputs=(use,),
    )


def absent(what: str) -> Measured:
    """An input nobody supplied: no value, and the reason names it."""
    return Measured(value=None, coverage=NOTHING_RECEIVED, reason=f"no {what} reported")


def convert(v: Term, fn: Callable[[float], float], unit: str) -> Term:
    """A unit conversion or a scaling: the data quality is unchanged."""
    return dataclasses.replace(v, value=None if v.value is None else fn(v.value), unit=unit)


def total(unit: str, *terms: Term) -> Term:
    """Σ of like quantities: coverage of the weakest part, estimated share weighted by value."""
    missing = [t.reason for t in terms if t.value is None]
    present = [(t.value, t.estimated_share) for t in terms if t.value is not None]
    weight = math.fsum(abs(x) for x, _ in present)
    if weight and not missing:
        share = math.fsum(abs(x) * s for x, s in present) / weight
    else:
        share = max(t.estimated_share for t in terms)
    return Term(
        value=None if missing else math.fsum(x for x, _ in present),
        unit=unit,
        coverage=Coverage.combine(*(t.coverage for t in terms)),
        estimated_share=share,
        reason="; ".join(unique(missing)),
        inputs=unique([u for t in terms for u in t.inputs]),
        factors=unique([f for t in terms for f in t.factors]),
    )


def difference(unit: str, a: Term, b: Term) -> Term:
    """a − b: coverage of the weaker, estimated share of the larger (weighting has no sense)."""
    s = total(unit, a, convert(b, lambda x: -x, b.unit))
    return dataclasses.replace(s, estimated_share=max(a.estimated_share, b.estimated_share))


def capped(v: Term, cap: Term) -> Term:
    """min(v, cap) with v's data quality: the cap only bounds it (certificates by purchases)."""
    if v.value is None or cap.value is None:
        return total(v.unit, v, cap)  # no value, and both reasons
    return dataclasses.replace(v, value=min(v.value, cap.value))


class ReportBuilder:
    """Collects one report's indicators, in order, from terms over the inputs' period."""

    def __init__(self, inputs: EsgInputs, table: FactorTable, spec: ReportSpec) -> None:
        self.inputs, self.table, self.spec = inputs, table, spec
        self.indicators: list[Indicator] = []
        self.notes: list[str] = []

    def figure(self, t: Term) -> Figure:
        """The term as a Figure of the period, for the ratio functions of compute.indicators."""
        return Figure(
            value=t.value,
            unit=t.unit,
            start_ns=self.inputs.start_ns,
            end_ns=self.inputs.end_ns,
            coverage=t.coverage,
            reason=t.reason,
        )

    @staticmethod
    def derived(f: Figure, *parts: Term) -> Term:
        """A figure derived from different series (a ratio, a balance): the coverage is what
        compute.indicators propagated (the weakest), the estimated share the largest part's."""
        return Term(
            value=f.value,
            unit=f.unit,
            coverage=f.coverage,
            estimated_share=max(p.estimated_share for p in parts),
            reason=f.reason,
            inputs=unique([u for p in parts for u in p.inputs]),
            factors=unique([x for p in parts for x in p.factors]),
        )

    def denominator(self, kind: Denominator) -> Term:
        """The supplied denominator (ERP / MES / by hand, never gap-filled), or None and why."""
        f = self.inputs.denominators.get(kind)
        if f is None:
            f = Figure(
                value=None,
                unit=kind.unit,
                start_ns=self.inputs.start_ns,
                end_ns=self.inputs.end_ns,
                coverage=NOTHING_RECEIVED,
                reason=f"no {kind} supplied for the period",
            )
        use = InputUse(
            name=str(kind),
            value=f.value,
            unit=f.unit,
            coverage=f.coverage,
            estimated_share=0.0,
            reason=f.reason,
        )
        return Term(
            value=f.value,
            unit=f.unit,
            coverage=f.coverage,
            estimated_share=0.0,
            reason=f.reason,
            inputs=(use,),
        )

    def intensity(self, numerator: Term, kind: Denominator) -> Term:
        den = self.denominator(kind)
        f = intensity(self.figure(numerator), self.figure(den), kind)
        return self.derived(f, numerator, den)

    def emissions(self, activity: Term, run: Callable[[float], EmissionResult]) -> Term:
        """`run` applies the factors valid over the period to the activity's value; a period no
        factor covers gives None with the reason."""
        value: float | None = None
        reason = activity.reason
        factors: tuple[EmissionFactor, ...] = ()
        if activity.value is not None:
            try:
                result = run(activity.value)
            except MissingFactorError as e:
                reason = str(e)
            else:
                value = result.emissions_tco2
                factors = tuple(u.segment.factor for u in result.uses)
        return dataclasses.replace(
            activity,
            value=value,
            unit="tCO2e",
            reason=reason,
            factors=unique([*activity.factors, *factors]),
        )

    def has_market_factor(self) -> bool:
        """Whether any market-basis grid factor of the region (or a broader one) touches the
        period; one that covers only part of it then fails as a missing factor, not silently."""
        key = FactorKey(
            activity=Activity.ELECTRICITY_GRID, region=self.inputs.region, basis=Basis.MARKET
        )
        keys = set(key.broader())
        a, b = self.inputs.start_ns, self.inputs.end_ns
        return any(
            f.key in keys and f.valid_from_ns < b and (f.valid_to_ns is None or a < f.valid_to_ns)
            for f in self.table.factors
        )

    def add(
        self,
        framework: Framework,
        code: str,
        item: str,
        name: str,
        t: Term,
        decimals: int,
        formula: str,
        *,
        unit: str | None = None,
    ) -> None:
        """Publish `t`: rounded half-up once, to the spec's decimals for the key or `decimals`."""
        key = f"{framework}:{code}" + (f":{item}" if item else "")
        places = self.spec.decimals.get(key, decimals)
        self.indicators.append(
            Indicator(
                framework=framework,
                code=code,
                item=item,
                name=name,
                value=None if t.value is None else round_half_up(t.value, places),
                unrounded=t.value,
                unit=unit or t.unit,
                decimals=places,
                rounding=Rounding.HALF_UP,
                formula=formula,
                inputs=t.inputs,
                coverage=t.coverage,
                estimated_share=t.estimated_share,
                factor_refs=tuple(f.ref for f in t.factors),
                reason=t.reason,
            )
        )

    def add_intensities(
        self, framework: Framework, code: str, name: str, numerator: Term, formula: str
    ) -> None:
        """One intensity of `numerator` per denominator the spec asks for."""
        for kind in self.spec.intensity_per:
            self.add(
                framework,
                code,
                f"intensity/{kind}",
                f"{name} per {kind}",
                self.intensity(numerator, kind),
                INTENSITY_DECIMALS,
                f"{formula} ÷ {kind} [{kind.unit}]",
            )

"""Period values that intensities divide by (units produced, output value, revenue, headcount,
floor area), as other systems or people supply them for a site and a period.

Pure: the store keeps every version; this picks the latest per period and fits them to the
period asked for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from compute.errors import PlantPulseError
from compute.indicators import Coverage, Denominator, Figure
from compute.model import NS_PER_S

# Stocks are averaged over time; flows are summed, each period in proportion to its overlap.
STOCKS = frozenset({Denominator.HEADCOUNT, Denominator.FLOOR_AREA_M2})


class PeriodValueError(PlantPulseError, ValueError):
    """A period value is impossible or conflicts with one already recorded."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PeriodValue:
    """A denominator's value for [start_ns, end_ns) at a site; a later recorded_at_ns for the
    same period supersedes an earlier one (a restatement), which is kept."""

    site: str
    kind: Denominator
    start_ns: int
    end_ns: int
    value: float
    source: str
    recorded_at_ns: int

    def __post_init__(self) -> None:
        if self.end_ns <= self.start_ns:
            raise PeriodValueError("a period value's end must be after its start")
        if self.start_ns < 0 or self.end_ns >= 2**63:
            raise PeriodValueError("a period value's period must lie between 1970 and 2262")
        if not (math.isfinite(self.value) and self.value >= 0.0):
            raise PeriodValueError(f"a {self.kind} value is finite and >= 0, got {self.value!r}")
        if not self.source.strip():
            raise PeriodValueError("a period value names its source (a system or a person)")


def check_new(new: PeriodValue, recorded: Sequence[PeriodValue]) -> None:
    """Refuse a period that overlaps a recorded period of the same site and kind without
    matching it exactly: which of the two would count where they overlap is ambiguous."""
    for old in recorded:
        same = (old.site, old.kind) == (new.site, new.kind)
        overlap = old.start_ns < new.end_ns and new.start_ns < old.end_ns
        exact = (old.start_ns, old.end_ns) == (new.start_ns, new.end_ns)
        if same and overlap and not exact:
            raise PeriodValueError(
                f"[{new.start_ns}, {new.end_ns}) overlaps the recorded period "
                f"[{old.start_ns}, {old.end_ns}) of {new.kind}: record the same period again "
                "to restate it, or periods that do not overlap"
            )


def latest(values: Sequence[PeriodValue]) -> list[PeriodValue]:
    """The newest version of each period, oldest period first."""
    newest: dict[tuple[int, int], PeriodValue] = {}
    for v in values:
        key = (v.start_ns, v.end_ns)
        if key not in newest or v.recorded_at_ns > newest[key].recorded_at_ns:
            newest[key] = v
    return [newest[k] for k in sorted(newest)]


def denominator_over(
    values: Sequence[PeriodValue], kind: Denominator, start_ns: int, end_ns: int
) -> Figure:
    """The denominator over [start_ns, end_ns) from the latest version of each period.

    A flow (units produced, output value, revenue) sums each period's value in proportion to
    the part of the period inside [start_ns, end_ns); a stock (headcount, floor area) is the
    time-weighted mean over the covered time. Coverage is the covered share of the span, in
    seconds; nothing covered gives no value and the reason.
    """
    span_s = (end_ns - start_ns) // NS_PER_S
    total = covered_ns = 0.0
    weighted = 0.0
    for v in latest([v for v in values if v.kind is kind]):
        inside = min(v.end_ns, end_ns) - max(v.start_ns, start_ns)
        if inside <= 0:
            continue
        covered_ns += inside
        share = inside / (v.end_ns - v.start_ns)
        total += v.value * share
        weighted += v.value * inside
    covered_s = int(covered_ns // NS_PER_S)
    coverage = Coverage(expected=span_s, received=covered_s, good=covered_s)
    if covered_ns == 0:
        return Figure(
            value=None,
            unit=kind.unit,
            start_ns=start_ns,
            end_ns=end_ns,
            coverage=coverage,
            reason=f"no {kind} recorded for this period",
        )
    value = weighted / covered_ns if kind in STOCKS else total
    return Figure(value=value, unit=kind.unit, start_ns=start_ns, end_ns=end_ns, coverage=coverage)

"""Period values fitted to the period an intensity asks for: flows pro rata, stocks averaged."""

from __future__ import annotations

import pytest

from compute.denominators import PeriodValue, PeriodValueError, check_new, denominator_over
from compute.indicators import Denominator

DAY = 86_400 * 10**9
UNITS = Denominator.UNITS_PRODUCED


def _v(kind: Denominator, start_d: int, end_d: int, value: float, at: int = 1) -> PeriodValue:
    return PeriodValue(
        site="s",
        kind=kind,
        start_ns=start_d * DAY,
        end_ns=end_d * DAY,
        value=value,
        source="ERP",
        recorded_at_ns=at,
    )


def test_flows_add_up_in_proportion_to_their_overlap() -> None:
    months = [_v(UNITS, 0, 30, 3000.0), _v(UNITS, 30, 60, 6000.0)]
    whole = denominator_over(months, UNITS, 0, 60 * DAY)
    assert whole.value == pytest.approx(9000.0) and whole.coverage.good_fraction == 1.0
    half = denominator_over(months, UNITS, 15 * DAY, 45 * DAY)
    assert half.value == pytest.approx(1500.0 + 3000.0)


def test_stocks_are_time_weighted_means_and_gaps_show_in_coverage() -> None:
    heads = [_v(Denominator.HEADCOUNT, 0, 10, 100.0), _v(Denominator.HEADCOUNT, 10, 20, 200.0)]
    f = denominator_over(heads, Denominator.HEADCOUNT, 5 * DAY, 25 * DAY)
    assert f.value == pytest.approx((5 * 100.0 + 10 * 200.0) / 15)
    assert f.coverage.good_fraction == pytest.approx(15 / 20)


def test_a_restated_period_counts_its_latest_version_only() -> None:
    f = denominator_over(
        [_v(UNITS, 0, 30, 3000.0, at=1), _v(UNITS, 0, 30, 3100.0, at=2)], UNITS, 0, 30 * DAY
    )
    assert f.value == pytest.approx(3100.0)


def test_nothing_recorded_gives_no_value_and_the_reason() -> None:
    f = denominator_over([_v(Denominator.HEADCOUNT, 0, 30, 9.0)], UNITS, 0, 30 * DAY)
    assert f.value is None and "no units_produced" in f.reason


def test_impossible_or_ambiguous_periods_are_refused() -> None:
    with pytest.raises(PeriodValueError, match="after its start"):
        _v(UNITS, 5, 5, 1.0)
    with pytest.raises(PeriodValueError, match=">= 0"):
        _v(UNITS, 0, 5, -1.0)
    recorded = [_v(UNITS, 0, 30, 3000.0)]
    check_new(_v(UNITS, 0, 30, 3100.0, at=2), recorded)  # a restatement of the same period
    check_new(_v(UNITS, 30, 60, 10.0), recorded)  # the next period
    check_new(_v(Denominator.REVENUE_10K_CNY, 10, 20, 5.0), recorded)  # another kind
    with pytest.raises(PeriodValueError, match="overlaps the recorded period"):
        check_new(_v(UNITS, 15, 45, 10.0), recorded)

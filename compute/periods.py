"""The local period a request names (a calendar period by its label, or [start, end)), and the
periods a total is compared with: the one before, and the same one a year before. Pure.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from compute.calendar import CalendarError, Period, period_bounds
from compute.errors import PlantPulseError
from compute.model import datetime_ns

CALENDAR = (Period.DAY, Period.WEEK, Period.MONTH, Period.QUARTER, Period.YEAR)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LABELS = {  # label pattern -> how it reads; a full date names any period holding it
    re.compile(r"^(\d{4})$"): "year",
    re.compile(r"^(\d{4})-Q([1-4])$"): "quarter",
    re.compile(r"^(\d{4})-(\d{2})$"): "month",
    re.compile(r"^(\d{4})-W(\d{2})$"): "week",
    re.compile(r"^(\d{4})-(\d{2})-(\d{2})$"): "date",
}
_FITS = {  # which label forms name which period
    Period.YEAR: {"year", "date"},
    Period.QUARTER: {"quarter", "date"},
    Period.MONTH: {"month", "date"},
    Period.WEEK: {"week", "date"},
    Period.DAY: {"date"},
}


class PeriodRefError(PlantPulseError, ValueError):
    """A period label is malformed, or does not name a period of that kind."""


class Compare(enum.StrEnum):
    PREVIOUS = "previous"  # the period just before, of the same kind or wall-clock length
    YEAR_BEFORE = "year_before"  # the same period one year earlier


@dataclass(frozen=True, slots=True, kw_only=True)
class Span:
    """[start_ns, end_ns) in UTC; `period` when it is one whole calendar period of the site."""

    start_ns: int
    end_ns: int
    period: Period | None = None


def label_date(period: Period, label: str) -> date:
    """A date inside the period a label names: 2026, 2026-Q1, 2026-03, 2026-W13 (ISO week) or
    2026-03-29; a full date names the day, week, month, quarter or year holding it."""
    if period not in CALENDAR:
        raise PeriodRefError(f"period must be one of {', '.join(CALENDAR)}, not {period}")
    for pattern, form in _LABELS.items():
        m = pattern.match(label)
        if m is None:
            continue
        if form not in _FITS[period]:
            break
        y, *rest = (int(g) for g in m.groups())
        try:
            if form == "quarter":
                return date(y, 3 * rest[0] - 2, 1)
            if form == "week":
                return date.fromisocalendar(y, rest[0], 1)
            month, day = [*rest, 1, 1][:2]
            return date(y, month, day)
        except ValueError as e:
            raise PeriodRefError(f"{label!r} is not a real {form}: {e}") from e
    examples = {"year": "2026", "quarter": "2026-Q1", "month": "2026-03", "week": "2026-W13"}
    forms = [examples[f] for f in sorted(_FITS[period]) if f in examples] + ["2026-03-29"]
    raise PeriodRefError(f"a {period} is named like {' or '.join(forms)}, not {label!r}")


def calendar_span(tz: str, period: Period, label: str) -> Span:
    when = label_date(period, label)
    try:
        start, end = period_bounds(tz, period, when)
    except CalendarError as e:
        raise PeriodRefError(str(e)) from e
    return Span(start_ns=start, end_ns=end, period=period)


def _local(ts_ns: int, zone: ZoneInfo) -> datetime:
    return (_EPOCH + timedelta(microseconds=ts_ns // 1_000)).astimezone(zone)


def _instant(wall: datetime, zone: ZoneInfo) -> int:
    return datetime_ns(wall.replace(tzinfo=zone))


def _year_earlier(d: date) -> date:
    try:
        return d.replace(year=d.year - 1)
    except ValueError:  # 29 February
        return d.replace(year=d.year - 1, day=28)


def compared(tz: str, span: Span, how: Compare) -> Span:
    """The span to compare `span` with. A calendar period compares with the period before it
    (a month with the month before, whatever their lengths) and with the same period a year
    earlier (an ISO week with the same week number, or the last week of a 52-week year). Any
    other span moves its local wall-clock start and end: back by its wall-clock length, or by
    one year (29 February to 28 February)."""
    zone = ZoneInfo(tz)
    start = _local(span.start_ns, zone)
    if span.period is not None:
        if how is Compare.PREVIOUS:
            a, b = period_bounds(tz, span.period, _local(span.start_ns - 1_000, zone))
        elif span.period is Period.WEEK:
            year, week, _ = start.date().isocalendar()
            weeks = date(year - 1, 12, 28).isocalendar()[1]  # 28 December is in the last week
            a, b = period_bounds(
                tz, span.period, date.fromisocalendar(year - 1, min(week, weeks), 1)
            )
        else:
            a, b = period_bounds(tz, span.period, _year_earlier(start.date()))
        return Span(start_ns=a, end_ns=b, period=span.period)
    wall_a = start.replace(tzinfo=None)
    wall_b = _local(span.end_ns, zone).replace(tzinfo=None)
    if how is Compare.PREVIOUS:
        a_wall, b_wall = wall_a - (wall_b - wall_a), wall_a
    else:
        a_wall = datetime.combine(_year_earlier(wall_a.date()), wall_a.time())
        b_wall = datetime.combine(_year_earlier(wall_b.date()), wall_b.time())
    return Span(start_ns=_instant(a_wall, zone), end_ns=_instant(b_wall, zone))

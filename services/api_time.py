"""Times in API parameters and answers: site-local when naive, on bucket boundaries."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime

from fastapi import HTTPException

from compute.model import NS_PER_S, datetime_ns


def site_zone(zones: dict[str, zoneinfo.ZoneInfo], site: str) -> zoneinfo.ZoneInfo:
    """The site's timezone; 404 naming the known sites when there is no such site."""
    if site not in zones:
        raise HTTPException(404, f"unknown site {site!r}; known: {sorted(zones)}")
    return zones[site]


def iso(ts_ns: int, tz: zoneinfo.ZoneInfo) -> datetime:
    return datetime.fromtimestamp(ts_ns / NS_PER_S, UTC).astimezone(tz)


def bound_ns(name: str, value: datetime, tz: zoneinfo.ZoneInfo, bucket_ns: int) -> int:
    """A period bound in ns; naive datetimes are in the site's timezone."""
    aware = value if value.tzinfo else value.replace(tzinfo=tz)
    ts_ns = datetime_ns(aware)
    if not 0 <= ts_ns < 2**63:  # the store's int64 nanoseconds
        raise HTTPException(422, f"{name} must lie between 1970 and 2262")
    if ts_ns % bucket_ns:
        raise HTTPException(422, f"{name} must fall on a {bucket_ns // NS_PER_S} s bucket boundary")
    return ts_ns


def time_range(
    start: datetime, end: datetime, tz: zoneinfo.ZoneInfo, bucket_ns: int
) -> tuple[int, int]:
    a, b = bound_ns("start", start, tz, bucket_ns), bound_ns("end", end, tz, bucket_ns)
    if b <= a:
        raise HTTPException(422, "end must be after start")
    return a, b

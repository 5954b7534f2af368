"""A site's headline figures per utility from the store: the rate over the last complete bucket,
today so far, yesterday up to the same local time and all of yesterday. Reads only.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from compute.model import NS_PER_S, datetime_ns
from compute.plant import ChannelKind, ChannelRef, Plant, Site, Utility
from services.series import period_totals
from services.store import Store

# Utilities a site overview shows, over its root counters (meters without a parent).
HEADLINE = (Utility.ELECTRICITY, Utility.NATURAL_GAS, Utility.WATER)


@dataclass(frozen=True, slots=True, kw_only=True)
class DayBounds:
    """Local day boundaries of a site at one instant, in ns."""

    today_start_ns: int
    yesterday_start_ns: int
    yesterday_same_time_ns: int  # yesterday at the wall-clock time of `now`


def day_bounds(now_ns: int, tz: zoneinfo.ZoneInfo) -> DayBounds:
    local = datetime.fromtimestamp(now_ns / NS_PER_S, UTC).astimezone(tz)
    today = datetime(local.year, local.month, local.day, tzinfo=tz)
    yesterday = today.date() - timedelta(days=1)
    y_start = datetime(yesterday.year, yesterday.month, yesterday.day, tzinfo=tz)
    same = datetime.combine(yesterday, local.time().replace(tzinfo=None), tzinfo=tz)
    return DayBounds(
        today_start_ns=datetime_ns(today),
        yesterday_start_ns=datetime_ns(y_start),
        yesterday_same_time_ns=min(datetime_ns(same), datetime_ns(today)),
    )


def root_counters(plant: Plant, site: str, utility: Utility) -> list[ChannelRef]:
    return [
        r
        for r in plant.channels.values()
        if r.site.id == site
        and r.channel.kind is ChannelKind.COUNTER
        and r.channel.utility is utility
        and r.meter.parent is None
    ]


async def site_figures(
    plant: Plant, store: Store, site: str, now_ns: int, bucket_ns: int, *, settle_s: float = 5.0
) -> dict[str, object]:
    """Per headline utility of the site: unit, rate_per_h (kW for kWh) over the last base bucket
    that ended `settle_s` ago, its coverage, and today / yesterday-to-now / yesterday totals (None
    where no channel has data)."""
    tz = zoneinfo.ZoneInfo(_site(plant, site).timezone)
    days = day_bounds(now_ns, tz)
    end_ns = -(-now_ns // bucket_ns) * bucket_ns  # today includes the open bucket
    last_start_ns = (now_ns - int(settle_s * NS_PER_S)) // bucket_ns * bucket_ns - bucket_ns
    utilities: dict[str, object] = {}
    for utility in HEADLINE:
        refs = root_counters(plant, site, utility)
        units = {r.channel.unit for r in refs}
        if len(units) != 1:
            continue  # none, or a mix of units that cannot be summed
        keys = [r.key for r in refs]
        today = await _sum(store, keys, days.today_start_ns, end_ns, tz.key)
        y_now = await _sum(
            store, keys, days.yesterday_start_ns, days.yesterday_same_time_ns, tz.key
        )
        y_full = await _sum(store, keys, days.yesterday_start_ns, days.today_start_ns, tz.key)
        last = await store.series_many(keys, last_start_ns, last_start_ns + bucket_ns)
        expected = sum(bucket_ns / (r.meter.interval_s * NS_PER_S) for r in refs)
        utilities[utility.value] = {
            "unit": units.pop(),
            "channels": keys,
            "rate_per_h": sum(b.sum for b in last) * 3600 * NS_PER_S / bucket_ns if last else None,
            "rate_start_ns": last_start_ns,
            "rate_window_s": bucket_ns // NS_PER_S,
            "rate_coverage": round(min(1.0, sum(b.n_good for b in last) / expected), 4),
            "today": today,
            "yesterday_same_time": y_now,
            "yesterday": y_full,
        }
    return {
        "site": site,
        "timezone": tz.key,
        "now_ns": now_ns,
        "today_start_ns": days.today_start_ns,
        "yesterday_same_time_ns": days.yesterday_same_time_ns,
        "utilities": utilities,
    }


async def _sum(
    store: Store, keys: Sequence[str], start_ns: int, end_ns: int, tz: str
) -> float | None:
    """The channels' total over the period; None where none of them has data in it."""
    got = await period_totals(store, keys, start_ns, end_ns, tz) if end_ns > start_ns else {}
    return sum(t.sum for t in got.values()) if got else None


def _site(plant: Plant, site: str) -> Site:
    found = plant.site(site)
    if found is None:
        raise KeyError(site)
    return found

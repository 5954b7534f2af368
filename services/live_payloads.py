"""JSON payloads of the live stream and the site overview: a channel's latest value with its
quality, age, rolling figures and cleanroom status, and a site's cleanroom layout. No I/O.
"""

from __future__ import annotations

import math
import zoneinfo
from dataclasses import asdict
from datetime import UTC, datetime

from compute.cleanroom import Limits, default_limits, label, status_of
from compute.model import NS_PER_S, Quality
from compute.plant import AreaKind, ChannelRef, Plant
from services.store import Latest


def limits_of(ref: ChannelRef) -> Limits | None:
    """A cleanroom channel's limits: the defaults for its room's ISO class."""
    if ref.area.kind is not AreaKind.CLEANROOM:
        return None
    return default_limits(ref.channel.id, ref.channel.unit, ref.area.iso_class)


def live_quality(latest: Latest | None, age_s: float, ref: ChannelRef, stale_after: int) -> str:
    """The reading's quality, or "stale" when no new one came within `stale_after` intervals,
    "missing" when none came at all (as GET /v1/live)."""
    if latest is None:
        return "missing"
    if age_s > stale_after * ref.meter.interval_s:
        return Quality.STALE.name.lower()
    return Quality(latest.quality).name.lower()


def iso_time(ts_ns: int, tz: zoneinfo.ZoneInfo) -> str:
    return datetime.fromtimestamp(ts_ns / NS_PER_S, UTC).astimezone(tz).isoformat()


def channel_payload(
    ref: ChannelRef,
    latest: Latest | None,
    figures: dict[str, object] | None,
    now_ns: int,
    stale_after: int,
) -> dict[str, object]:
    """A channel's stream event: its latest value, quality, time and age, its rolling figures
    from the aggregator (windows, demand) and, for cleanroom signals, limits and status."""
    age_s = (now_ns - latest.ts_ns) / NS_PER_S if latest is not None else math.inf
    quality = live_quality(latest, age_s, ref, stale_after)
    value = None if latest is None or math.isnan(latest.value) else latest.value
    out: dict[str, object] = {
        "channel_id": ref.key,
        "site": ref.site.id,
        "area": ref.area.id,
        "meter": ref.meter.id,
        "utility": ref.channel.utility.value,
        "kind": ref.channel.kind.value,
        "unit": ref.channel.unit,
        "value": value,
        "quality": quality,
        "ts": None
        if latest is None
        else iso_time(latest.ts_ns, zoneinfo.ZoneInfo(ref.site.timezone)),
        "ts_ns": None if latest is None else latest.ts_ns,
        "age_s": None if latest is None else round(age_s, 3),
        "interval_s": ref.meter.interval_s,
        "figures": figures,
    }
    limits = limits_of(ref)
    if limits is not None:
        out["limits"] = limits_json(limits)
        out["status"] = status_of(value, limits, usable=quality == "good").value
    return out


def limits_json(limits: Limits) -> dict[str, object]:
    return {k: str(v) if k == "signal" else v for k, v in asdict(limits).items()}


def cleanrooms(plant: Plant, site: str) -> list[dict[str, object]]:
    """The site's cleanrooms with their ISO class and the channels that have limits."""
    out: list[dict[str, object]] = []
    site_model = plant.site(site)
    if site_model is None:
        return out
    for area in site_model.areas:
        if area.kind is not AreaKind.CLEANROOM:
            continue
        channels: list[dict[str, object]] = []
        for ref in plant.channels.values():
            if ref.site.id != site or ref.area.id != area.id:
                continue
            limits = limits_of(ref)
            if limits is not None:
                channels.append(
                    {
                        "channel_id": ref.key,
                        "label": label(limits.signal, ref.channel.id),
                        "unit": ref.channel.unit,
                        "limits": limits_json(limits),
                    }
                )
        out.append(
            {
                "area": area.id,
                "description": area.description,
                "iso_class": area.iso_class,
                "channels": channels,
            }
        )
    return out

"""The body of GET /v1/live: latest value, quality and age of each channel, as JSON bytes in one
pass over rows prepared once per plant (no model per row). Pure: given the store's latest rows."""

from __future__ import annotations

import json
import math
import zoneinfo
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from pydantic import TypeAdapter

from compute.model import NS_PER_S, Quality
from compute.plant import Plant
from services.store import Latest

_QUALITY = {int(q): q.name.lower() for q in Quality}
_STALE = Quality.STALE.name.lower()
# Formats times exactly as the response model (pydantic) would: "...Z" in UTC, else "+hh:mm".
_DATETIME = TypeAdapter(datetime)


class LiveValues:
    """Per channel, in plant order: its site, its staleness bound and its fixed fields."""

    def __init__(
        self, plant: Plant, zones: dict[str, zoneinfo.ZoneInfo], stale_after_intervals: int
    ) -> None:
        self.zones = zones
        # Each row's fixed fields as a JSON object missing its closing brace, made once.
        self.rows = [
            (
                key,
                ref.site.id,
                stale_after_intervals * ref.meter.interval_s * NS_PER_S,
                json.dumps(
                    {
                        "channel_id": key,
                        "site": ref.site.id,
                        "area": ref.area.id,
                        "meter": ref.meter.id,
                        "utility": str(ref.channel.utility),
                        "kind": str(ref.channel.kind),
                        "unit": ref.channel.unit,
                    },
                    separators=(",", ":"),
                )[:-1],
            )
            for key, ref in plant.channels.items()
        ]

    def render(
        self,
        latest: Iterable[Latest],
        now_ns: int,
        *,
        site: str | None,
        covers: Callable[[str], bool],
    ) -> bytes:
        """The JSON list of LiveValue objects: quality is "stale" when nothing new came within
        the bound, "missing" when nothing came at all."""
        by_id = {x.channel_id: x for x in latest}
        times: dict[tuple[int, str], str] = {}  # readings of one poll share their timestamp
        out = []
        for key, site_id, stale_ns, fixed in self.rows:
            if (site is not None and site_id != site) or not covers(site_id):
                continue
            x = by_id.get(key)
            if x is None:
                out.append(f'{fixed},"value":null,"quality":"missing","ts":null,"age_s":null}}')
                continue
            age_ns = now_ns - x.ts_ns
            ts = times.get((x.ts_ns, site_id))
            if ts is None:
                dt = datetime.fromtimestamp(x.ts_ns / NS_PER_S, UTC).astimezone(self.zones[site_id])
                ts = times[x.ts_ns, site_id] = _DATETIME.dump_json(dt).decode()
            value = repr(float(x.value)) if math.isfinite(x.value) else "null"
            quality = _STALE if age_ns > stale_ns else _QUALITY[int(x.quality)]
            age_s = repr(round(age_ns / NS_PER_S, 3))
            out.append(f'{fixed},"value":{value},"quality":"{quality}","ts":{ts},"age_s":{age_s}}}')
        return f"[{','.join(out)}]".encode()

"""Live rolling figures: the aggregator's rolling windows and 15-minute demand per channel,
published to the metrics topic for the API to fan out.

Each aggregator keeps windows for the channels it has handled. A channel seen for the first time
(at start, or after a rebalance moved its partition here) gets its windows rebuilt from the
store's buckets of the longest window, so a restart or a rebalance loses nothing. A channel
whose partition moved away keeps draining here until it is no longer published (after
`forget_after_s` without data); each published figure carries `data_until` so that a reader
keeps the newest.
"""

from __future__ import annotations

import json
import zoneinfo
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np

from compute.buckets import BucketDeltas
from compute.demand import DemandState, close_demand, new_demand_state
from compute.indicators import Coverage, Denominator, Figure, intensity
from compute.model import NO_TS, NS_PER_S, datetime_ns
from compute.plant import ChannelKind, ChannelRef, Plant, Utility
from compute.watermark import Watermark
from compute.windows import RollingSpec, WindowValues, advance, new_rolling_state, query_windows
from services.store import Bucket

UNITS = Denominator.UNITS_PRODUCED


def month_start_ns(now_ns: int, tz: zoneinfo.ZoneInfo) -> int:
    """Start of the calendar month containing now_ns in the timezone."""
    local = datetime.fromtimestamp(now_ns / NS_PER_S, UTC).astimezone(tz)
    first = datetime(local.year, local.month, 1, tzinfo=tz)
    return datetime_ns(first)


class LiveWindows:
    def __init__(
        self,
        plant: Plant,
        *,
        spec: RollingSpec,
        allowed_lateness_s: float,
        forget_after_s: float = 300.0,
    ) -> None:
        self.spec = spec
        self.keys = tuple(sorted(plant.channels))
        self.row = {k: i for i, k in enumerate(self.keys)}
        refs = [plant.channels[k] for k in self.keys]
        self.interval_s = np.array([r.meter.interval_s for r in refs], dtype=np.float64)
        self.units = [r.channel.unit for r in refs]
        tz_names = sorted({r.site.timezone for r in refs})
        self.zones = [zoneinfo.ZoneInfo(z) for z in tz_names]
        self.zone_of = np.array([tz_names.index(r.site.timezone) for r in refs], dtype=np.intp)
        self.is_demand = np.array(
            [
                r.channel.kind is ChannelKind.COUNTER and r.channel.utility is Utility.ELECTRICITY
                for r in refs
            ],
            dtype=np.bool_,
        )
        self.sites = _site_groups(refs)
        self.state = new_rolling_state(spec, len(self.keys))
        self.demand: DemandState | None = None
        self.watermark = Watermark(allowed_lateness_ns=int(allowed_lateness_s * NS_PER_S))
        self.data_until_ns = np.full(len(self.keys), NO_TS, np.int64)
        self.forget_after_ns = int(forget_after_s * NS_PER_S)

    @property
    def history_s(self) -> int:
        """How far back a rebuild reads: the longest window plus its open slot."""
        return max(self.spec.windows_s) + self.spec.coarse_s

    def unseen(self, channel_ids: Sequence[str]) -> list[str]:
        return [c for c in channel_ids if self.data_until_ns[self.row[c]] == NO_TS]

    def rebuild(self, buckets: Sequence[Bucket], now_ns: int) -> None:
        """Seed channels seen for the first time with their stored buckets."""
        if not buckets:
            return
        rows = np.array([self.row[b.channel_id] for b in buckets], dtype=np.int32)
        start = np.array([b.bucket_start_ns for b in buckets], dtype=np.int64)
        self._apply(
            rows,
            start,
            np.array([b.sum for b in buckets]),
            np.array([b.n for b in buckets], dtype=np.int64),
            np.array([b.n_good for b in buckets], dtype=np.int64),
            now_ns,
        )

    def apply(self, deltas: BucketDeltas, now_ns: int) -> None:
        rows = np.array([self.row[k] for k in deltas.keys], dtype=np.int32)[deltas.channel]
        self._apply(rows, deltas.bucket_start_ns, deltas.sum, deltas.n, deltas.n_good, now_ns)

    def _apply(
        self,
        rows: np.ndarray,
        start_ns: np.ndarray,
        sum_: np.ndarray,
        n: np.ndarray,
        n_good: np.ndarray,
        now_ns: int,
    ) -> None:
        order = np.lexsort((start_ns, rows))
        cols = _Columns(rows[order], start_ns[order], sum_[order], n[order], n_good[order])
        now_ns = max(now_ns, int(start_ns.max()) if len(start_ns) else now_ns)
        self.state, _ = advance(self.state, self.spec, now_ns, cols)
        np.maximum.at(self.data_until_ns, rows, start_ns + self.spec.bucket_ns)

    def snapshot(self, now_ns: int) -> bytes:
        """The figures of every channel with recent data, as one JSON message."""
        self.state, _ = advance(self.state, self.spec, now_ns)
        self.watermark = self.watermark.advance(now_ns)
        if self.demand is None:
            self.demand = new_demand_state(self.spec, len(self.keys), self.watermark.watermark_ns)
        per_zone = np.array(
            [month_start_ns(self.watermark.watermark_ns, z) for z in self.zones], dtype=np.int64
        )
        months = per_zone[self.zone_of] // self.spec.coarse_ns * self.spec.coarse_ns
        closed = close_demand(
            self.demand, self.state, self.spec, self.watermark.watermark_ns, months, self.is_demand
        )
        self.demand = closed.state
        w = query_windows(self.state, self.spec, now_ns, self.interval_s)
        recent = (self.data_until_ns != NO_TS) & (
            now_ns - self.data_until_ns < self.forget_after_ns
        )
        channels = {}
        for i in np.flatnonzero(recent).tolist():
            figures: dict[str, object] = {
                "unit": self.units[i],
                "data_until_ns": int(self.data_until_ns[i]),
                "windows": [
                    {
                        "window_s": ws,
                        "end_ns": end,
                        "sum": _num(w.sum[i, j]),
                        "rate_per_h": _num(w.rate_per_h[i, j]),
                        "coverage": _num(w.coverage[i, j]),
                    }
                    for j, (ws, end) in enumerate(zip(w.windows_s, w.end_ns, strict=True))
                ],
            }
            if self.is_demand[i]:
                figures["demand_month_max_kw"] = _num(self.demand.max_kw[i])
                figures["demand_month_max_start_ns"] = int(self.demand.max_start_ns[i])
            channels[self.keys[i]] = figures
        sites = {site: _site_figures(groups, w, self.units) for site, groups in self.sites.items()}
        return json.dumps({"ts_ns": now_ns, "channels": channels, "sites": sites}).encode()


_INTENSITY_UTILITIES = (Utility.ELECTRICITY, Utility.NATURAL_GAS, Utility.WATER)


def _site_groups(refs: Sequence[ChannelRef]) -> dict[str, dict[str, list[int]]]:
    """Per site: the state rows of its root counters (meters without a parent) per utility, and
    of its production counters under "production"."""
    sites: dict[str, dict[str, list[int]]] = {}
    for i, r in enumerate(refs):
        if r.channel.kind is not ChannelKind.COUNTER:
            continue
        groups = sites.setdefault(r.site.id, {})
        if r.channel.utility is Utility.PRODUCTION:
            groups.setdefault("production", []).append(i)
        elif r.channel.utility in _INTENSITY_UTILITIES and r.meter.parent is None:
            groups.setdefault(r.channel.utility.value, []).append(i)
    return sites


def _site_figures(
    groups: dict[str, list[int]], w: WindowValues, units: Sequence[str]
) -> list[dict[str, object]]:
    """Per window: each utility's total over the site's root meters and its intensity per unit
    produced, each with the coverage of its inputs (compute.indicators)."""
    out = []
    for j, (window_s, end_ns) in enumerate(zip(w.windows_s, w.end_ns, strict=True)):
        made = groups.get("production")
        units_made = _window_figure(w, j, made, UNITS.unit) if made else None
        utilities: dict[str, object] = {}
        for utility, rows in groups.items():
            unit = units[rows[0]]
            if utility == "production" or any(units[r] != unit for r in rows):
                continue  # a mix of units cannot be summed
            total = _window_figure(w, j, rows, unit)
            per_unit = None if units_made is None else intensity(total, units_made, UNITS)
            utilities[utility] = {"total": _figure(total), "per_unit_produced": _figure(per_unit)}
        out.append({"window_s": window_s, "end_ns": end_ns, "utilities": utilities})
    return out


def _window_figure(w: WindowValues, j: int, rows: list[int], unit: str) -> Figure:
    """The sum of the rows' window j, with their coverage."""
    coverage = Coverage(
        expected=int(np.nansum(w.expected[rows, j])),
        received=int(w.n[rows, j].sum()),
        good=int(w.n_good[rows, j].sum()),
    )
    end_ns = w.end_ns[j]
    return Figure(
        value=float(w.sum[rows, j].sum()),
        unit=unit,
        start_ns=end_ns - w.windows_s[j] * NS_PER_S,
        end_ns=end_ns,
        coverage=coverage,
    )


def _figure(f: Figure | None) -> dict[str, object] | None:
    if f is None:
        return None
    return {
        "value": f.value,
        "unit": f.unit,
        "reason": f.reason or None,
        "coverage": round(f.coverage.good_fraction, 6),
    }


def _num(x: float) -> float | None:
    return None if x != x else float(x)


class _Columns:
    """Sorted bucket rows as compute.windows.advance reads them."""

    def __init__(
        self,
        channel: np.ndarray,
        start_ns: np.ndarray,
        sum_: np.ndarray,
        n: np.ndarray,
        n_good: np.ndarray,
    ) -> None:
        self.channel = channel.astype(np.int32)
        self.bucket_start_ns = start_ns.astype(np.int64)
        self.sum = sum_.astype(np.float64)
        self.n = n.astype(np.int64)
        self.n_good = n_good.astype(np.int64)

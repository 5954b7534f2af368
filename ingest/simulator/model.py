"""Deterministic plant model: load shapes, counters that only grow, noisy gauges.

Pure: every value is a function of (seed, channel, time), so the simulator can say exactly how
much a counter advanced between two instants, the ground truth that tests compare against.
"""

from __future__ import annotations

import hashlib
import zoneinfo
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from compute.model import NS_PER_S
from compute.plant import ChannelKind, ChannelRef, Plant, SimProfile

NS_PER_H = 3600 * NS_PER_S
_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return (z ^ (z >> np.uint64(31))) & _M64


def _uniform(seed: int, key: str, ticks: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Deterministic noise in [-1, 1) per (seed, channel, tick)."""
    salt = int.from_bytes(
        hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest(), "little"
    )
    z = _splitmix(ticks.astype(np.uint64) ^ np.uint64(salt))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53) * 2.0 - 1.0


def _offset_s(t_ns: int, tz: zoneinfo.ZoneInfo) -> int:
    offset = datetime.fromtimestamp(t_ns // NS_PER_S, UTC).astimezone(tz).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def load_shape(ts_ns: npt.NDArray[np.int64], tz: zoneinfo.ZoneInfo) -> npt.NDArray[np.float64]:
    """Share of peak load in [0, 1]: a working day 08-18 with ramps, a quarter of it at weekends."""
    if len(ts_ns) == 0:
        return np.zeros(0)
    first, last = _offset_s(int(ts_ns[0]), tz), _offset_s(int(ts_ns[-1]), tz)
    if first == last:
        local_s = ts_ns // NS_PER_S + first
    else:  # a DST change inside the span: look each instant up
        local_s = np.array([t // NS_PER_S + _offset_s(int(t), tz) for t in ts_ns], dtype=np.int64)
    hour = (local_s % 86400) / 3600.0
    weekday = ((local_s // 86400) + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    day = np.clip(np.minimum((hour - 6.0) / 2.0, (20.0 - hour) / 2.0), 0.0, 1.0)
    shape: npt.NDArray[np.float64] = np.where(weekday >= 5, 0.25 * day, day)
    return shape


class PlantSimulator:
    """Values of every simulated channel as exact functions of time (ticks of `tick_ns`)."""

    def __init__(self, plant: Plant, *, seed: int, start_ns: int, tick_ns: int = NS_PER_S) -> None:
        self.plant = plant
        self.seed = seed
        self.start_ns = start_ns
        self.tick_ns = tick_ns
        self.channels = {k: r for k, r in plant.channels.items() if r.channel.simulate is not None}
        self._zones = {s.id: zoneinfo.ZoneInfo(s.timezone) for s in plant.sites}
        self._cache: dict[str, tuple[int, float]] = {}

    def _profile(self, key: str) -> tuple[ChannelRef, SimProfile]:
        ref = self.channels[key]
        assert ref.channel.simulate is not None
        return ref, ref.channel.simulate

    def _level(self, key: str, ticks: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        ref, p = self._profile(key)
        peak = p.level if p.peak is None else p.peak
        base = p.level + (peak - p.level) * load_shape(
            ticks * self.tick_ns, self._zones[ref.site.id]
        )
        u = _uniform(self.seed, key, ticks)
        noisy = (
            base * (1.0 + p.noise * u)
            if ref.channel.kind is ChannelKind.COUNTER
            else base + p.noise * u
        )
        level: npt.NDArray[np.float64] = np.maximum(noisy, 0.0)
        return level

    def advance(self, key: str, a_ns: int, b_ns: int) -> float:
        """Exact amount a counter advanced over [a_ns, b_ns); its rate is constant per tick."""
        if b_ns <= a_ns:
            return 0.0
        ticks = np.arange(a_ns // self.tick_ns, (b_ns - 1) // self.tick_ns + 1, dtype=np.int64)
        lo = np.maximum(ticks * self.tick_ns, a_ns)
        hi = np.minimum((ticks + 1) * self.tick_ns, b_ns)
        return float(np.sum(self._level(key, ticks) * (hi - lo)) / NS_PER_H)

    def value(self, key: str, t_ns: int) -> float:
        """Engineering value at t_ns: the cumulative reading of a counter, or a gauge's level."""
        ref, p = self._profile(key)
        if ref.channel.kind is ChannelKind.GAUGE:
            return float(self._level(key, np.array([t_ns // self.tick_ns]))[0])
        t0, v0 = self._cache.get(key, (self.start_ns, p.start))
        if t_ns < t0:
            t0, v0 = self.start_ns, p.start
        v = v0 + self.advance(key, t0, t_ns)
        self._cache[key] = (t_ns, v)
        return v

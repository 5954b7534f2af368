"""Hour-of-week baselines for deviation rules, learnt from the stored base buckets (the mean of
each bucket's good samples), so a restart or a dry run learns from history, not from the stream."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from compute.alert_rules import DAY_NS, BaselineDeviation, Binding
from compute.alert_series import HourOfWeekProfile, learn_profile
from compute.model import Quality
from services.store import Store

BASELINE_DAYS = 28  # four samples of every hour of the week


def baseline_channels(bindings: Sequence[Binding]) -> dict[str, str]:
    """The channels deviation rules watch, with their site's zone."""
    return {b.channel_id: b.tz for b in bindings if isinstance(b.rule.condition, BaselineDeviation)}


async def learn_baselines(
    store: Store,
    bindings: Sequence[Binding],
    *,
    end_ns: int,
    bucket_ns: int,
    days: int = BASELINE_DAYS,
) -> dict[str, HourOfWeekProfile]:
    """Per watched channel, the profile of its bucket means over the `days` before end_ns."""
    zones = baseline_channels(bindings)
    if not zones:
        return {}
    buckets = await store.series_many(sorted(zones), end_ns - days * DAY_NS, end_ns)
    out = {}
    for channel, tz in zones.items():
        mine = [b for b in buckets if b.channel_id == channel]
        ts = np.array([b.bucket_start_ns + bucket_ns // 2 for b in mine], np.int64)
        value = np.array([b.sum / b.n_good if b.n_good else np.nan for b in mine])
        good = np.where(np.isfinite(value), int(Quality.GOOD), int(Quality.BAD)).astype(np.uint8)
        out[channel] = learn_profile(ts, value, good, tz=tz)
    return out

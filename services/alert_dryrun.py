"""A rule's dry run over stored history: the raw readings of its channels over a period, replayed
through the same evaluation the alerting process runs (compute.alert_eval.replay)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from compute.alert_eval import DryRun, replay
from compute.alert_rules import Binding
from compute.alert_series import Series
from compute.errors import PlantPulseError
from compute.model import NO_TS
from services.alert_baselines import learn_baselines
from services.store import Store

MAX_READINGS = 2_000_000  # about 23 days of one channel at 1 Hz: a dry run stays interactive
_PAGE = 50_000


class DryRunTooLarge(PlantPulseError):
    """The period holds more readings than a dry run replays."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DryRunResult:
    run: DryRun
    readings: int


async def history(
    store: Store,
    channel_ids: Sequence[str],
    start_ns: int,
    end_ns: int,
    *,
    max_readings: int = MAX_READINGS,
) -> tuple[dict[str, Series], int]:
    """The stored raw readings of the channels in [start_ns, end_ns), one Series each."""
    cols: dict[str, tuple[list[int], list[float], list[int]]] = {}
    after, n = ("", NO_TS), 0
    while True:
        page = await store.readings_page(channel_ids, start_ns, end_ns, after, _PAGE)
        for r in page:
            ts, v, q = cols.setdefault(r.channel_id, ([], [], []))
            ts.append(r.ts_ns)
            v.append(float("nan") if r.value is None else r.value)
            q.append(r.quality)
        n += len(page)
        if n > max_readings:
            raise DryRunTooLarge(
                f"the period holds more than {max_readings:,} readings of the rule's channels:"
                " shorten it"
            )
        if len(page) < _PAGE:
            break
        after = (page[-1].channel_id, page[-1].ts_ns)
    series = {
        c: Series(
            ts_ns=np.array(ts, np.int64),
            value=np.array(v, np.float64),
            quality=np.array(q, np.uint8),
        )
        for c, (ts, v, q) in cols.items()
    }
    return series, n


async def dry_run(
    store: Store,
    bindings: Sequence[Binding],
    start_ns: int,
    end_ns: int,
    *,
    bucket_ns: int,
    max_readings: int = MAX_READINGS,
) -> DryRunResult:
    """The alerts the bindings would have raised over [start_ns, end_ns); baselines are learnt
    from the weeks before start_ns, as the alerting process would have had them."""
    refs = {b.reference_id for b in bindings if b.reference_id is not None}
    channels = sorted({b.channel_id for b in bindings} | refs)
    got, n = await history(store, channels, start_ns, end_ns, max_readings=max_readings)
    baselines = await learn_baselines(store, bindings, end_ns=start_ns, bucket_ns=bucket_ns)
    run = replay(bindings, got, start_ns=start_ns, end_ns=end_ns, baselines=baselines)
    return DryRunResult(run=run, readings=n)

"""Builders shared by the alert tests: series from per-second values, bindings, one-shot runs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from compute.alert_eval import evaluate
from compute.alert_rules import AlertRule, Binding, Condition, Scope
from compute.alert_series import Series
from compute.alert_state import AlertEvent, EventKind, PointState, new_state
from compute.model import NS_PER_S, Quality

S = NS_PER_S
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z


def series(
    values: Sequence[float],
    *,
    start_s: float = 0,
    step_s: float = 1,
    quality: Sequence[int] | None = None,
    t0_ns: int = T0,
) -> Series:
    n = len(values)
    ts = t0_ns + np.round((start_s + np.arange(n) * step_s) * S).astype(np.int64)
    q = np.zeros(n, np.uint8) if quality is None else np.array(quality, np.uint8)
    return Series(ts_ns=ts, value=np.array(values, np.float64), quality=q)


def rule(condition: Condition, rule_id: str = "r", **kw: object) -> AlertRule:
    return AlertRule(id=rule_id, scope=Scope(channel="m.c"), condition=condition, **kw)  # type: ignore[arg-type]


def bind(r: AlertRule, **kw: object) -> Binding:
    return Binding(rule=r, channel_id="m.c", **kw)  # type: ignore[arg-type]


def run(
    b: Binding,
    s: Series,
    *,
    now_ns: int | None = None,
    state: PointState | None = None,
    **kw: object,
) -> tuple[PointState, list[AlertEvent]]:
    st = state if state is not None else new_state(b, since_ns=T0)
    now = now_ns if now_ns is not None else (int(s.ts_ns[-1]) if s.ts_ns.size else T0)
    return evaluate(b, st, s, now_ns=now, **kw)  # type: ignore[arg-type]


def kinds(events: Sequence[AlertEvent]) -> list[tuple[EventKind, float]]:
    """(kind, seconds after T0) of each event."""
    return [(e.kind, (e.ts_ns - T0) / S) for e in events]


BAD = int(Quality.BAD)
GOOD = int(Quality.GOOD)

"""The alerting process's evaluation state in memory: bindings, point states and open alerts.
Each step (readings, a tick, operator requests, a rule reload) accumulates into a Step, which
becomes one store write; only after that write commits does the engine adopt it. No I/O."""

from __future__ import annotations

import json
import logging
from collections import ChainMap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import fields
from typing import Any

from compute.alert_detect import DetectorState
from compute.alert_eval import step
from compute.alert_rules import Binding, Severity, Stale
from compute.alert_series import HourOfWeekProfile, Series
from compute.alert_state import (
    AlertEvent,
    AlertPhase,
    AlertStateError,
    EventKind,
    OpenAlert,
    PointState,
    Shelf,
    acknowledge,
    load_state,
    new_state,
    shelve,
    unshelve,
)
from compute.plant import Plant
from services import alert_view as view
from services.store.alerts import (
    AlertRequest,
    AlertRow,
    AlertWrite,
    OutboxItem,
    PointKey,
    RequestAction,
    RequestOutcome,
    RequestStatus,
)

log = logging.getLogger(__name__)


class Step:
    """What one cycle changes, not yet stored: candidate states, events and request outcomes."""

    def __init__(self) -> None:
        self.states: dict[PointKey, PointState] = {}
        self.dropped: list[PointKey] = []
        self.events: list[AlertEvent] = []
        self.outcomes: list[RequestOutcome] = []
        self.bindings: list[Binding] | None = None  # a rule reload's new bindings
        self.rules_version: int | None = None

    def __bool__(self) -> bool:
        return bool(self.states or self.dropped or self.events or self.outcomes) or (
            self.bindings is not None
        )


class Prepared:
    """A step ready to store, and what to hand on once it is stored and committed."""

    def __init__(
        self, write: AlertWrite, payloads: list[dict[str, Any]], rows: dict[str, AlertRow]
    ) -> None:
        self.write = write
        self.payloads = payloads  # every event's payload, for the live views
        self.rows = rows


class AlertEngine:
    def __init__(
        self,
        plant: Plant,
        *,
        targets: Mapping[str, Callable[[AlertEvent, str | None], bool]],
        baselines: Mapping[str, HourOfWeekProfile] | None = None,
    ) -> None:
        """targets: name -> which events it takes, by the event and its site."""
        self.plant = plant
        self.targets = dict(targets)
        self.baselines: Mapping[str, HourOfWeekProfile] = baselines or {}
        self.bindings: list[Binding] = []
        self.by_key: dict[PointKey, Binding] = {}
        self.by_channel: dict[str, list[Binding]] = {}
        self.rules_version = -1
        self.states: dict[PointKey, PointState] = {}
        self.dumped: dict[PointKey, str] = {}  # the stored JSON of each state
        self.rows: dict[str, AlertRow] = {}  # open alerts by id

    # --- loading and rules ----------------------------------------------------------------

    def load(self, points: Mapping[PointKey, str], open_rows: Iterable[AlertRow]) -> None:
        """The stored states and open alerts, at start."""
        self.states = {k: load_state(json.loads(v)) for k, v in points.items()}
        self.dumped = dict(points)
        self.rows = {r.alert_id: r for r in open_rows if r.closed_ts_ns is None}

    def bind(self, bindings: Sequence[Binding], version: int) -> None:
        self.bindings = list(bindings)
        self.by_key = {b.key: b for b in bindings}
        self.by_channel = _index(bindings)
        self.rules_version = version

    def rebind(self, s: Step, bindings: Sequence[Binding], version: int, now_ns: int) -> None:
        """New bindings after a rule change: points no longer bound are dropped, and an alert
        open on one is closed. A changed rule keeps its points' states: the new definition
        applies from the next reading."""
        keep = {b.key for b in bindings}
        old = {b.rule.id: b for b in self.bindings}
        for key in [k for k in ChainMap(s.states, self.states) if k not in keep]:
            st = self._state(s, key)
            s.dropped.append(key)
            s.states.pop(key, None)
            a = st.alert if st is not None else None
            if a is None:
                continue
            was, row = old.get(key[0]), self.rows.get(a.alert_id)
            if was is not None:
                severity = was.rule.severity_of(a.level)
            else:
                severity = Severity(row.severity) if row is not None else Severity.MEDIUM
            s.events.append(
                AlertEvent(
                    alert_id=a.alert_id,
                    rule_id=key[0],
                    channel_id=key[1],
                    kind=EventKind.CLEARED,
                    level=a.level,
                    severity=severity,
                    ts_ns=now_ns,
                    value=a.value,
                    message=f"{key[1]} closed: rule {key[0]} no longer watches it",
                    phase=AlertPhase.CLOSED,
                    notify=False,
                    comment=f"the rules changed (version {version})",
                )
            )
        s.bindings, s.rules_version = list(bindings), version

    # --- evaluation -------------------------------------------------------------------------

    def _state(self, s: Step, key: PointKey) -> PointState | None:
        return s.states.get(key) or (None if key in s.dropped else self.states.get(key))

    def _live(self, s: Step) -> list[Binding]:
        return s.bindings if s.bindings is not None else self.bindings

    def affected(self, s: Step, readings: Mapping[str, Series]) -> list[Binding]:
        """The bindings of the channels (or references) that have readings."""
        by_channel = self.by_channel if s.bindings is None else _index(s.bindings)
        seen: dict[PointKey, Binding] = {}
        for c in readings:
            for b in by_channel.get(c, ()):
                seen.setdefault(b.key, b)
        return list(seen.values())

    def evaluate(
        self,
        s: Step,
        readings: Mapping[str, Series],
        bindings: list[Binding],
        *,
        now_ns: int,
        complete_ns: Mapping[str, int] | None = None,
    ) -> None:
        """These bindings over the readings (each binding once per step: see `affected`)."""
        if bindings:
            self._run(s, bindings, readings, now_ns, complete_ns)

    def tick(self, s: Step, now_ns: int) -> None:
        """Time-driven conditions up to now: stale data, escalations and shelf expiries."""
        due = []
        for b in self._live(s):
            st = self._state(s, b.key)
            timed = st is not None and (st.alert is not None or st.shelf is not None)
            if isinstance(b.rule.condition, Stale) or timed:
                due.append(b)
        if due:
            self._run(s, due, {}, now_ns, None)

    def _run(
        self,
        s: Step,
        bindings: list[Binding],
        readings: Mapping[str, Series],
        now_ns: int,
        complete_ns: Mapping[str, int] | None,
    ) -> None:
        states = {k: v for b in bindings if (v := self._state(s, k := b.key)) is not None}
        new, events = step(
            bindings,
            states,
            readings,
            now_ns=now_ns,
            baselines=self.baselines,
            complete_ns=complete_ns,
        )
        s.states.update(new)
        s.events += events

    def request(self, s: Step, r: AlertRequest, now_ns: int) -> None:
        """Apply an operator's request through the lifecycle rules; a refusal is its outcome."""
        keyed = self.by_key if s.bindings is None else {x.key: x for x in s.bindings}
        b = keyed.get((r.rule_id, r.channel_id))
        try:
            if b is None:
                raise AlertStateError(f"rule {r.rule_id} no longer watches {r.channel_id}")
            st = self._state(s, b.key) or new_state(b, since_ns=now_ns)
            when = r.requested_at_ns
            if r.action is RequestAction.ACKNOWLEDGE:
                st, ev = acknowledge(
                    st, b, alert_id=r.alert_id, who=r.actor, when_ns=when, comment=r.comment
                )
            elif r.action is RequestAction.SHELVE:
                until = r.until_ns if r.until_ns is not None else when
                st, ev = shelve(st, b, who=r.actor, when_ns=when, until_ns=until, comment=r.comment)
            else:
                st, ev = unshelve(st, b, who=r.actor, when_ns=when, comment=r.comment)
        except AlertStateError as e:
            s.outcomes.append(
                RequestOutcome(
                    request_id=r.request_id,
                    status=RequestStatus.REFUSED,
                    outcome=str(e),
                    done_at_ns=now_ns,
                )
            )
            return
        s.states[b.key] = st
        s.events.append(ev)
        s.outcomes.append(
            RequestOutcome(
                request_id=r.request_id,
                status=RequestStatus.APPLIED,
                outcome=view.event_id(ev),
                done_at_ns=now_ns,
            )
        )

    # --- storing ----------------------------------------------------------------------------

    def prepare(self, s: Step, now_ns: int) -> Prepared:
        """The step as one store write: changed states, event records, alert rows, outbox."""
        points = {}
        for key, st in s.states.items():
            text = state_json(st)
            if self.dumped.get(key) != text:
                points[key] = text
        rows: dict[str, AlertRow] = {}
        payloads, outbox = [], []
        rules = {b.rule.id: b.rule for b in [*self.bindings, *self._live(s)]}
        for e in s.events:
            ref = self.plant.channels.get(e.channel_id)
            row = None
            if ref is not None:
                before = rows.get(e.alert_id) or self.rows.get(e.alert_id)
                row = view.project(before, e, ref, rules.get(e.rule_id))
                if row is not None:
                    rows[row.alert_id] = row
            data = view.payload(e, row, ref)
            payloads.append(data)
            if not e.alert_id:
                continue  # a shelf change with no alert open: recorded, nobody told
            text = view.encode(data)
            site = ref.site.id if ref is not None else None
            for name, takes in self.targets.items():
                if takes(e, site):
                    outbox.append(
                        OutboxItem(
                            event_id=data["event_id"],
                            target=name,
                            payload=text,
                            created_at_ns=now_ns,
                        )
                    )
        write = AlertWrite(
            points=points,
            dropped=list(s.dropped),
            events=list(s.events),
            alerts=list(rows.values()),
            outbox=outbox,
            outcomes=list(s.outcomes),
            at_ns=now_ns,
        )
        return Prepared(write, payloads, rows)

    def adopt(self, s: Step, p: Prepared) -> None:
        """The step is stored: it becomes the engine's state."""
        for key in s.dropped:
            self.states.pop(key, None)
            self.dumped.pop(key, None)
        self.states.update(s.states)
        self.dumped.update(p.write.points)
        for aid, row in p.rows.items():
            if row.closed_ts_ns is None:
                self.rows[aid] = row
            else:
                self.rows.pop(aid, None)
        if s.bindings is not None and s.rules_version is not None:
            self.bind(s.bindings, s.rules_version)

    def open_alerts(self) -> list[AlertRow]:
        return list(self.rows.values())


_DETECTOR = tuple(f.name for f in fields(DetectorState))
_ALERT = tuple(f.name for f in fields(OpenAlert))
_SHELF = tuple(f.name for f in fields(Shelf))


def state_json(st: PointState) -> str:
    """compute.alert_state.dump_state(st) as JSON, without its deep copies: the alerting
    process writes thousands of states a second (load_state reads either)."""
    a, sh = st.alert, st.shelf
    return json.dumps(
        {
            "rule_id": st.rule_id,
            "channel_id": st.channel_id,
            "detector": {f: getattr(st.detector, f) for f in _DETECTOR},
            "debounce": [{"raw": d.raw, "since_ns": d.since_ns, "out": d.out} for d in st.debounce],
            "alert": None if a is None else {f: getattr(a, f) for f in _ALERT},
            "shelf": None if sh is None else {f: getattr(sh, f) for f in _SHELF},
        },
        separators=(",", ":"),
    )


def _index(bindings: Sequence[Binding]) -> dict[str, list[Binding]]:
    out: dict[str, list[Binding]] = {}
    for b in bindings:
        for c in {b.channel_id, b.reference_id} - {None}:
            assert c is not None
            out.setdefault(c, []).append(b)
    return out

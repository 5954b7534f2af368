"""Readings from CSV text (utility bills, logger exports, manual entries), parsed and validated.

Pure: lines in, columnar readings or every problem with its row and column out. No I/O, no clock.
"""

from __future__ import annotations

import csv
import math
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt

from compute.errors import PlantPulseError
from compute.model import Quality, datetime_ns

REQUIRED_COLUMNS = ("channel_id", "ts", "value")
OPTIONAL_COLUMNS = ("quality",)
QUALITIES = {"good": Quality.GOOD, "uncertain": Quality.UNCERTAIN, "bad": Quality.BAD}
MAX_ISSUES = 20  # reported in full; the rest are counted


@dataclass(frozen=True, slots=True, kw_only=True)
class Issue:
    """One problem of the input: its row (the file's line number, the header being row 1) and
    column, or row 0 and column "" for the input as a whole."""

    row: int
    column: str
    message: str

    def __str__(self) -> str:
        where = [f"row {self.row}"] if self.row else []
        where += [self.column] if self.column else []
        return f"{', '.join(where)}: {self.message}" if where else self.message


class ImportRejected(PlantPulseError, ValueError):
    """The input is refused as a whole; `issues` holds the first MAX_ISSUES problems and `count`
    how many there are."""

    def __init__(self, issues: list[Issue], count: int | None = None) -> None:
        self.issues = issues[:MAX_ISSUES]
        self.count = len(issues) if count is None else count
        more = (
            f" (and {self.count - len(self.issues)} more)" if self.count > len(self.issues) else ""
        )
        super().__init__("; ".join(str(i) for i in self.issues) + more)


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportChannel:
    """What validation needs of a channel: its meter, whether it is a cumulative counter, where
    its register wraps (0: never) and when its meter was replaced (configured or recorded)."""

    meter_id: str
    is_counter: bool
    wrap_modulus: float = 0.0
    replacements_ns: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ParsedReadings:
    """Readings sorted by (channel, ts_ns); `channel` indexes `channel_ids`, `row` is each
    reading's row in the input."""

    channel_ids: tuple[str, ...]
    channel: npt.NDArray[np.int32]
    ts_ns: npt.NDArray[np.int64]
    value: npt.NDArray[np.float64]
    quality: npt.NDArray[np.uint8]
    row: npt.NDArray[np.int64]

    @property
    def size(self) -> int:
        return len(self.ts_ns)

    def of(self, c: int) -> slice:
        """The positions of channel index c (readings are sorted by channel)."""
        lo, hi = np.searchsorted(self.channel, [c, c + 1])
        return slice(int(lo), int(hi))


def parse_ts(text: str) -> int:
    """An ISO 8601 time with a UTC offset ("Z" or "+08:00") in ns; ValueError saying why not."""
    try:
        dt = datetime.fromisoformat(text)
    except ValueError as e:
        raise ValueError(f"{text!r} is not an ISO 8601 time") from e
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"{text!r} has no UTC offset: write e.g. {text}+08:00 or {text}Z")
    ts_ns = datetime_ns(dt)
    if ts_ns < 0:
        raise ValueError(f"{text!r} is before 1970")
    return ts_ns


@dataclass(slots=True, kw_only=True)
class _Columns:
    """Growing columns, 33 bytes a reading (Python lists would take about 130)."""

    channel: array[int] = field(default_factory=lambda: array("i"))
    ts_ns: array[int] = field(default_factory=lambda: array("q"))
    value: array[float] = field(default_factory=lambda: array("d"))
    quality: array[int] = field(default_factory=lambda: array("B"))
    row: array[int] = field(default_factory=lambda: array("q"))


class CsvReadings:
    """An incremental parser: feed it whole lines as they arrive, then `finish()`.

    Columns are named by the header: channel_id, ts, value and optionally quality (good,
    uncertain or bad; good when absent or empty). A value is a finite number; it may be empty
    only for a bad reading. Every row is checked; nothing is returned unless all are right.
    """

    def __init__(
        self, channels: Mapping[str, ImportChannel], *, now_ns: int, max_readings: int
    ) -> None:
        self.channels = channels
        self.now_ns = now_ns
        self.max_readings = max_readings
        self.issues: list[Issue] = []
        self.issue_count = 0
        self._header: dict[str, int] | None = None
        self._width = 0
        self._lines = 0
        self._ids: dict[str, int] = {}
        self._cols = _Columns()

    def _issue(self, row: int, column: str, message: str) -> None:
        self.issue_count += 1
        if len(self.issues) < MAX_ISSUES:
            self.issues.append(Issue(row=row, column=column, message=message))

    def feed(self, lines: Iterable[str]) -> None:
        """Parse complete lines (with or without their line ends)."""
        block = list(lines)
        first = self._lines
        self._lines += len(block)
        for n, cells in enumerate(csv.reader(block), start=first + 1):
            if not cells or all(not c.strip() for c in cells):
                continue  # blank lines are allowed anywhere
            if self._header is None:
                self._read_header(cells, n)
            else:
                self._read_row(cells, n)

    def _read_header(self, cells: list[str], n: int) -> None:
        names = [c.strip().lower().lstrip("\ufeff") for c in cells]
        allowed = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
        for i, name in enumerate(names):
            if name not in allowed:
                self._issue(n, name or f"column {i + 1}", f"unknown column; allowed: {allowed}")
            elif names.index(name) != i:
                self._issue(n, name, "the column appears twice")
        for name in REQUIRED_COLUMNS:
            if name not in names:
                self._issue(n, name, f"missing column: the header is {','.join(allowed)}")
        self._header = {name: i for i, name in reversed(list(enumerate(names)))}
        self._width = len(names)

    def _read_row(self, cells: list[str], n: int) -> None:
        assert self._header is not None
        if len(cells) > self._width:
            self._issue(n, "", f"{len(cells)} cells, the header has {self._width}")
            return
        get = {k: (cells[i].strip() if i < len(cells) else "") for k, i in self._header.items()}
        ok = True
        channel_id = get.get("channel_id", "")
        if channel_id not in self.channels:
            ok = False
            self._issue(n, "channel_id", f"unknown channel {channel_id!r} (write meter.channel)")
        quality = Quality.GOOD
        if q := get.get("quality", ""):
            if q.lower() not in QUALITIES:
                ok = False
                self._issue(n, "quality", f"{q!r} is not one of {sorted(QUALITIES)}")
            else:
                quality = QUALITIES[q.lower()]
        ts_ns = 0
        try:
            ts_ns = parse_ts(get.get("ts", ""))
            if ts_ns > self.now_ns:
                ok = False
                self._issue(n, "ts", f"{get['ts']!r} is in the future")
        except ValueError as e:
            ok = False
            self._issue(n, "ts", str(e))
        value = math.nan
        raw = get.get("value", "")
        if raw or quality is not Quality.BAD:
            try:
                value = float(raw)
            except ValueError:
                ok = False
                self._issue(n, "value", f"{raw!r} is not a number")
            else:
                if not math.isfinite(value):
                    ok = False
                    self._issue(n, "value", f"{raw!r} is not a finite number")
        if not ok:
            return
        if len(self._cols.row) >= self.max_readings:
            if len(self._cols.row) == self.max_readings:
                self._issue(n, "", f"more than {self.max_readings} readings: split the file")
                self._cols.row.append(n)  # reported once
            return
        c = self._cols
        c.channel.append(self._ids.setdefault(channel_id, len(self._ids)))
        c.ts_ns.append(ts_ns)
        c.value.append(value)
        c.quality.append(int(quality))
        c.row.append(n)

    def finish(self) -> ParsedReadings:
        """The readings, sorted; ImportRejected with every problem found, within rows and
        across them (duplicates, counters going back)."""
        if self._header is None:
            self._issue(0, "", "empty input: the first line is the header channel_id,ts,value")
        if not self.issue_count and not self._cols.row:
            self._issue(0, "", "no readings below the header")
        if self.issue_count:
            raise ImportRejected(self.issues, self.issue_count)
        c = self._cols
        ids = tuple(self._ids)
        channel = np.array(c.channel, dtype=np.int32)
        ts_ns = np.array(c.ts_ns, dtype=np.int64)
        order = np.lexsort((ts_ns, channel))
        parsed = ParsedReadings(
            channel_ids=ids,
            channel=channel[order],
            ts_ns=ts_ns[order],
            value=np.array(c.value, dtype=np.float64)[order],
            quality=np.array(c.quality, dtype=np.uint8)[order],
            row=np.array(c.row, dtype=np.int64)[order],
        )
        issues = within_issues(parsed, self.channels)
        if issues:
            raise ImportRejected(issues)
        return parsed


def plausible_step(prev: float, value: float, wrap_modulus: float) -> bool:
    """Whether a counter may go from prev to value: forward, or a wrap under half the register
    (the aggregator's rule, compute.kernels)."""
    if value >= prev:
        return True
    return wrap_modulus > 0.0 and 0.0 <= wrap_modulus - prev + value < 0.5 * wrap_modulus


def replaced_between(info: ImportChannel, a_ns: int, b_ns: int) -> bool:
    """Whether a replacement of the channel's meter lies in (a_ns, b_ns]."""
    return any(a_ns < t <= b_ns for t in info.replacements_ns)


def within_issues(p: ParsedReadings, channels: Mapping[str, ImportChannel]) -> list[Issue]:
    """Duplicates of a (channel, ts) and counters going back between good readings, within the
    input."""
    issues: list[Issue] = []
    for c, cid in enumerate(p.channel_ids):
        part = p.of(c)
        ts, rows = p.ts_ns[part], p.row[part]
        for i in np.flatnonzero(ts[1:] == ts[:-1]).tolist():
            issues.append(
                Issue(
                    row=int(rows[i + 1]),
                    column="ts",
                    message=f"duplicate: channel {cid!r} has a reading at this time in row "
                    f"{int(rows[i])} too",
                )
            )
        info = channels[cid]
        if not info.is_counter:
            continue
        good = p.quality[part] == Quality.GOOD
        g_ts, g_val, g_row = ts[good], p.value[part][good], rows[good]
        for i in np.flatnonzero(g_val[1:] < g_val[:-1]).tolist():
            prev, cur = float(g_val[i]), float(g_val[i + 1])
            if plausible_step(prev, cur, info.wrap_modulus) or replaced_between(
                info, int(g_ts[i]), int(g_ts[i + 1])
            ):
                continue
            issues.append(
                Issue(
                    row=int(g_row[i + 1]),
                    column="value",
                    message=f"counter {cid!r} goes back from {prev:g} (row {int(g_row[i])}) "
                    f"to {cur:g}: record the meter replacement first if there was one",
                )
            )
    issues.sort(key=lambda x: x.row)
    return issues


def one_reading(
    fields: Mapping[str, str], channels: Mapping[str, ImportChannel], *, now_ns: int
) -> ParsedReadings:
    """A single reading entered by hand (channel_id, ts, value, quality as text), checked as a
    CSV row is; its issues name the field, with no row."""
    names = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
    line = ",".join('"' + fields.get(k, "").replace('"', '""') + '"' for k in names)
    parser = CsvReadings(channels, now_ns=now_ns, max_readings=1)
    try:
        parser.feed([",".join(names), line])
        return parser.finish()
    except ImportRejected as e:
        raise ImportRejected(
            [Issue(row=0, column=i.column, message=i.message) for i in e.issues]
        ) from None

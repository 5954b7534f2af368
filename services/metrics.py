"""A small in-process metrics registry: counters, gauges and histograms in Prometheus text format.

No I/O and no global state: the composition root creates a Registry and hands it to a process.
"""

from __future__ import annotations

import abc
import math
import re
from collections.abc import Callable, Iterator, Sequence

from compute.errors import PlantPulseError

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

Labels = tuple[tuple[str, str], ...]


class MetricsError(PlantPulseError):
    """A metric was declared or used inconsistently."""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(int(value)) if value == int(value) and abs(value) < 2**53 else repr(value)


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape(text: str) -> str:
    return _escape_help(text).replace('"', '\\"')


def _labels_text(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels) + "}"


class _Metric(abc.ABC):
    kind = ""

    def __init__(self, name: str, help_text: str, label_names: Sequence[str]) -> None:
        if not _NAME.match(name):
            raise MetricsError(f"bad metric name {name!r}")
        for label in label_names:
            if not _LABEL.match(label) or label == "le":
                raise MetricsError(f"bad label name {label!r} of {name}")
        self.name = name
        self.help_text = help_text
        self.label_names = tuple(label_names)

    def _key(self, labels: dict[str, str]) -> Labels:
        if set(labels) != set(self.label_names):
            raise MetricsError(
                f"{self.name} takes labels {list(self.label_names)}, got {sorted(labels)}"
            )
        return tuple((n, labels[n]) for n in self.label_names)

    @abc.abstractmethod
    def samples(self) -> Iterator[tuple[str, Labels, float]]:
        """(sample name, labels, value) in exposition order."""

    def render(self) -> str:
        lines = [
            f"# HELP {self.name} {_escape_help(self.help_text)}",
            f"# TYPE {self.name} {self.kind}",
        ]
        lines.extend(f"{n}{_labels_text(lb)} {_number(v)}" for n, lb, v in self.samples())
        return "\n".join(lines)


class Counter(_Metric):
    """A monotonic count, optionally split by labels."""

    kind = "counter"

    def __init__(self, name: str, help_text: str, label_names: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, label_names)
        self._values: dict[Labels, float] = {} if label_names else {(): 0.0}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        if amount < 0:
            raise MetricsError(f"{self.name} is a counter and cannot go down by {amount}")
        key = self._key(labels)
        self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        return self._values.get(self._key(labels), 0.0)

    def total(self) -> float:
        """The sum over every label combination."""
        return sum(self._values.values())

    def by_label(self) -> dict[Labels, float]:
        return dict(self._values)

    def samples(self) -> Iterator[tuple[str, Labels, float]]:
        for key in sorted(self._values):
            yield self.name, key, self._values[key]


class Gauge(_Metric):
    """A value that goes up and down; either set by its owner or read from a function."""

    kind = "gauge"

    def __init__(self, name: str, help_text: str, read: Callable[[], float] | None = None) -> None:
        super().__init__(name, help_text, ())
        self._read = read
        self._value = 0.0

    def set(self, value: float) -> None:
        if self._read is not None:
            raise MetricsError(f"{self.name} is read from a function and cannot be set")
        self._value = value

    def value(self) -> float:
        return float(self._read()) if self._read is not None else self._value

    def samples(self) -> Iterator[tuple[str, Labels, float]]:
        yield self.name, (), self.value()


class Histogram(_Metric):
    """Observations counted into cumulative buckets, with their sum and count."""

    kind = "histogram"

    def __init__(
        self, name: str, help_text: str, buckets: Sequence[float] = LATENCY_BUCKETS_S
    ) -> None:
        super().__init__(name, help_text, ())
        bounds = sorted(set(buckets))
        if not bounds or any(math.isinf(b) or math.isnan(b) for b in bounds):
            raise MetricsError(f"{self.name} needs finite bucket bounds, got {list(buckets)}")
        self.bounds = tuple(bounds)
        self._counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        i = next((i for i, b in enumerate(self.bounds) if value <= b), len(self.bounds))
        self._counts[i] += 1
        self.sum += value
        self.count += 1

    def mean(self) -> float:
        return self.sum / self.count if self.count else math.nan

    def quantile(self, q: float) -> float:
        """Upper bound of the bucket holding the q-quantile: an estimate that never undershoots."""
        if not self.count:
            return math.nan
        rank = q * self.count
        seen = 0
        for i, n in enumerate(self._counts):
            seen += n
            if seen >= rank and n:
                return self.bounds[i] if i < len(self.bounds) else math.inf
        return math.inf

    def samples(self) -> Iterator[tuple[str, Labels, float]]:
        cumulative = 0
        for bound, n in zip((*self.bounds, math.inf), self._counts, strict=True):
            cumulative += n
            yield f"{self.name}_bucket", (("le", _number(float(bound))),), float(cumulative)
        yield f"{self.name}_sum", (), self.sum
        yield f"{self.name}_count", (), float(self.count)


class Registry:
    """The metrics of one process, in the order they were declared."""

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}

    def _add(self, metric: _Metric) -> None:
        if metric.name in self._metrics:
            raise MetricsError(f"metric {metric.name} is declared twice")
        self._metrics[metric.name] = metric

    def counter(self, name: str, help_text: str, label_names: Sequence[str] = ()) -> Counter:
        c = Counter(name, help_text, label_names)
        self._add(c)
        return c

    def gauge(self, name: str, help_text: str, read: Callable[[], float] | None = None) -> Gauge:
        g = Gauge(name, help_text, read)
        self._add(g)
        return g

    def histogram(
        self, name: str, help_text: str, buckets: Sequence[float] = LATENCY_BUCKETS_S
    ) -> Histogram:
        h = Histogram(name, help_text, buckets)
        self._add(h)
        return h

    def render(self) -> str:
        """Prometheus text exposition format 0.0.4, for a /metrics endpoint."""
        return "".join(m.render() + "\n" for m in self._metrics.values())

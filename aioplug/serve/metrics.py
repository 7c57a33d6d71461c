"""Server metrics, rendered by hand in the Prometheus text exposition format (version 0.0.4).

Counters, gauges read at scrape time, and latency histograms, each keyed by label values.
Everything is updated and rendered on the event loop, so no locks are needed.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

__all__ = ["Counter", "Gauge", "Histogram", "Registry", "LATENCY_BUCKETS", "CONTENT_TYPE"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
)
"""Histogram bucket bounds in seconds: 100 µs to 10 s."""

Labels = tuple[str, ...]
_M = TypeVar("_M", bound="_Metric")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


@dataclass
class _Metric:
    name: str
    help: str
    label_names: tuple[str, ...]

    def _check(self, values: Labels) -> None:
        if len(values) != len(self.label_names):
            raise ValueError(f"{self.name} takes labels {self.label_names}, got {values}")

    def render(self) -> Iterable[str]:
        raise NotImplementedError


@dataclass
class Counter(_Metric):
    """A monotonically increasing count per label set."""

    values: dict[Labels, float] = field(default_factory=dict)

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        """Adds ``amount`` to the count of ``labels``."""
        self._check(labels)
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def get(self, *labels: str) -> float:
        """The count of ``labels`` (0 if never counted)."""
        return self.values.get(labels, 0.0)

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} counter"
        if not self.values and not self.label_names:
            yield f"{self.name} 0"
        for labels, value in sorted(self.values.items()):
            yield f"{self.name}{_labels(self.label_names, labels)} {_number(value)}"


@dataclass
class Gauge(_Metric):
    """A value read at scrape time from ``collect()``: ``[(labels, value), ...]``."""

    collect: Callable[[], Iterable[tuple[Labels, float]]] = lambda: ()

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} gauge"
        for labels, value in sorted(self.collect()):
            yield f"{self.name}{_labels(self.label_names, labels)} {_number(value)}"


class _Series:
    __slots__ = ("counts", "total", "count")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * (buckets + 1)  # the last slot is +Inf
        self.total = 0.0
        self.count = 0


@dataclass
class Histogram(_Metric):
    """Observations counted in cumulative buckets, with their sum and count, per label set."""

    buckets: tuple[float, ...] = LATENCY_BUCKETS
    series: dict[Labels, _Series] = field(default_factory=dict)

    def observe(self, value: float, *labels: str) -> None:
        """Records one observation for ``labels``."""
        series = self.series.get(labels)
        if series is None:
            self._check(labels)
            series = self.series[labels] = _Series(len(self.buckets))
        series.counts[bisect.bisect_left(self.buckets, value)] += 1
        series.total += value
        series.count += 1

    def count(self, *labels: str) -> int:
        """How many observations ``labels`` has."""
        series = self.series.get(labels)
        return series.count if series is not None else 0

    def render(self) -> Iterable[str]:
        yield f"# HELP {self.name} {self.help}"
        yield f"# TYPE {self.name} histogram"
        names = self.label_names
        for labels, series in sorted(self.series.items()):
            running = 0
            for bound, n in zip((*self.buckets, math.inf), series.counts):
                running += n
                le = f'le="{_number(bound)}"'
                yield f"{self.name}_bucket{_labels(names, labels, le)} {running}"
            yield f"{self.name}_sum{_labels(names, labels)} {_number(series.total)}"
            yield f"{self.name}_count{_labels(names, labels)} {series.count}"


class Registry:
    """The metrics of one server, rendered in registration order."""

    def __init__(self) -> None:
        self._metrics: list[_Metric] = []

    def counter(self, name: str, help: str, labels: Sequence[str] = ()) -> Counter:
        """Registers and returns a counter."""
        return self._add(Counter(name, help, tuple(labels)))

    def gauge(
        self, name: str, help: str, labels: Sequence[str], collect: Callable[[], Iterable[tuple[Labels, float]]]
    ) -> Gauge:
        """Registers and returns a gauge whose values ``collect()`` yields at scrape time."""
        return self._add(Gauge(name, help, tuple(labels), collect))

    def histogram(
        self, name: str, help: str, labels: Sequence[str] = (), buckets: tuple[float, ...] = LATENCY_BUCKETS
    ) -> Histogram:
        """Registers and returns a histogram."""
        return self._add(Histogram(name, help, tuple(labels), tuple(sorted(buckets))))

    def _add(self, metric: _M) -> _M:
        self._metrics.append(metric)
        return metric

    def render(self) -> str:
        """Returns every metric in the Prometheus text format."""
        lines: list[str] = []
        for metric in self._metrics:
            lines.extend(metric.render())
        return "\n".join(lines) + "\n"

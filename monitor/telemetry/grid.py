"""Per-pair metric families without a prometheus_client child object per series.

Most series are per canary x target pair, and some are pre-declared for every pair (each error type, each
watched drift signal) so that `increase()` sees the first failure and dashboards show zeros instead of "no
data". prometheus_client keeps a child object with its own locks per series: ~750 bytes per counter or gauge,
~5 KB per histogram, 50 MB for 1,000 pairs once each has run. The same samples come out of :class:`PairGrid`
(declared pairs x label values, plus a dict of the values set) and :class:`PairHistogram` (an array of bucket
counts per label set), at a few hundred bytes per series. Both are read-only collectors to the registry.
"""

from __future__ import annotations

import threading
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from typing import Literal

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

Key = tuple[str, ...]


class PairGrid(Collector):
    """A counter or gauge labelled (canary, target, *extra): every declared pair x every declared extra tuple is
    exported (zero until set), plus any other label set that was ever set or incremented."""

    def __init__(self, name: str, documentation: str, kind: Literal["counter", "gauge"], extra_labels: Sequence[str],
                 extras: Iterable[Key] = ((),), *, registry: CollectorRegistry) -> None:
        self.name, self.documentation, self.kind = name, documentation, kind
        self.labelnames = ("canary", "target", *extra_labels)
        self.extras: tuple[Key, ...] = tuple(extras)
        self._pairs: dict[tuple[str, str], None] = {}  # insertion-ordered set
        self._values: dict[Key, float] = {}
        self._lock = threading.Lock()
        registry.register(self)

    def declare(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Export zeros for these pairs (in addition to those already declared)."""
        with self._lock:
            self._pairs.update(dict.fromkeys(pairs))

    def forget(self, keep: set[tuple[str, str]]) -> None:
        """Drop every series of the pairs not in ``keep``."""
        with self._lock:
            self._pairs = {p: None for p in self._pairs if p in keep}
            self._values = {k: v for k, v in self._values.items() if k[:2] in keep}

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        if amount < 0 and self.kind == "counter":
            raise ValueError("counters only go up")
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def set(self, *labels: str, value: float) -> None:
        if self.kind == "counter":
            raise TypeError("a counter cannot be set")
        key = self._key(labels)
        with self._lock:
            self._values[key] = float(value)

    def get(self, *labels: str) -> float:
        return self._values.get(self._key(labels), 0.0)

    def remove(self, *labels: str) -> None:
        """Stop exporting one label set that was set (a declared one goes back to zero)."""
        with self._lock:
            self._values.pop(self._key(labels), None)

    def _key(self, labels: Sequence[str]) -> Key:
        if len(labels) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {tuple(labels)}")
        return tuple(str(v) for v in labels)

    def _family(self) -> CounterMetricFamily | GaugeMetricFamily:
        if self.kind == "counter":
            return CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        return GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def describe(self) -> list[Metric]:
        return [self._family()]

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            pairs, values = list(self._pairs), dict(self._values)
        family = self._family()
        for pair in pairs:
            for extra in self.extras:
                key = (*pair, *extra)
                family.add_metric(list(key), values.pop(key, 0.0))
        for key, value in values.items():  # label sets outside the declared grid
            family.add_metric(list(key), value)
        yield family


class PairHistogram(Collector):
    """A histogram whose label sets include canary and target (at ``pair_at``); one array per label set."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float],
                 *, registry: CollectorRegistry, pair_at: tuple[int, int] | None = None) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self.bounds = tuple(float(b) for b in buckets if b != float("inf"))
        self.pair_at = pair_at or (self.labelnames.index("canary"), self.labelnames.index("target"))
        self._series: dict[Key, array[float]] = {}  # per label set: count per bucket, +Inf bucket, then sum
        self._lock = threading.Lock()
        registry.register(self)

    def observe(self, *labels: str, value: float) -> None:
        if len(labels) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {tuple(labels)}")
        key = tuple(str(v) for v in labels)
        slot = bisect_left(self.bounds, value)  # the first bucket whose upper bound (le) is >= value
        with self._lock:
            counts = self._series.get(key)
            if counts is None:
                counts = self._series[key] = array("d", bytes(8 * (len(self.bounds) + 2)))
            counts[slot] += 1
            counts[-1] += value

    def forget(self, keep: set[tuple[str, str]]) -> None:
        """Drop every series of the pairs not in ``keep``."""
        i, j = self.pair_at
        with self._lock:
            self._series = {k: v for k, v in self._series.items() if (k[i], k[j]) in keep}

    def describe(self) -> list[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            series = [(k, v.tolist()) for k, v in self._series.items()]
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        les = [*(_le(b) for b in self.bounds), "+Inf"]
        for key, counts in series:
            running, cumulative = 0.0, []
            for le, c in zip(les, counts[:-1], strict=True):
                running += c
                cumulative.append((le, running))
            family.add_metric(list(key), cumulative, counts[-1])
        yield family


def _le(bound: float) -> str:
    return floatToGoString(bound)  # as prometheus_client's own histograms print bucket bounds

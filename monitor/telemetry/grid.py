"""Per-pair metric families without a prometheus_client child object per series.

Most series are per canary x target pair, and some are pre-declared for every pair (each error type, each
watched drift signal) so that `increase()` sees the first failure and dashboards show zeros instead of "no
data". prometheus_client keeps a child object with its own locks per series: ~750 bytes per counter or gauge,
~5 KB per histogram, 50 MB for 1,000 pairs once each has run. The same samples come out of :class:`PairGrid`
(declared pairs x label values, plus a dict of the values set) and :class:`PairHistogram` (an array of bucket
counts per label set), at a few hundred bytes per series. Both are read-only collectors to the registry.

Both write and export only the series of what the :class:`~monitor.telemetry.scope.Scope` holds configured: a
write for a pair (or check) it does not hold is dropped, and `forget` drops what a new declaration left out.
"""

from __future__ import annotations

import threading
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
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

from monitor.telemetry.scope import Declared, Scope

Key = tuple[str, ...]


class PairGrid(Collector):
    """A counter or gauge labelled (canary, target, *extra): every declared pair x every declared extra tuple is
    exported (zero until set), plus any other label set that was ever set or incremented; all of them only while
    the scope holds their pair (`per_check`: their canary, target and check, the first extra label;
    `check_signals`: a drift signal `check:NAME`, the first extra label, while the scope holds that check).
    `check_extras` declares zeros per check as well: each check the scope holds for a declared pair exports
    (canary, target, *check_extras(check)), computed at each scrape rather than stored."""

    def __init__(self, name: str, documentation: str, kind: Literal["counter", "gauge"], extra_labels: Sequence[str],
                 extras: Iterable[Key] = ((),), *, registry: CollectorRegistry, scope: Scope,
                 per_check: bool = False, check_signals: bool = False,
                 check_extras: Callable[[str], Key] | None = None) -> None:
        self.name, self.documentation, self.kind = name, documentation, kind
        self.labelnames = ("canary", "target", *extra_labels)
        self.extras: tuple[Key, ...] = tuple(extras)
        self.scope, self.per_check, self.check_signals = scope, per_check, check_signals
        self.check_extras = check_extras
        self._pairs: dict[tuple[str, str], None] = {}  # insertion-ordered set
        self._values: dict[Key, float] = {}
        self._lock = threading.Lock()
        registry.register(self)

    def declare(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Export zeros for these pairs (in addition to those already declared) while the scope holds them."""
        with self._lock:
            now = self.scope.now
            self._pairs.update(dict.fromkeys(p for p in pairs if now.pair(*p)))

    def forget(self) -> None:
        """Drop every series the scope no longer holds (after a new declaration)."""
        with self._lock:
            now = self.scope.now
            self._pairs = {p: None for p in self._pairs if now.pair(*p)}
            self._values = {k: v for k, v in self._values.items() if self._held(now, k)}

    def _held(self, now: Declared, key: Key) -> bool:
        if self.per_check:
            return now.check(*key[:3])
        if self.check_signals and key[2].startswith("check:"):
            return now.check(key[0], key[1], key[2].removeprefix("check:"))
        return now.pair(*key[:2])

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        """Add `amount` to a series (nothing if the scope does not hold it)."""
        if amount < 0 and self.kind == "counter":
            raise ValueError("counters only go up")
        key = self._key(labels)
        with self._lock:
            if self._held(self.scope.now, key):
                self._values[key] = self._values.get(key, 0.0) + amount

    def set(self, *labels: str, value: float) -> None:
        """Set a gauge's series (nothing if the scope does not hold it)."""
        if self.kind == "counter":
            raise TypeError("a counter cannot be set")
        key = self._key(labels)
        with self._lock:
            if self._held(self.scope.now, key):
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
            pairs, values, now = list(self._pairs), dict(self._values), self.scope.now
        family = self._family()
        checks: dict[tuple[str, str], list[Key]] = {}
        if (per_check_extras := self.check_extras) is not None:
            for canary, target, check in sorted(now.checks):
                checks.setdefault((canary, target), []).append(per_check_extras(check))
        for pair in pairs:
            extras = [*self.extras, *checks.get(pair, ())] if checks else self.extras
            for extra in extras:
                key = (*pair, *extra)
                value = values.pop(key, 0.0)
                if self._held(now, key):
                    family.add_metric(list(key), value)
        for key, value in values.items():  # label sets outside the declared grid
            if self._held(now, key):
                family.add_metric(list(key), value)
        yield family


class PairHistogram(Collector):
    """A histogram whose label sets include canary and target (at ``pair_at``); one array per label set, written
    and exported while the scope holds the pair."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float],
                 *, registry: CollectorRegistry, scope: Scope, pair_at: tuple[int, int] | None = None) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self.scope = scope
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
            if not self._held(self.scope.now, key):
                return
            counts = self._series.get(key)
            if counts is None:
                counts = self._series[key] = array("d", bytes(8 * (len(self.bounds) + 2)))
            counts[slot] += 1
            counts[-1] += value

    def forget(self) -> None:
        """Drop every series the scope no longer holds (after a new declaration)."""
        with self._lock:
            now = self.scope.now
            self._series = {k: v for k, v in self._series.items() if self._held(now, k)}

    def _held(self, now: Declared, key: Key) -> bool:
        return now.pair(key[self.pair_at[0]], key[self.pair_at[1]])

    def describe(self) -> list[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = self.scope.now
            series = [(k, v.tolist()) for k, v in self._series.items() if self._held(now, k)]
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

"""Gauges labelled by one target or one canary, written and exported while the scope holds it.

prometheus_client's own gauges keep a series until it is removed by name, so a write after the removal (a call in
flight across a reload, a spend count in a worker thread) brings it back. These ask the
:class:`~monitor.telemetry.scope.Scope` instead, as the per-pair collectors (telemetry/grid.py) do.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Literal

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.telemetry.scope import Declared, Scope

Key = tuple[str, ...]


def _held(now: Declared, by: Literal["target", "canary"], value: str) -> bool:
    return now.target(value) if by == "target" else now.canary(value)


class KeyedGauge(Collector):
    """A gauge whose first label (`by`) is a target or a canary id: a label set exists once set, and only while
    the scope holds its target or canary. With `zero` (one label only) every target or canary the scope holds is
    exported, zero until set."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], *, registry: CollectorRegistry,
                 scope: Scope, by: Literal["target", "canary"], zero: bool = False) -> None:
        if labelnames[0] != by or (zero and len(labelnames) != 1):
            raise ValueError(f"{name}: the first label must be {by!r} (and the only one with zero)")
        self.name, self.documentation, self.labelnames = name, documentation, tuple(labelnames)
        self.scope, self.by, self.zero = scope, by, zero
        self._values: dict[Key, float] = {}
        self._lock = threading.Lock()
        registry.register(self)

    def set(self, *labels: str, value: float) -> None:
        """Set a series (nothing if the scope does not hold its target or canary)."""
        key = self._key(labels)
        with self._lock:
            if _held(self.scope.now, self.by, key[0]):
                self._values[key] = float(value)

    def set_only(self, *labels: str, value: float) -> None:
        """Set one label set and drop the others of its target or canary (an `_info` gauge's current value)."""
        key = self._key(labels)
        with self._lock:
            if _held(self.scope.now, self.by, key[0]):
                self._values = {k: v for k, v in self._values.items() if k[0] != key[0]}
                self._values[key] = float(value)

    def remove(self, *labels: str) -> None:
        """Stop exporting one label set (with `zero`: back to zero)."""
        with self._lock:
            self._values.pop(self._key(labels), None)

    def get(self, *labels: str) -> float | None:
        """The value of one label set, None if it was never set."""
        return self._values.get(self._key(labels))

    def forget(self) -> None:
        """Drop every series the scope no longer holds (after a new declaration)."""
        with self._lock:
            now = self.scope.now
            self._values = {k: v for k, v in self._values.items() if _held(now, self.by, k[0])}

    def _key(self, labels: Sequence[str]) -> Key:
        if len(labels) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {tuple(labels)}")
        return tuple(str(v) for v in labels)

    def describe(self) -> list[Metric]:
        return [GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            values, now = dict(self._values), self.scope.now
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)
        if self.zero:
            for value in sorted(now.targets if self.by == "target" else now.canaries):
                family.add_metric([value], values.pop((value,), 0.0))
        for key, v in values.items():
            if _held(now, self.by, key[0]):
                family.add_metric(list(key), v)
        yield family


class InFlight(Collector):
    """Calls in flight per target. Counted whatever the scope, since a call that started before a reload ends
    after it (its end must not take the count below zero if its target comes back meanwhile); exported for every
    target the scope holds."""

    def __init__(self, name: str, documentation: str, *, registry: CollectorRegistry, scope: Scope) -> None:
        self.name, self.documentation, self.scope = name, documentation, scope
        self.labelnames = ("target",)
        self._calls: dict[str, int] = {}
        self._lock = threading.Lock()
        registry.register(self)

    def enter(self, target: str) -> None:
        """A call to `target` starts."""
        with self._lock:
            self._calls[target] = self._calls.get(target, 0) + 1

    def leave(self, target: str) -> None:
        """A call to `target` ended (answered, failed or cancelled)."""
        with self._lock:
            left = self._calls.get(target, 0) - 1
            if left > 0:
                self._calls[target] = left
            else:
                self._calls.pop(target, None)

    def describe(self) -> list[Metric]:
        return [GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            calls, now = dict(self._calls), self.scope.now
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for target in sorted(now.targets):
            family.add_metric([target], float(calls.get(target, 0)))
        yield family


__all__ = ["InFlight", "KeyedGauge"]

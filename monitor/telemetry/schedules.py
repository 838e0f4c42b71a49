"""The per-canary schedule gauges, worked out when Prometheus scrapes: a cron schedule's gap and its last runs move
with the clock, so they are not set once at a (re)load.

`llm_monitor_canary_interval_seconds` is the gap the canary is in now (for `every`, its period; for a cron, from
its last fire time to its next: 600 by day and 15 hours by night for `*/10 9-17 * * *`).
`llm_monitor_canary_stale_cutoff_timestamp_seconds` is the time of its third most recent scheduled run (for
`every`, three periods ago): a last success older than that means three scheduled runs in a row without one,
however long the nights and weekends between them. LLMMonitorCanaryStale compares the two timestamps.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from datetime import datetime

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.config.models import Schedule
from monitor.config.timing import next_fire, period_s, stale_cutoff
from monitor.domain import utcnow

STALE_RUNS = 3  # scheduled runs in a row without a success before a canary is stale
INTERVAL = "llm_monitor_canary_interval_seconds"
STALE_CUTOFF = "llm_monitor_canary_stale_cutoff_timestamp_seconds"


class ScheduleGauges(Collector):
    """The schedule gauges of every declared canary. A cron's values are kept until its next fire time, when they
    change (a cron's last runs are found by scanning its fire times: not at every scrape)."""

    def __init__(self, *, registry: CollectorRegistry, now: Callable[[], datetime] = utcnow) -> None:
        self._now = now
        self._schedules: dict[str, Schedule] = {}
        self._cache: dict[str, tuple[datetime, float, float]] = {}  # canary -> (valid until, interval, cutoff)
        self._lock = threading.Lock()
        registry.register(self)

    def declare(self, schedules: Iterable[tuple[str, Schedule]]) -> None:
        """Export the gauges of these canaries, alone (those a reload removed are dropped)."""
        new = dict(schedules)
        with self._lock:
            self._cache = {c: v for c, v in self._cache.items() if self._schedules.get(c) == new.get(c)}
            self._schedules = new

    def values(self, canary: str) -> tuple[float, float]:
        """Return the canary's (interval in seconds, stale cutoff as Unix time) now."""
        now = self._now()
        with self._lock:
            schedule = self._schedules.get(canary)
            if schedule is None:  # forgotten by a reload since the scrape listed it
                return math.nan, math.nan
            if schedule.cron is None:  # cheap, and the cutoff moves with the clock
                return period_s(schedule, now), stale_cutoff(schedule, now, STALE_RUNS).timestamp()
            cached = self._cache.get(canary)
            if cached is None or now >= cached[0]:
                cached = (next_fire(schedule, now), period_s(schedule, now),
                          stale_cutoff(schedule, now, STALE_RUNS).timestamp())
                self._cache[canary] = cached
            return cached[1], cached[2]

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (GaugeMetricFamily(INTERVAL, "Scheduled period of the canary; for a cron schedule, the gap from its "
                                  "last fire time to its next.", labels=("canary",)),
                GaugeMetricFamily(STALE_CUTOFF, "Unix time of the canary's third most recent scheduled run (every: "
                                  "three periods ago): a last success older than this is stale.", labels=("canary",)))

    def describe(self) -> list[Metric]:
        return list(self._families())

    def collect(self) -> list[Metric]:
        interval, cutoff = self._families()
        with self._lock:
            canaries = sorted(self._schedules)
        for canary in canaries:
            gap, at = self.values(canary)
            interval.add_metric([canary], gap)
            cutoff.add_metric([canary], at)
        return [interval, cutoff]

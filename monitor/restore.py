"""The per-pair state a replica reads back from the store when it takes the lead (the daemon starting, a standby
taking over), so the alerts built on it survive a restart; and the failing streaks of the pairs a reload adds.

`llm_monitor_last_success_timestamp_seconds` feeds the staleness alerts; `llm_monitor_failing_since_timestamp_seconds`
and `llm_monitor_failing_runs` LLMMonitorCanaryFailing (started empty, a restart during an outage would resolve that
page and raise it again only once a new streak had lasted its 15 minutes and 2 runs); the same failed-run counts
seed the health watch's canary.down (started at zero, a canary down across a restart would page `down_after` runs
later, or never if restarts came more often), and the streak's failure types the failures it names.
"""

from __future__ import annotations

from collections.abc import Iterable

from monitor.config.loader import Config
from monitor.store import FailingStreak, Store
from monitor.telemetry.metrics import Metrics

Pair = tuple[str, str]


def restore_pair_gauges(store: Store, metrics: Metrics, config: Config) -> dict[Pair, FailingStreak]:
    """Set the last-success and failing-streak gauges of the configured pairs from the store; return the failing
    streaks found (blocking: run it in a worker thread, before the first call)."""
    pairs = {(c.id, t.id) for c, t in config.pairs()}
    for (canary, target), ts in store.last_success(sorted(pairs)).items():
        metrics.last_success.set(canary, target, value=ts.timestamp())
    # the daemon's own calls too (judges', embeddings'): their streak gauges are set and removed as a canary's are
    return restore_streaks(store, metrics, pairs | config.service_pairs())


def restore_streaks(store: Store, metrics: Metrics, pairs: Iterable[Pair]) -> dict[Pair, FailingStreak]:
    """Set the failing-streak gauges of `pairs` from the store (at start, and for the pairs a reload adds); return
    the streaks found (blocking: run it in a worker thread, before the pairs' first call)."""
    return show_streaks(metrics, store.failing_streaks(sorted(pairs)))


def show_streaks(metrics: Metrics, streaks: dict[Pair, FailingStreak]) -> dict[Pair, FailingStreak]:
    """Set the failing-streak gauges of `streaks` read from the store (a reload reads them before it switches
    anything: a store away refuses it whole); return them."""
    for (canary, target), streak in streaks.items():
        metrics.restore_streak(canary, target, streak.since.timestamp(), streak.runs)
    return streaks

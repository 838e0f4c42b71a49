"""The per-pair gauges a replica reads back from the store when it takes the lead (the daemon starting, a standby
taking over), so the alerts built on them survive a restart.

`llm_monitor_last_success_timestamp_seconds` feeds the staleness alerts, and
`llm_monitor_failing_since_timestamp_seconds` LLMMonitorCanaryFailing: started empty, a restart during an outage
would resolve that page and raise it again only once a new streak had lasted its 15 minutes.
"""

from __future__ import annotations

from monitor.config.loader import Config
from monitor.store import Store
from monitor.telemetry.metrics import Metrics


def restore_pair_gauges(store: Store, metrics: Metrics, config: Config) -> None:
    """Set the last-success and failing-since gauges of the configured pairs from the store (blocking: run it in a
    worker thread, before the first call)."""
    pairs = {(c.id, t.id) for c, t in config.pairs()}
    for (canary, target), ts in store.last_success().items():
        if (canary, target) in pairs:
            metrics.last_success.set(canary, target, value=ts.timestamp())
    # the daemon's own calls too (judges', embeddings'): their gauge is set and removed as a canary's is
    for (canary, target), streak in store.failing_streaks(sorted(pairs | config.service_pairs())).items():
        metrics.failing_since.set(canary, target, value=streak.since.timestamp())

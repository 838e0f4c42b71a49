"""Messages the cooldown kept from a sink, made visible: one log line each and a counter per sink.

The policy decides (monitor.alerts.policy: a repeated firing message, a model change already told); this says so,
once the decision holds (the caller's transaction committed), so an operator can tell a suppression from a loss.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from monitor.alerts.policy import Suppressed

log = logging.getLogger("monitor.alerts")

COOLDOWN = "cooldown"
# the `reason` label of llm_monitor_notifications_suppressed_total: each one pre-initialised per sink
SUPPRESS_REASONS: tuple[str, ...] = (COOLDOWN,)


def _what(s: Suppressed) -> str:
    e = s.event
    ev = e.evidence
    values = f"{ev.get('baseline_value')} -> {ev.get('current_value')}" \
        if "baseline_value" in ev or "current_value" in ev else ""
    change = f"{e.signal} {values}".strip()
    if e.kind == "model.changed":
        return f"{e.kind} of target {e.target} ({change}, seen by {e.canary})"
    return f"{e.kind} of {e.canary}@{e.target} ({change})"


def report(suppressed: Iterable[Suppressed], metrics: Any = None) -> None:
    """Log each message the cooldown kept from its sink (info) and count it in
    llm_monitor_notifications_suppressed_total{sink,reason="cooldown"}."""
    for s in suppressed:
        told = "that change was told" if s.event.kind == "model.changed" else "its alert was told firing"
        log.info("%s not sent to %s: %s within the cooldown, which runs until %s", _what(s), s.sink, told,
                 s.until.isoformat(), extra={"sink": s.sink, "reason": COOLDOWN, "kind": s.event.kind,
                                             "target": s.event.target, "canary": s.event.canary,
                                             "signal": s.event.signal, "until": s.until.isoformat()})
        if metrics is not None:
            metrics.suppressed.labels(s.sink, COOLDOWN).inc()

"""Alerts: policy (pure: route, group, cool down, resolve), a durable outbox, sinks and the sender.

    event ──policy──> notifications ──enqueue (caller's transaction)──> outbox rows ──sender──> sinks

The names below load with their modules on first use (`monitor.lazy`): the configuration reads only
`alerts.config` and the sinks' settings, without the outbox's SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from monitor.lazy import lazy_exports

if TYPE_CHECKING:
    from monitor.alerts.attempt import Attempt
    from monitor.alerts.config import AlertsConfig
    from monitor.alerts.events import AlertEvent, Notification
    from monitor.alerts.outbox import Outbox, enqueue
    from monitor.alerts.policy import Policy, plan, route
    from monitor.alerts.sender import FlushResult, Sender
    from monitor.alerts.service import Alerting, build_alerting
    from monitor.alerts.sinks import build_sinks

__all__ = ["AlertEvent", "Alerting", "AlertsConfig", "Attempt", "FlushResult", "Notification", "Outbox", "Policy",
           "Sender", "build_alerting", "build_sinks", "enqueue", "plan", "route"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "AlertEvent": "monitor.alerts.events",
    "Alerting": "monitor.alerts.service",
    "AlertsConfig": "monitor.alerts.config",
    "Attempt": "monitor.alerts.attempt",
    "FlushResult": "monitor.alerts.sender",
    "Notification": "monitor.alerts.events",
    "Outbox": "monitor.alerts.outbox",
    "Policy": "monitor.alerts.policy",
    "Sender": "monitor.alerts.sender",
    "build_alerting": "monitor.alerts.service",
    "build_sinks": "monitor.alerts.sinks",
    "enqueue": "monitor.alerts.outbox",
    "plan": "monitor.alerts.policy",
    "route": "monitor.alerts.policy",
})

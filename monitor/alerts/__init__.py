"""Alerts: policy (pure: route, group, cool down, resolve), a durable outbox, sinks and the sender.

    event ──policy──> notifications ──enqueue (caller's transaction)──> outbox rows ──sender──> sinks
"""

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

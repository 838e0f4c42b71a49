"""PagerDuty Events API v2: trigger and resolve, de-duplicated per canary x target x signal."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from monitor.alerts.config import AlertsConfig, PagerDutySink
from monitor.alerts.events import FIRING, RESOLVING, Notification
from monitor.alerts.sinks.base import USER_AGENT, Rendered, Sink, read_secret, to_json

_SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}


class PagerDuty(Sink):
    """POST an Events v2 `trigger` or `resolve`; the routing key is read from the environment or a file."""

    type = "pagerduty"

    def __init__(self, name: str, url: str, timeout: float, routing_key: str,
                 external_labels: Mapping[str, str] | None = None, *, url_secret: bool = False):
        # its url is written in the config (the Events API's by default): a secret only when a ${VAR} gave it
        super().__init__(name, url, timeout, (routing_key,), url_secret=url_secret)
        self._key = routing_key
        self.external_labels = dict(external_labels or {})

    @classmethod
    def build(cls, cfg: PagerDutySink, alerts: AlertsConfig, environ: Mapping[str, str] | None) -> PagerDuty:
        key = read_secret(cfg.name, "routing_key", cfg.routing_key_env, cfg.routing_key_file, environ)
        assert key is not None
        return cls(cfg.name, cfg.url, cfg.timeout, key, alerts.external_labels, url_secret=cfg.url_secret)

    def render(self, n: Notification, now: datetime) -> Rendered:
        p = n.payload
        stateful = n.kind in FIRING or n.kind in RESOLVING
        body = {
            "routing_key": self._key,
            "event_action": "resolve" if n.kind in RESOLVING else "trigger",
            "dedup_key": f"llm-monitor/{n.group_key}/{n.signal}" if stateful else n.message_id,
            "payload": {"summary": str(p.get("summary", ""))[:1024], "source": p.get("target") or "llm-monitor",
                        "severity": _SEVERITY.get(p.get("severity", ""), "warning"),
                        "component": p.get("canary", ""), "class": n.signal or n.kind,
                        "timestamp": p.get("opened_at"), "custom_details": {
                            **(p.get("evidence") or {}), "link": p.get("link"),
                            **({"external_labels": self.external_labels} if self.external_labels else {}),
                            **{k: True for k in ("resent", "firing_not_delivered") if p.get(k)}}},
            "links": [{"href": p["link"], "text": "llm-monitor event"}] if p.get("link") else [],
        }
        return Rendered(self.url, to_json(body), {"content-type": "application/json", "user-agent": USER_AGENT})

"""Alertmanager v2 API: push alerts, re-send them while firing, resolve them with `endsAt`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from monitor.alerts.config import AlertmanagerSink, AlertsConfig, alertmanager_url_problem
from monitor.alerts.events import FIRING, RESOLVING, Notification
from monitor.alerts.sinks.base import USER_AGENT, Rendered, Sink, read_url, to_json
from monitor.errors import SecretError
from monitor.keylike import shown_path

ALERTNAMES = {"drift": "LLMMonitorDrift", "canary": "LLMMonitorCanaryDown", "model": "LLMMonitorModelChanged",
              "budget": "LLMMonitorBudgetExceeded", "test": "LLMMonitorTest"}
ONE_SHOT_TTL = timedelta(hours=1)  # how long a one-off notice (model changed, budget) stays visible
# A firing alert pushed is valid (its endsAt) this many re-send intervals on: Alertmanager resolves it by itself if the
# re-sends stop (the daemon gone) and keeps it through a few failed ones.
VALID_FOR_RESENDS = 4
TEST_TTL = timedelta(minutes=5)  # `alerts test`: long enough to be routed and notified, then it resolves itself


def labels(n: Notification, external: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the labels that identify the alert (same for its firing and resolved messages): its own, and the
    deployment's `alerts.external_labels` (whose names never clash with its own: the config refuses those)."""
    p = n.payload
    condition = p.get("condition") or n.kind.split(".")[0]  # rows queued before `condition` existed
    out = {"alertname": ALERTNAMES.get(condition, "LLMMonitor"), "canary": p.get("canary", ""),
           "target": p.get("target", ""), "signal": n.signal, "severity": p.get("severity", "")}
    own = {k: str(v) for k, v in out.items() if v}  # Alertmanager treats an empty label as absent
    return {**(external or {}), **own}


def _parse(ts: str | None, default: datetime) -> datetime:
    return datetime.fromisoformat(ts) if ts else default


def alert(n: Notification, now: datetime, valid_for: timedelta,
          external: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return one alert of the v2 API for a notification, as of `now`, with the `external` labels."""
    p = n.payload
    starts = _parse(p.get("opened_at"), n.created_at)
    if n.kind in RESOLVING:
        ends = max(_parse(p.get("resolved_at"), n.created_at), starts)
    elif n.kind in FIRING:
        ends = now + valid_for  # like Prometheus: valid until a few re-send intervals from now
    else:
        ends = starts + (TEST_TTL if n.kind == "test" else ONE_SHOT_TTL)
    ev = p.get("evidence") or {}
    annotations = {"summary": p.get("summary", ""), "event_id": p.get("event_id", ""), "link": p.get("link", "")}
    details = [f"{k}={ev[k]}" for k in ("baseline_value", "current_value", "p_value", "baseline_n", "current_n")
               if ev.get(k) is not None]
    if details:
        annotations["description"] = ", ".join(details)
    return {"labels": labels(n, external), "annotations": {k: str(v) for k, v in annotations.items() if v},
            "startsAt": starts.isoformat(), "endsAt": ends.isoformat(), "generatorURL": p.get("link", "")}


class Alertmanager(Sink):
    """POST `[{labels, annotations, startsAt, endsAt, generatorURL}]` to `{url}/api/v2/alerts`."""

    type = "alertmanager"

    def __init__(self, name: str, url: str, timeout: float, resend_interval: float,
                 external_labels: Mapping[str, str] | None = None, *, url_secret: bool = True):
        super().__init__(name, url, timeout, url_secret=url_secret)
        self.valid_for = timedelta(seconds=VALID_FOR_RESENDS * resend_interval)
        self.external_labels = dict(external_labels or {})

    @classmethod
    def build(cls, cfg: AlertmanagerSink, alerts: AlertsConfig,
              environ: Mapping[str, str] | None) -> Alertmanager:
        url = cfg.url or read_url(cfg.name, cfg.url_env, cfg.url_file, environ)
        assert url is not None
        problem = alertmanager_url_problem(url.rstrip("/"))  # a `url` in the config was refused as it loaded
        if problem:
            source = f"url_env {cfg.url_env}" if cfg.url_env else f"url_file {shown_path(cfg.url_file or '')}"
            raise SecretError(f"alert sink {cfg.name}: {source}: the URL read {problem} (the rest of it is not shown: "
                              "a URL from a variable or file is kept secret)")
        return cls(cfg.name, url.rstrip("/"), cfg.timeout, alerts.resend_interval, alerts.external_labels,
                   url_secret=cfg.url_secret)

    def _post(self, alerts: list[dict[str, Any]]) -> Rendered:
        return Rendered(f"{self.url}/api/v2/alerts", to_json(alerts),
                        {"content-type": "application/json", "user-agent": USER_AGENT})

    def render(self, n: Notification, now: datetime) -> Rendered:
        return self._post([alert(n, now, self.valid_for, self.external_labels)])

    def refresh(self, firing: list[Notification], now: datetime) -> Rendered | None:
        return self._post([alert(n, now, self.valid_for, self.external_labels) for n in firing]) if firing else None

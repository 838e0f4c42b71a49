"""Sinks, one module per type, and the one literal mapping from config `type` to implementation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monitor.alerts.config import AlertsConfig
from monitor.alerts.sinks.alertmanager import Alertmanager
from monitor.alerts.sinks.base import Rendered, Sink
from monitor.alerts.sinks.pagerduty import PagerDuty
from monitor.alerts.sinks.slack import Slack
from monitor.alerts.sinks.webhook import Webhook
from monitor.errors import SecretError

SINKS: dict[str, Any] = {"webhook": Webhook, "slack": Slack, "alertmanager": Alertmanager, "pagerduty": PagerDuty}


def build_sink(spec: Any, cfg: AlertsConfig, environ: Mapping[str, str] | None = None) -> Sink:
    """Build the sink `spec` (one of `cfg.sinks`), reading its secrets; raise SecretError naming what is missing or
    unusable, led by the file and line the config defines the sink at (`run`, `check-config`, `alerts test`)."""
    try:
        return SINKS[spec.type].build(spec, cfg, environ)  # type: ignore[no-any-return]
    except SecretError as e:
        raise e.located(spec.where) from None


def build_sinks(cfg: AlertsConfig, environ: Mapping[str, str] | None = None) -> dict[str, Sink]:
    """Build every configured sink (`build_sink`)."""
    return {s.name: build_sink(s, cfg, environ) for s in cfg.sinks}


def sink_problems(cfg: AlertsConfig, environ: Mapping[str, str] | None = None) -> list[SecretError]:
    """Return why each sink that `build_sinks` would refuse cannot be built (messages never hold a secret's value);
    a `SecretMissing` is a variable or file not there, as in a CI job that validates the config without secrets."""
    return [p.located(s.where) for s in cfg.sinks for p in SINKS[s.type].problems(s, cfg, environ)]


__all__ = ["SINKS", "Rendered", "Sink", "build_sink", "build_sinks", "sink_problems"]

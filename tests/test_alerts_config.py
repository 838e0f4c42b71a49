"""The `alerts:` config section: defaults, and every rejection with its message."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from monitor.alerts.config import AlertsConfig


def test_defaults() -> None:
    c = AlertsConfig()
    assert c.external_url == "http://127.0.0.1:9464"
    assert c.cooldown == 1800 and c.resend_interval == 60 and c.sinks == [] and c.routes == []


def test_durations_and_sinks_parse() -> None:
    c = AlertsConfig.model_validate({
        "cooldown": "10m", "resend_interval": "30s", "retry": {"initial": "2s", "max": "10m"},
        "sinks": [{"name": "hook", "type": "webhook", "url_env": "HOOK_URL", "secret_env": "HOOK_SECRET"},
                  {"name": "pd", "type": "pagerduty", "routing_key_file": "/run/secrets/pd"}],
        "routes": [{"match": {"kind": "drift.opened"}, "sinks": ["pd", "hook"]}]})
    assert c.cooldown == 600 and c.resend_interval == 30 and c.retry.initial == 2
    assert c.sink("pd").type == "pagerduty"


@pytest.mark.parametrize(("data", "message"), [
    ({"sinks": [{"name": "s", "type": "slack", "url": "https://hooks.slack.com/services/T/B/X"}]},
     "a Slack webhook URL is a secret: put it in an environment variable and name it with url_env"),
    ({"sinks": [{"name": "w", "type": "webhook", "url": "http://x", "secret_env": "whsec_c2VjcmV0"}]},
     "must be the NAME of an environment variable holding the secret"),
    ({"sinks": [{"name": "w", "type": "webhook", "url": "http://x", "secret": "whsec_c2VjcmV0"}]},
     "Extra inputs are not permitted"),
    ({"sinks": [{"name": "p", "type": "pagerduty", "routing_key": "R0ABCDEF"}]},
     "routing_key is not accepted in the config text"),
    ({"sinks": [{"name": "p", "type": "pagerduty"}]}, "set exactly one of routing_key_env or routing_key_file"),
    ({"sinks": [{"name": "w", "type": "webhook"}]}, "set exactly one of url, url_env or url_file"),
    ({"sinks": [{"name": "w", "type": "webhook", "url": "ftp://x"}]}, "must be an http:// or https:// URL"),
    ({"sinks": [{"name": "w", "type": "email"}]}, "does not match any of the expected tags"),
    ({"sinks": [{"name": "W!", "type": "alertmanager", "url": "http://x"}]}, "must be lowercase letters"),
    ({"sinks": [{"name": "a", "type": "alertmanager", "url": "http://x"},
                {"name": "a", "type": "alertmanager", "url": "http://y"}]}, "duplicate sink names: a"),
    ({"routes": [{"match": {}, "sinks": ["nowhere"]}]}, "routes[0] names unknown sinks: nowhere"),
    ({"routes": [{"match": {"severity": "high"}, "sinks": []}]}, "unknown severity 'high'"),
    ({"routes": [{"match": {"kind": "drift.exploded"}, "sinks": []}]}, "'drift.exploded' matches no event kind"),
    ({"cooldown": "soon"}, "not a duration: 'soon'"),
    ({"resend_interval": "0s"}, "must be at least 1s"),
    ({"webhooks": []}, "Extra inputs are not permitted"),
])
def test_rejections(data: dict, message: str) -> None:
    with pytest.raises(ValidationError) as e:
        AlertsConfig.model_validate(data)
    assert message in str(e.value)

"""Generic JSON webhook, signed per Standard Webhooks v1."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from monitor.alerts import signing
from monitor.alerts.config import AlertsConfig, WebhookSink
from monitor.alerts.events import Notification
from monitor.alerts.sinks.base import USER_AGENT, Rendered, Sink, read_secret, read_url, to_json
from monitor.errors import SecretError


class Webhook(Sink):
    """POST `{"type", "timestamp", "data"}` with webhook-id/-timestamp/-signature headers."""

    type = "webhook"

    def __init__(self, name: str, url: str, timeout: float, secret: str | None,
                 external_labels: Mapping[str, str] | None = None, *, url_secret: bool = True):
        super().__init__(name, url, timeout, (secret,) if secret else (), url_secret=url_secret)
        self._secret = secret
        self.external_labels = dict(external_labels or {})

    @classmethod
    def build(cls, cfg: WebhookSink, alerts: AlertsConfig, environ: Mapping[str, str] | None) -> Webhook:
        url = _url(cfg, environ)
        secret = _signing_secret(cfg, environ)
        assert url is not None
        return cls(cfg.name, url, cfg.timeout, secret, alerts.external_labels, url_secret=cfg.url_secret)

    @classmethod
    def problems(cls, cfg: WebhookSink, alerts: AlertsConfig, environ: Mapping[str, str] | None) -> list[SecretError]:
        """What `build` would refuse, each of the two secrets checked on its own (`build` stops at the first)."""
        found = []
        for read in (_url, _signing_secret):
            try:
                read(cfg, environ)
            except SecretError as e:
                found.append(e)
        return found

    def render(self, n: Notification, now: datetime) -> Rendered:
        # The body is the same bytes on every retry; only the timestamp header and signature are fresh.
        # The deployment's alerts.external_labels in `data.external_labels` (none set: the body is as before)
        data = {**n.payload, "external_labels": self.external_labels} if self.external_labels else n.payload
        body = to_json({"type": n.kind, "timestamp": n.created_at.isoformat(), "data": data})
        headers = {"content-type": "application/json", "user-agent": USER_AGENT,
                   **signing.headers(self._secret, n.message_id, int(now.timestamp()), body)}
        return Rendered(self.url, body, headers)


def _signing_secret(cfg: WebhookSink, environ: Mapping[str, str] | None) -> str | None:
    """The sink's signing secret (None: unsigned); SecretError when it is named but missing or not base64."""
    secret = read_secret(cfg.name, "secret", cfg.secret_env, cfg.secret_file, environ)
    if secret:
        try:
            signing.secret_bytes(secret)
        except ValueError as e:
            source = f"secret_env {cfg.secret_env}" if cfg.secret_env else f"secret_file {cfg.secret_file}"
            raise SecretError(f"alert sink {cfg.name}: {source}: {e}") from None
    return secret


def _url(cfg: WebhookSink, environ: Mapping[str, str] | None) -> str | None:
    """The sink's URL: written in the config, or read from its variable or file (SecretError when missing or not
    an http(s) URL)."""
    return cfg.url or read_url(cfg.name, cfg.url_env, cfg.url_file, environ)

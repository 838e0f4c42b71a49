"""`alerts test` and `alerts pending` (the functions the CLI calls)."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

from rich.console import Console

from monitor.alerts import AlertEvent, AlertsConfig, Outbox, Policy
from monitor.alerts.commands import alerts_pending, alerts_test
from monitor.store import Store
from tests.support.receiver import Receiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=200, highlight=False, color_system=None), buf


def test_alerts_test_sends_a_signed_message_now() -> None:
    with Receiver(secret=SECRET) as rx:
        cfg = SimpleNamespace(alerts={"sinks": [{"name": "hook", "type": "webhook", "url": rx.url,
                                                 "secret_env": "HOOK_SECRET"}]})
        con, buf = console()
        assert alerts_test(cfg, "hook", environ={"HOOK_SECRET": SECRET}, console=con) == 0
        [got] = rx.delivered
        assert got.json["type"] == "test" and got.verify_error == ""
        assert "delivered test message msg_" in buf.getvalue() and "HTTP 200" in buf.getvalue()
        rx.fail(503)
        con, buf = console()
        assert alerts_test(cfg, "hook", environ={"HOOK_SECRET": SECRET}, console=con) == 1
        assert "failed to deliver to hook (webhook): HTTP 503" in buf.getvalue()


def test_alerts_test_names_the_problem() -> None:
    cfg = AlertsConfig.model_validate({"sinks": [{"name": "chat", "type": "slack", "url_env": "SLACK_URL"}]})
    con, buf = console()
    assert alerts_test(cfg, "nope", environ={}, console=con) == 2
    assert "no sink named 'nope' (configured: chat)" in buf.getvalue()
    con, buf = console()
    assert alerts_test(cfg, "chat", environ={}, console=con) == 2
    assert "environment variable SLACK_URL (named by url_env) is not set" in buf.getvalue()


def test_alerts_pending_lists_the_outbox(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    store = Store(url)
    store.migrate()
    cfg = AlertsConfig.model_validate({"sinks": [{"name": "am", "type": "alertmanager", "url": "http://x"}]})
    t0 = datetime(2025, 3, 1, tzinfo=UTC)
    Outbox(store.engine).add(Policy(cfg).notifications(
        AlertEvent(kind="drift.opened", canary="c1", target="t1", signal="refusal_rate", event_id="e1"), t0))
    store.close()
    con, buf = console()
    assert alerts_pending(SimpleNamespace(storage=SimpleNamespace(url=url)), console=con) == 0
    out = buf.getvalue()
    assert "outbox: 1 pending" in out and "drift.opened" in out and "c1/t1" in out and "refusal_rate" in out

"""Model-change notifications: severity agrees with the Prometheus rule, the Alertmanager alert resolves."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from monitor.alerts import AlertsConfig, build_alerting
from monitor.alerts.policy import plan
from monitor.alerts.sinks.alertmanager import alert
from monitor.domain import utcnow
from monitor.drift.events import MODEL, DriftEvent, EventUpdate
from monitor.drift_alerts import alert_event
from monitor.store import Store
from monitor.telemetry.metrics import Metrics
from tests.support.prom import BLACKHOLE, active_alerts, start_alertmanager
from tests.support.receiver import Receiver

RULES = Path(__file__).resolve().parents[1] / "deploy" / "prometheus" / "rules.yml"
AM_CFG = AlertsConfig.model_validate({"sinks": [{"name": "am", "type": "alertmanager", "url": "http://127.0.0.1:1"}]})


def model_event(signal: str = "response_model", canary: str = "hello", **kw: object) -> DriftEvent:
    base: dict = dict(canary=canary, target="gpt", signal=signal, kind=MODEL, test="first_seen",
                      baseline_value="gpt-4o-2024-08-06", current_value="gpt-4o-2024-11-20", effect_size=None,
                      statistic=None, p_value=None, threshold=None, baseline_n=20, current_n=1, first_obs_id="o1",
                      first_obs_at=utcnow().isoformat(), opened_at=(utcnow() - timedelta(minutes=1)).isoformat())
    base.update(kw)
    return DriftEvent(**base)


def rule(name: str) -> dict:
    return next(r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if r.get("alert") == name)


def test_model_change_severity_matches_the_prometheus_rule() -> None:
    """A silent model swap is worth a warning, not a page: the push alert and the rule say the same."""
    pushed = alert_event(EventUpdate("opened", model_event()))
    assert pushed.kind == "model.changed"
    assert pushed.severity == rule("LLMMonitorModelChanged")["labels"]["severity"] == "warning"


@pytest.mark.parametrize("action", ["resolved", "accepted"])
def test_the_end_of_a_model_change_keeps_its_alertname(action: str) -> None:
    now = utcnow()
    ev = model_event()
    [opened] = plan(alert_event(EventUpdate("opened", ev)), AM_CFG, now, {}).notifications
    ev.state, ev.resolved_at = action, now.isoformat()
    [ended] = plan(alert_event(EventUpdate(action, ev)), AM_CFG, now, {}).notifications
    assert ended.kind == f"drift.{action}"
    a, b = alert(opened, now, timedelta(minutes=4)), alert(ended, now, timedelta(minutes=4))
    assert a["labels"] == b["labels"] and a["labels"]["alertname"] == "LLMMonitorModelChanged"
    # a behaviour drift event still resolves as LLMMonitorDrift
    drift = model_event(signal="refusal_rate", kind="behaviour", test="cusum")
    [d] = plan(alert_event(EventUpdate("resolved", drift)), AM_CFG, now, {}).notifications
    assert alert(d, now, timedelta(minutes=4))["labels"]["alertname"] == "LLMMonitorDrift"


@pytest.mark.slow
async def test_a_model_change_resolves_in_a_real_alertmanager(tmp_path: Path, sqlite_store: Store) -> None:
    with start_alertmanager(tmp_path, BLACKHOLE) as am:
        cfg = AlertsConfig.model_validate({"sinks": [{"name": "am", "type": "alertmanager", "url": am.url}]})
        al = build_alerting(cfg, sqlite_store, environ={})
        ev = model_event()
        await al.publish([alert_event(EventUpdate("opened", ev))])
        assert (await al.sender.flush()).delivered == 1
        [a] = active_alerts(am.url, until=bool)
        assert a["labels"]["alertname"] == "LLMMonitorModelChanged"
        ev.state, ev.accepted_at = "accepted", utcnow().isoformat()
        await al.publish([alert_event(EventUpdate("accepted", ev))])
        assert (await al.sender.flush()).delivered == 1
        assert active_alerts(am.url, until=lambda a: not a) == []
        await al.stop()


async def test_one_rotation_is_one_notification_per_target(sqlite_store: Store) -> None:
    t0 = utcnow().replace(microsecond=0)
    now = [t0]
    with Receiver() as hook, Receiver() as chat, Receiver() as am:
        cfg = AlertsConfig.model_validate({"group_wait": "30s", "cooldown": "30m", "sinks": [
            {"name": "hook", "type": "webhook", "url": hook.url},
            {"name": "chat", "type": "slack", "url_env": "SLACK_URL"},
            {"name": "am", "type": "alertmanager", "url": am.url}]})
        al = build_alerting(cfg, sqlite_store, environ={"SLACK_URL": chat.url + "/slack"}, now=lambda: now[0])

        def rotation(canary: str) -> list[DriftEvent]:
            return [model_event("response_model", canary),
                    model_event("system_fingerprint", canary, baseline_value="fp_a", current_value="fp_b")]

        events = rotation("hello")
        await al.publish([alert_event(EventUpdate("opened", e)) for e in events])
        await al.sender.flush()
        now[0] = t0 + timedelta(seconds=20)  # the next canary on the target sees it at its next run
        events += rotation("bye")
        await al.publish([alert_event(EventUpdate("opened", e)) for e in events[2:]])
        await al.sender.flush()
        assert hook.requests == [] and chat.requests == []  # still collecting
        assert len(am.requests) == 4  # Alertmanager groups by itself: one alert per canary x signal
        now[0] = t0 + timedelta(seconds=31)
        await al.sender.flush()
        [one] = hook.delivered
        data = one.json["data"]
        assert one.json["type"] == "model.changed" and data["target"] == "gpt"
        assert data["canaries"] == ["bye", "hello"] and data["signals"] == ["response_model", "system_fingerprint"]
        assert len(data["changes"]) == 4 and data["canary"] == "*"
        assert "gpt-4o-2024-08-06 -> gpt-4o-2024-11-20" in data["summary"] and "fp_a -> fp_b" in data["summary"]
        assert "bye, hello" in data["summary"]
        [slack] = chat.delivered
        assert "bye, hello" in slack.json["text"]
        assert al.outbox.pending_count() == 0
        now[0] = t0 + timedelta(minutes=5)  # a third canary, after the group went out: the cooldown drops it
        late = rotation("third")
        await al.publish([alert_event(EventUpdate("opened", e)) for e in late])
        # accepting the change: Alertmanager resolves its alerts, webhook and Slack got a notice, not an alert
        for e in events:
            e.state, e.accepted_at = "accepted", now[0].isoformat()
        await al.publish([alert_event(EventUpdate("accepted", e)) for e in events])
        now[0] = t0 + timedelta(minutes=6)
        await al.sender.flush()
        assert len(hook.requests) == 1 and len(chat.requests) == 1
        assert len(am.requests) == 4 + 2 + 4
        await al.stop()


async def test_what_slack_is_told_reads_as_a_change(sqlite_store: Store) -> None:
    # Found by QA: whole-completion (MMD) events read "completion None -> None" and rates
    # "check:refusal 1.0 -> 0.17647058823529413" in Slack, PagerDuty and Alertmanager summaries.
    mmd = model_event(signal="completion", kind="behaviour", test="mmd_spectrum", baseline_value=None,
                      current_value=None, p_value=0.0002249718785151856, statistic=0.778)
    rate = model_event(signal="check:refusal", kind="behaviour", test="bernoulli_cusum", canary="other",
                       baseline_value=1.0, current_value=0.17647058823529413)
    with Receiver() as rx:
        cfg = AlertsConfig.model_validate({"group_wait": "0s",
                                           "sinks": [{"name": "slack", "type": "slack", "url_env": "SLACK_URL"}]})
        al = build_alerting(cfg, sqlite_store, environ={"SLACK_URL": rx.url + "/s"})
        await al.publish([alert_event(EventUpdate("opened", e)) for e in (mmd, rate)])
        assert (await al.sender.flush()).delivered == 2
        texts = sorted(r.json["text"] for r in rx.requests)
        await al.stop()
    assert texts == [":rotating_light: [warning] hello @ gpt: completion changed (mmd_spectrum, p=0.00022)",
                     ":rotating_light: [warning] other @ gpt: check:refusal 1 -&gt; 0.176"]  # Slack shows ->


async def test_a_change_back_within_the_cooldown_reaches_a_webhook_also_after_a_restart(
        sqlite_store: Store) -> None:
    # Found by an operator review: fp_a -> fp_b was sent, one canary's change accepted, then fp_b -> fp_a within the
    # cooldown opened an event but wrote no model.changed row: the receiver kept believing fp_b was served.
    t0 = utcnow().replace(microsecond=0)
    now = [t0]
    with Receiver() as hook:
        cfg = AlertsConfig.model_validate({"group_wait": "0s", "cooldown": "30m",
                                           "sinks": [{"name": "hook", "type": "webhook", "url": hook.url}]})
        al = build_alerting(cfg, sqlite_store, environ={}, now=lambda: now[0])
        there = model_event("system_fingerprint", baseline_value="fp_a", current_value="fp_b", id="e1")
        assert len(await al.publish([alert_event(EventUpdate("opened", there))])) == 1
        await al.sender.flush()
        there.state, there.accepted_at = "accepted", t0.isoformat()
        assert await al.publish([alert_event(EventUpdate("accepted", there))]) == []  # a notice: no end to send
        await al.stop()
        now[0] = t0 + timedelta(minutes=10)
        al = build_alerting(cfg, sqlite_store, environ={}, now=lambda: now[0])  # a restart: memory from the outbox
        al.resync()
        back = model_event("system_fingerprint", baseline_value="fp_b", current_value="fp_a", id="e2")
        [row] = await al.publish([alert_event(EventUpdate("opened", back))])
        assert row.payload["evidence"]["current_value"] == "fp_a"
        now[0] = t0 + timedelta(minutes=15)  # flapping: fp_b again within the cooldown is a repeat
        again = model_event("system_fingerprint", baseline_value="fp_a", current_value="fp_b", id="e3")
        assert await al.publish([alert_event(EventUpdate("opened", again))]) == []
        await al.sender.flush()
        assert [r.json["data"]["changes"][0]["to"] for r in hook.delivered] == ["fp_b", "fp_a"]
        await al.stop()


async def test_a_repeat_the_cooldown_drops_is_logged_and_counted(sqlite_store: Store,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    t0 = utcnow().replace(microsecond=0)
    now = [t0]
    cfg = AlertsConfig.model_validate({"group_wait": "0s", "cooldown": "30m", "sinks": [
        {"name": "hook", "type": "webhook", "url": "http://127.0.0.1:1/h"},
        {"name": "am", "type": "alertmanager", "url": "http://127.0.0.1:2"}]})
    al = build_alerting(cfg, sqlite_store, environ={}, metrics=Metrics(registry), now=lambda: now[0])

    def suppressed(sink: str) -> float | None:
        return registry.get_sample_value("llm_monitor_notifications_suppressed_total",
                                         {"sink": sink, "reason": "cooldown"})

    assert (suppressed("hook"), suppressed("am")) == (0, 0)  # pre-initialised per sink
    await al.publish([alert_event(EventUpdate("opened", model_event(id="e1")))])
    now[0] = t0 + timedelta(minutes=5)
    with caplog.at_level(logging.INFO, logger="monitor.alerts"):
        written = await al.publish([alert_event(EventUpdate("opened", model_event(canary="bye", id="e2")))])
    assert [n.sink for n in written] == ["am"]
    assert (suppressed("hook"), suppressed("am")) == (1, 0)
    [line] = [r for r in caplog.records if "cooldown" in r.getMessage()]
    text = line.getMessage()
    assert line.levelno == logging.INFO and line.sink == "hook"  # type: ignore[attr-defined]
    assert "model.changed" in text and "gpt" in text and "response_model" in text and "gpt-4o-2024-11-20" in text
    assert (t0 + timedelta(minutes=30)).isoformat() in text
    # a repeated drift.opened of the same canary x target x signal (its first never resolved there) likewise
    drift = model_event(signal="refusal_rate", kind="behaviour", test="cusum", baseline_value=0.02, current_value=0.4)
    await al.publish([alert_event(EventUpdate("opened", drift))])
    now[0] = t0 + timedelta(minutes=6)
    await al.publish([alert_event(EventUpdate("opened", replace(drift, id="e9")))])
    assert suppressed("hook") == 2
    await al.stop()

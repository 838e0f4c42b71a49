"""The shipped Alertmanager config (deploy/alertmanager/alertmanager.yml) against a real Alertmanager."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.support.prom import start_alertmanager

CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "alertmanager" / "alertmanager.yml"


def _alert(name: str, **labels: str) -> dict:
    start = datetime.now(UTC) - timedelta(minutes=1)
    return {"labels": {"alertname": name, "job": "llm-monitor", **labels},
            "startsAt": start.isoformat(), "endsAt": (start + timedelta(hours=1)).isoformat()}


def _states(url: str) -> dict[str, str]:
    alerts = httpx.get(url + "/api/v2/alerts", timeout=5).json()
    return {a["labels"].get("canary", a["labels"]["alertname"]): a["status"]["state"] for a in alerts}


@pytest.mark.slow
def test_one_replica_down_does_not_silence_the_canary_alerts_of_the_others(tmp_path: Path) -> None:
    # Found by QA: the inhibit rule had no `equal`, so with two replicas (or two deployments on one Alertmanager)
    # a standby that was down silenced every LLMMonitorCanaryFailing / LLMMonitorCanaryStale page of the leader.
    # The canary alerts now aggregate over replicas (no job or instance), as the rules make them.
    with start_alertmanager(tmp_path, CONFIG.read_text()) as am:
        alerts = [
            _alert("LLMMonitorDown", instance="b:9464", severity="critical"),
            _alert("LLMMonitorCanaryStale", canary="stale", target="t", severity="warning"),
            _alert("LLMMonitorCanaryFailing", canary="failing", target="t", severity="critical"),
        ]
        for a in alerts[1:]:
            del a["labels"]["job"]
        assert httpx.post(am.url + "/api/v2/alerts", json=alerts, timeout=5).status_code == 200
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # the inhibitor learns its source alerts asynchronously
            states = _states(am.url)
            assert states.get("stale", "active") == "active" and states.get("failing", "active") == "active"
            time.sleep(0.1)
        states = _states(am.url)
        assert states["LLMMonitorDown"] == "active"
        assert states["stale"] == "active" and states["failing"] == "active"


@pytest.mark.slow
def test_a_pushed_drift_alert_stands_for_the_rules_alert_of_the_same_signal(tmp_path: Path) -> None:
    # Found by QA: with the alertmanager sink and the shipped rules both in use, every drift paged twice
    # (LLMMonitorDrift pushed by the daemon, LLMMonitorDriftActive from the rule).
    def rule(canary: str) -> dict:
        a = _alert("LLMMonitorDriftActive", canary=canary, target="t", signal="refused", severity="warning")
        del a["labels"]["job"]  # the rule aggregates by canary, target, signal
        return a

    with start_alertmanager(tmp_path, CONFIG.read_text()) as am:
        pushed = _alert("LLMMonitorDrift", canary="both", target="t", signal="refused", severity="warning")
        del pushed["labels"]["job"]
        alerts = [pushed, rule("both"), rule("rule-only")]
        alerts_now = push_until_one_is_suppressed(am.url, alerts)
        states = {(a["labels"]["alertname"], a["labels"]["canary"]): a["status"]["state"] for a in alerts_now}
        assert states == {("LLMMonitorDrift", "both"): "active", ("LLMMonitorDriftActive", "both"): "suppressed",
                          ("LLMMonitorDriftActive", "rule-only"): "active"}


@pytest.mark.slow
def test_a_pushed_model_change_stands_for_the_rules_alert_of_the_same_target(tmp_path: Path) -> None:
    def changed(target: str, **labels: str) -> dict:
        a = _alert("LLMMonitorModelChanged", target=target, severity="warning", **labels)
        del a["labels"]["job"]
        return a

    with start_alertmanager(tmp_path, CONFIG.read_text()) as am:
        alerts = [changed("gpt", canary="c", signal="response_model"), changed("gpt"), changed("claude")]
        alerts_now = push_until_one_is_suppressed(am.url, alerts)
        states = {(a["labels"]["target"], a["labels"].get("signal", "")): a["status"]["state"] for a in alerts_now}
        assert states == {("gpt", "response_model"): "active", ("gpt", ""): "suppressed", ("claude", ""): "active"}


def push_until_one_is_suppressed(url: str, alerts: list[dict]) -> list[dict]:
    """Push `alerts` to Alertmanager; return its alerts once one of them is suppressed (or after 15 s)."""
    assert httpx.post(url + "/api/v2/alerts", json=alerts, timeout=5).status_code == 200
    deadline = time.monotonic() + 15
    while True:
        alerts_now = httpx.get(url + "/api/v2/alerts", timeout=5).json()
        if any(a["status"]["state"] == "suppressed" for a in alerts_now) or time.monotonic() > deadline:
            return alerts_now
        time.sleep(0.1)  # the inhibitor learns its source alerts asynchronously


@pytest.mark.slow
def test_a_canary_down_is_one_page_and_its_behaviour_drift_still_pages(tmp_path: Path) -> None:
    # Found by QA: one outage paged as canary down (pushed), CanaryFailing, CanaryStale and a drift on the
    # canary's error rate and error types, all for the same thing.
    def key(a: dict) -> tuple[str, str, str, str]:
        labels = a["labels"]
        return labels["alertname"], labels.get("canary", ""), labels["target"], labels.get("signal", "")

    with start_alertmanager(tmp_path, CONFIG.read_text()) as am:
        alerts = [
            _alert("LLMMonitorCanaryDown", canary="down", target="t", signal="health", severity="critical"),
            _alert("LLMMonitorCanaryFailing", canary="down", target="t", severity="critical"),
            _alert("LLMMonitorCanaryStale", canary="down", target="t", severity="warning"),
            _alert("LLMMonitorDriftActive", canary="down", target="t", signal="error", severity="warning"),
            _alert("LLMMonitorDrift", canary="down", target="t", signal="error_type", severity="warning"),
            # what still pages: behaviour drift of that canary, another canary, the same canary elsewhere
            _alert("LLMMonitorDrift", canary="down", target="t", signal="refused", severity="warning"),
            _alert("LLMMonitorCanaryStale", canary="other", target="t", severity="warning"),
            _alert("LLMMonitorDriftActive", canary="down", target="u", signal="error", severity="warning"),
        ]
        assert httpx.post(am.url + "/api/v2/alerts", json=alerts, timeout=5).status_code == 200
        silenced = {("LLMMonitorCanaryFailing", "down", "t", ""), ("LLMMonitorCanaryStale", "down", "t", ""),
                    ("LLMMonitorDriftActive", "down", "t", "error"), ("LLMMonitorDrift", "down", "t", "error_type")}
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # the inhibitor learns its source alerts asynchronously
            states = {key(a): a["status"]["state"] for a in httpx.get(am.url + "/api/v2/alerts", timeout=5).json()}
            if all(states.get(k) == "suppressed" for k in silenced):
                break
            time.sleep(0.1)
        assert {k for k, state in states.items() if state == "suppressed"} == silenced
        assert len(states) == len(alerts)


@pytest.mark.slow
def test_one_deployments_alerts_do_not_silence_anothers(tmp_path: Path) -> None:
    # Found by a newcomer's walk-through: the rules are per deployment (job, namespace), but the inhibits between
    # two of the rules' own alerts matched on canary and target only, so staging's paused target (SpendCapReached)
    # or failing canary (CanaryFailing) silenced prod's CanaryStale and error-signal DriftActive of the same ids.
    # (An inhibit from a pushed alert, which carries no job or namespace, cannot tell deployments apart.)
    def rule(name: str, namespace: str, **labels: str) -> dict:
        return _alert(name, namespace=namespace, target="gpt", severity="warning", **labels)

    with start_alertmanager(tmp_path, CONFIG.read_text()) as am:
        alerts = [
            rule("LLMMonitorSpendCapReached", "staging"),
            rule("LLMMonitorCanaryFailing", "staging", canary="c"),
            rule("LLMMonitorCanaryStale", "staging", canary="c"),  # its own deployment's: silenced
            rule("LLMMonitorCanaryStale", "staging", canary="d"),
            rule("LLMMonitorDriftActive", "staging", canary="c", signal="error"),
            rule("LLMMonitorCanaryStale", "prod", canary="c"),  # another deployment's: still pages
            rule("LLMMonitorCanaryStale", "prod", canary="d"),
            rule("LLMMonitorDriftActive", "prod", canary="c", signal="error"),
        ]
        assert httpx.post(am.url + "/api/v2/alerts", json=alerts, timeout=5).status_code == 200
        silenced = {("LLMMonitorCanaryStale", "staging", "c"), ("LLMMonitorCanaryStale", "staging", "d"),
                    ("LLMMonitorDriftActive", "staging", "c")}
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # the inhibitor learns its source alerts asynchronously
            states = {(a["labels"]["alertname"], a["labels"]["namespace"], a["labels"].get("canary", "")):
                      a["status"]["state"] for a in httpx.get(am.url + "/api/v2/alerts", timeout=5).json()}
            if all(states.get(k) == "suppressed" for k in silenced) and len(states) == len(alerts):
                time.sleep(0.5)  # a wrong inhibit of prod's would show by now too
                states = {(a["labels"]["alertname"], a["labels"]["namespace"], a["labels"].get("canary", "")):
                          a["status"]["state"] for a in httpx.get(am.url + "/api/v2/alerts", timeout=5).json()}
                break
            time.sleep(0.1)
        assert {k for k, state in states.items() if state == "suppressed"} == silenced


@pytest.mark.slow
def test_two_deployments_page_apart(tmp_path: Path) -> None:
    # deploy/README: a staging and a prod deployment with the same canary ids page apart; the route grouped by
    # alertname, target and canary only, so their alerts went out as one notification (one group)
    with start_alertmanager(tmp_path, CONFIG.read_text()) as am:
        alerts = [_alert("LLMMonitorCanaryStale", namespace=ns, canary="c", target="gpt", severity="warning")
                  for ns in ("prod", "staging")]
        assert httpx.post(am.url + "/api/v2/alerts", json=alerts, timeout=5).status_code == 200
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            groups = httpx.get(am.url + "/api/v2/alerts/groups", timeout=5).json()
            if sum(len(g["alerts"]) for g in groups) == 2:
                break
            time.sleep(0.1)
        assert sorted(len(g["alerts"]) for g in groups) == [1, 1]
        assert {g["labels"]["namespace"] for g in groups} == {"prod", "staging"}


@pytest.mark.slow
def test_two_deployments_pushing_with_external_labels_stay_apart(tmp_path: Path) -> None:
    # Found by a newcomer walk-through: prod and staging pushing to one Alertmanager with the same canary and target
    # ids merged into one alert, and staging's pushed LLMMonitorCanaryDown silenced prod's alerts. Each daemon now
    # labels what it pushes with its alerts.external_labels (Prometheus' global.external_labels likewise labels the
    # rules' alerts), which the shipped route and inhibit rules match on.
    from monitor.alerts import AlertEvent
    from monitor.alerts.config import AlertsConfig
    from monitor.alerts.policy import plan
    from monitor.alerts.sinks import build_sinks

    now = datetime.now(UTC)

    def pushed(env: str, kind: str, signal: str) -> dict:
        cfg = AlertsConfig.model_validate({"external_labels": {"env": env},
                                           "sinks": [{"name": "am", "type": "alertmanager", "url": "http://x"}]})
        event = AlertEvent(kind=kind, canary="c", target="gpt", signal=signal, severity="critical", opened_at=now)
        [n] = plan(event, cfg, now, {}).notifications
        [a] = json.loads(build_sinks(cfg, {})["am"].render(n, now).body)
        return a

    def key(a: dict) -> tuple[str, str, str]:
        return a["labels"]["alertname"], a["labels"].get("env", ""), a["labels"].get("signal", "")

    with start_alertmanager(tmp_path, CONFIG.read_text()) as am:
        alerts = [pushed("staging", "canary.down", "health"), pushed("staging", "drift.opened", "error"),
                  pushed("prod", "drift.opened", "error"),  # staging's canary being down: not prod's
                  _alert("LLMMonitorCanaryStale", env="prod", canary="c", target="gpt", severity="warning"),
                  _alert("LLMMonitorCanaryFailing", env="staging", canary="c", target="gpt", severity="critical")]
        assert {(a["labels"]["env"], a["labels"]["canary"]) for a in alerts[:3]} == {("staging", "c"), ("prod", "c")}
        assert httpx.post(am.url + "/api/v2/alerts", json=alerts, timeout=5).status_code == 200
        silenced = {("LLMMonitorDrift", "staging", "error"), ("LLMMonitorCanaryFailing", "staging", "")}
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # the inhibitor learns its source alerts asynchronously
            states = {key(a): a["status"]["state"] for a in httpx.get(am.url + "/api/v2/alerts", timeout=5).json()}
            if all(states.get(k) == "suppressed" for k in silenced) and len(states) == len(alerts):
                time.sleep(0.5)  # a wrong inhibit of prod's would show by now too
                states = {key(a): a["status"]["state"] for a in httpx.get(am.url + "/api/v2/alerts",
                                                                          timeout=5).json()}
                break
            time.sleep(0.1)
        assert len(states) == len(alerts)  # five alerts: the two drifts of one canary x target x signal stay two
        assert {k for k, state in states.items() if state == "suppressed"} == silenced
        groups = httpx.get(am.url + "/api/v2/alerts/groups", timeout=5).json()
        drift_groups = [g for g in groups if g["labels"]["alertname"] == "LLMMonitorDrift"]
        assert sorted(g["labels"]["env"] for g in drift_groups) == ["prod", "staging"]  # paged apart

"""promtool validates the alerting rules, runs their unit tests and checks the example configs."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PROM = ROOT / "deploy" / "prometheus"
RULES = PROM / "rules.yml"
RULE_TESTS = sorted((PROM / "tests").glob("*.yml"))


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run promtool (skipping when it is not installed) and return the finished process."""
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("promtool not on PATH (Debian: apt-get install -y prometheus)")
    # the timeout only guards against a hang: the rule tests take about 20 s on a quiet machine and went past 60 s
    # on a loaded CI machine
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=600, cwd=ROOT)


def alert_names() -> set[str]:
    """Return the names of every alert in rules.yml."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule}


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules() -> None:
    assert RULE_TESTS
    # one promtool per file, all at once: promtool tests the files one after another on one core
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("promtool not on PATH (Debian: apt-get install -y prometheus)")
    procs = [subprocess.Popen([binary, "test", "rules", str(path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, cwd=ROOT) for path in RULE_TESTS]
    try:
        results = [(path, proc.communicate(timeout=600)[0], proc.returncode) for path, proc in zip(RULE_TESTS, procs,
                                                                                                   strict=True)]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    failed = [f"{path.name} (exit {code}):\n{out}" for path, out, code in results if code != 0]
    assert failed == [], "\n".join(failed)


def test_every_alert_has_a_firing_and_a_not_firing_case() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert alert_names() - firing == set(), "alerts without a firing test"
    assert alert_names() - quiet == set(), "alerts without a not-firing test"


def test_the_deploy_readme_lists_every_alert_with_its_severity() -> None:
    # Found by QA: LLMMonitorRestarting was in rules.yml but not in deploy/README.md's table of alerts
    rows = {}
    for line in (ROOT / "deploy" / "README.md").read_text().split("## Alerts", 1)[1].split("\n## ", 1)[0].splitlines():
        if line.startswith("| `LLMMonitor"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            rows.update({name: cells[-1] for name in re.findall(r"`(LLMMonitor\w+)`", cells[0])})
    severities = {rule["alert"]: rule["labels"]["severity"] for group in yaml.safe_load(RULES.read_text())["groups"]
                  for rule in group["rules"] if "alert" in rule}
    assert rows == severities


def test_every_alert_has_severity_summary_and_description() -> None:
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
            assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]


def test_promtool_check_config_with_rules() -> None:
    result = promtool("check", "config", str(PROM / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_check_alertmanager_config() -> None:
    binary = shutil.which("amtool")
    if binary is None:
        pytest.skip("amtool not on PATH (Debian: apt-get install -y prometheus-alertmanager)")
    config = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
    result = subprocess.run([binary, "check-config", str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_canary_target_and_sink_alert_is_per_deployment() -> None:
    # Found by the README audit: README says every alert on a canary, target or sink aggregates by job and namespace
    # and keeps both labels (Alertmanager routes match them), but LLMMonitorRunsSkipped, SpendCapUncounted,
    # NotificationsDropped and NotificationSinkDisabled aggregated by job and instance: no namespace to route on
    wrong = []
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            for clause, labels in re.findall(r"\b(by|on)\s*\(([^)]*)\)", rule["expr"]):
                names = {label.strip() for label in labels.split(",") if label.strip()}
                if names & {"canary", "target", "sink"} and not {"job", "namespace"} <= names:
                    wrong.append((rule["alert"], clause, sorted(names)))
    assert wrong == []


def test_every_alert_that_keeps_job_keeps_namespace() -> None:
    # Found by a newcomer's walk-through: deploy/README says alerts are per deployment, aggregated by job and
    # namespace; LLMMonitorConfigReloadFailed, TlsCertificateExpiring, StoreUnavailable and DriftAnalysisBehind
    # aggregated by (job, instance), so under the Prometheus Operator they came without the namespace an
    # Alertmanager route of one deployment (namespace="prod") matches, and went unrouted or to the default receiver
    wrong = []
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            for labels in re.findall(r"\bby\s*\(([^)]*)\)", rule["expr"]):
                names = {label.strip() for label in labels.split(",") if label.strip()}
                if "job" in names and "namespace" not in names:
                    wrong.append((rule["alert"], sorted(names)))
    assert wrong == []

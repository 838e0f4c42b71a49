"""A sink URL read from `url_env` or `url_file` gets the check a `url:` written in the config gets, and every problem
of a sink's secrets names the config file and line of the sink, never the secret's value.

Found by review: `SLACK_URL=not-a-url llm-monitor check-config` said `configuration OK` and `run` started; only
delivery failed (httpx's UnsupportedProtocol), retried for a day. The signing secret's error named no file or line.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.alerts.config import AlertsConfig
from monitor.alerts.sinks import build_sinks, sink_problems
from monitor.app import App
from monitor.config import load_config
from monitor.errors import SecretError, SecretMissing
from tests.conftest import write_config
from tests.support.daemon import cli

PROBES = "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n"
TARGET = "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}"
# a Slack URL pasted without its scheme: the value is the secret and must not be echoed
PASTED = "hooks.slack.com/services/T0AAAA/B0BBBB/xYz123SecretPart"
REFUSED = ("must be an http:// or https:// URL (the value read is not shown: a URL from a variable or file is kept "
           "secret)")


def at(cfg: Path, written: str) -> str:
    """`file:line` of the first line of `cfg` holding `written`."""
    return f"{cfg}:{next(n for n, line in enumerate(cfg.read_text().splitlines(), 1) if written in line)}"


@pytest.mark.parametrize("sink", ["{name: s, type: slack, url_env: SINK_URL}",
                                  "{name: s, type: webhook, url_env: SINK_URL}",
                                  "{name: s, type: alertmanager, url_env: SINK_URL}"])
def test_check_config_refuses_a_url_from_the_environment_that_is_no_http_url(tmp_path: Path, sink: str) -> None:
    cfg = write_config(tmp_path, TARGET, PROBES, extra=f"alerts:\n  sinks:\n    - {sink}\n")
    bad = cli("check-config", "-c", str(cfg), env={"SINK_URL": PASTED})
    assert bad.returncode == 2 and "configuration OK" not in bad.stdout, bad.stdout + bad.stderr
    assert f"{at(cfg, 'name: s')}: alert sink s: url_env SINK_URL: {REFUSED}" in bad.stderr
    assert "SecretPart" not in bad.stdout + bad.stderr and "Traceback" not in bad.stderr
    ok = cli("check-config", "-c", str(cfg), env={"SINK_URL": "https://" + PASTED})
    assert ok.returncode == 0 and "configuration OK" in ok.stdout, ok.stderr


def test_a_url_from_a_file_is_checked_and_not_shown(tmp_path: Path) -> None:
    (tmp_path / "slack.url").write_text(PASTED + "\n")
    cfg = write_config(tmp_path, TARGET, PROBES,
                       extra="alerts:\n  sinks:\n    - name: chat\n      type: slack\n      url_file: slack.url\n")
    bad = cli("check-config", "-c", str(cfg))
    assert bad.returncode == 2
    assert f"{at(cfg, 'name: chat')}: alert sink chat: url_file {tmp_path / 'slack.url'}: {REFUSED}" in bad.stderr
    assert "SecretPart" not in bad.stdout + bad.stderr


def test_run_refuses_to_start_with_it(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, TARGET, PROBES, extra="alerts:\n  sinks:\n    - {name: chat, type: slack, "
                                                       "url_env: SLACK_URL}\n")
    run = cli("run", "-c", str(cfg), env={"SLACK_URL": PASTED}, timeout=60)
    assert run.returncode == 2, run.stderr
    assert f"{at(cfg, 'name: chat')}: alert sink chat: url_env SLACK_URL: must be an http:// or https:// URL" \
        in run.stderr
    assert "SecretPart" not in run.stdout + run.stderr


async def test_a_reload_refuses_it_and_keeps_the_running_sinks(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, TARGET, PROBES, extra="alerts:\n  sinks:\n    - {name: chat, type: slack, "
                                                       "url_env: SLACK_URL}\n")
    environ = {"SLACK_URL": "http://127.0.0.1:9/slack"}
    app = App(load_config(cfg, environ=environ), registry=CollectorRegistry(), environ=environ, serve_http=False)
    await app.start(schedule=False)
    try:
        assert app.alerting is not None
        running = app.alerting.sender.sinks["chat"]
        environ["SLACK_URL"] = PASTED
        ok, message = await app.reload()
        assert not ok
        assert message == f"{at(cfg, 'name: chat')}: alert sink chat: url_env SLACK_URL: {REFUSED}"
        assert app.alerting.sender.sinks["chat"] is running
    finally:
        await app.stop()


def test_every_problem_of_a_sinks_secrets_names_its_file_and_line(tmp_path: Path) -> None:
    """The signing secret's error named neither (`alert sink hook: secret_env ...: ... must be base64`)."""
    sinks = ("alerts:\n  sinks:\n"
             "    - name: hook\n      type: webhook\n      url_env: HOOK_URL\n      secret_env: HOOK_SECRET\n"
             "    - {name: pager, type: pagerduty, routing_key_env: PD_KEY}\n")
    cfg = write_config(tmp_path, TARGET, PROBES, extra=sinks)
    alerts = load_config(cfg, environ={}).alerts
    hook, pager = at(cfg, "name: hook"), at(cfg, "name: pager")
    problems = sink_problems(alerts, {"HOOK_URL": "http://127.0.0.1:9/h", "HOOK_SECRET": "not-base64!!hunter2"})
    assert [str(p) for p in problems] == [
        f"{hook}: alert sink hook: secret_env HOOK_SECRET: a webhook signing secret must be base64 (optionally "
        "prefixed with whsec_)",
        f"{pager}: alert sink pager: environment variable PD_KEY (named by routing_key_env) is not set or empty"]
    assert [type(p) for p in problems] == [SecretError, SecretMissing]  # an error, and a warning in check-config
    with pytest.raises(SecretError) as e:
        build_sinks(alerts, {"HOOK_URL": "http://127.0.0.1:9/h", "HOOK_SECRET": "not-base64!!hunter2"})
    assert str(e.value).startswith(f"{hook}: alert sink hook: secret_env HOOK_SECRET:")
    assert "hunter2" not in str(e.value)


def test_a_sink_made_in_code_names_no_location() -> None:
    alerts = AlertsConfig.model_validate({"sinks": [{"name": "chat", "type": "slack", "url_env": "SLACK_URL"}]})
    [problem] = sink_problems(alerts, {"SLACK_URL": "ftp://x/y"})
    assert str(problem) == f"alert sink chat: url_env SLACK_URL: {REFUSED}"


@pytest.mark.parametrize(("url", "problem"), [
    ("http://127.0.0.1:9999x/hook", "the port must be a number from 0 to 65535"),
    ("http://[::1/hook", "must be an http:// or https:// URL: its host cannot be read"),
    ("http://127.0.0.1:9/hook\\nmore", "must be an http:// or https:// URL on one line: it holds a control character "
                                       "(character 24 of 28)"),
    ("http://256.1.1.1/hook", "its host is no IPv4 address: four numbers from 0 to 255, without leading zeros"),
    ("http://xn--a.example/hook", "its host starts with an xn-- label, and is then no valid IDNA (punycode) name"),
    ("http://xn--ls8h.example/hook", "its host starts with an xn-- label, and is then no valid IDNA (punycode) name")])
def test_a_url_httpx_cannot_send_to_is_refused_where_it_is_written(tmp_path: Path, url: str, problem: str) -> None:
    """Found by walkthrough: a webhook or Alertmanager URL with a port that is no number (`:9999x`), an IPv6 host
    without its `]` or a line break passed `check-config` (`configuration OK`) and `run` started; then every delivery
    raised httpx's InvalidURL, logged as a traceback, and the outbox said nothing (0 attempts, no error) for good."""
    cfg = write_config(tmp_path, TARGET, PROBES,
                       extra=f'alerts:\n  sinks:\n    - {{name: hook, type: webhook, url: "{url}"}}\n')
    bad = cli("check-config", "-c", str(cfg))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stdout + bad.stderr
    assert f"{at(cfg, 'name: hook')}: alerts.sinks[0].url: {problem}" in bad.stderr


def test_a_url_from_the_environment_with_a_line_break_is_refused_and_not_shown(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, TARGET, PROBES, extra="alerts:\n  sinks:\n    - {name: s, type: slack, url_env: U}\n")
    bad = cli("check-config", "-c", str(cfg), env={"U": f"https://{PASTED}\nsecond-line"})
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stdout + bad.stderr
    assert (f"{at(cfg, 'name: s')}: alert sink s: url_env U: must be an http:// or https:// URL on one line: it holds "
            "a control character (character 64 of 75)") in " ".join(bad.stderr.split())
    assert "SecretPart" not in bad.stdout + bad.stderr

"""`check-config` on a config whose alert sinks name secrets, as a CI job validates it: without the secrets.

An unset variable or an absent file is a warning, as a target's unset key is (exit 0: the job that checks the
config repository has no production secrets); a secret that is there but unusable is an error (exit 2), since
`run` would refuse it whatever the environment adds."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import write_config
from tests.support import daemon
from tests.support.inprocess import CliRun

PROBES = "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n    schedule: {every: 5m}\n"
TARGET = "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m, api_key_env: K}"
SINKS = ("alerts:\n  sinks:\n"
         "    - {name: hook, type: webhook, url: 'http://127.0.0.1:9/h', secret_file: /run/secrets/hook}\n"
         "    - {name: chat, type: slack, url_env: SLACK_URL}\n"
         "    - {name: pager, type: pagerduty, routing_key_env: PD_KEY}\n")
UNSET = {"K": "", "SLACK_URL": "", "PD_KEY": ""}


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> CliRun:
    """`llm-monitor ARGS` run in this process, with `env=` set for the call."""
    return CliRun(capsys)


def at(cfg: Path, written: str) -> str:
    """`file:line` of the first line of `cfg` holding `written`: where an error about a sink's secret points."""
    return f"{cfg}:{next(n for n, line in enumerate(cfg.read_text().splitlines(), 1) if written in line)}"


def test_unset_sink_secrets_are_warnings_like_an_unset_key(tmp_path: Path, cli: CliRun) -> None:
    cfg = write_config(tmp_path, TARGET, PROBES, extra=SINKS)
    ok = cli("check-config", "-c", str(cfg), env=UNSET)
    assert ok.returncode == 0 and "configuration OK" in ok.stdout, ok.stdout + ok.stderr
    out = " ".join(ok.stdout.split())  # rich folds long lines
    for missing in (f"{at(cfg, 'name: hook')}: alert sink hook: cannot read secret_file /run/secrets/hook",
                    f"{at(cfg, 'name: chat')}: alert sink chat: environment variable SLACK_URL (named by url_env) is "
                    "not set or empty",
                    f"{at(cfg, 'name: pager')}: alert sink pager: environment variable PD_KEY (named by "
                    "routing_key_env) is not set or empty",
                    f"{at(cfg, 'id: t')}: target t: environment variable K (named by api_key_env) is not set"):
        assert f"warning: {missing}" in out, missing
    assert out.count("(the daemon will refuse to start without it)") == 4
    # a process of its own: were the refusal lost, `run` would serve until its timeout, not hang this one
    run = daemon.cli("run", "-c", str(cfg), env={**UNSET, "K": "k"})
    assert run.returncode == 2 and "alert sink hook: cannot read secret_file" in run.stderr  # run still refuses


def test_a_sink_secret_that_is_there_but_unusable_is_an_error(tmp_path: Path, cli: CliRun) -> None:
    secret = tmp_path / "hook.secret"
    secret.write_text("not-base64!!hunter2\n")
    cfg = write_config(tmp_path, TARGET, PROBES, extra=SINKS.replace("/run/secrets/hook", str(secret)))
    bad = cli("check-config", "-c", str(cfg), env=UNSET)
    assert bad.returncode == 2 and "configuration OK" not in bad.stdout
    assert f"{at(cfg, 'name: hook')}: alert sink hook: secret_file {secret}: a webhook signing secret must be base64" \
        in bad.stderr
    assert "hunter2" not in bad.stdout + bad.stderr and "Traceback" not in bad.stderr
    assert "SLACK_URL" in bad.stdout  # the unset ones are still listed, as warnings


def test_an_unset_webhook_url_does_not_hide_an_unusable_signing_secret(tmp_path: Path, cli: CliRun) -> None:
    sinks = "alerts:\n  sinks:\n    - {name: hook, type: webhook, url_env: HOOK_URL, secret_env: HOOK_SECRET}\n"
    cfg = write_config(tmp_path, TARGET, PROBES, extra=sinks)
    bad = cli("check-config", "-c", str(cfg), env={"K": "k", "HOOK_URL": "", "HOOK_SECRET": "not-base64!!hunter2"})
    assert bad.returncode == 2 and "configuration OK" not in bad.stdout
    assert f"{at(cfg, 'name: hook')}: alert sink hook: secret_env HOOK_SECRET: a webhook signing secret must be " \
        "base64" in bad.stderr


def test_paths_with_brackets_are_shown_as_written_not_read_as_markup(tmp_path: Path, cli: CliRun) -> None:
    """`[/oops]` in a secret file's path made rich raise MarkupError: a traceback and exit 1."""
    odd = tmp_path / "[/oops]" / "[bold]s"
    sinks = f"alerts:\n  sinks:\n    - {{name: chat, type: slack, url_file: '{odd}'}}\n"
    cfg = write_config(tmp_path, TARGET, PROBES, extra=sinks)
    ok = cli("check-config", "-c", str(cfg), env={"K": ""})
    assert ok.returncode == 0 and "Traceback" not in ok.stderr, ok.stderr
    assert f"warning: {cfg}:8: alert sink chat: cannot read url_file {odd}" in " ".join(ok.stdout.split())


def test_both_of_a_webhooks_secrets_are_checked_each_on_its_own(tmp_path: Path, cli: CliRun) -> None:
    sinks = "alerts:\n  sinks:\n    - {name: hook, type: webhook, url_env: HOOK_URL, secret_env: HOOK_SECRET}\n"
    cfg = write_config(tmp_path, TARGET, PROBES, extra=sinks)
    unset = cli("check-config", "-c", str(cfg), env={"K": "k", "HOOK_URL": "", "HOOK_SECRET": ""})
    out = " ".join(unset.stdout.split())
    assert unset.returncode == 0 and "HOOK_URL (named by url_env)" in out and "HOOK_SECRET (named by secret_env)" in out
    bad = cli("check-config", "-c", str(cfg), env={"K": "k", "HOOK_URL": "", "HOOK_SECRET": "not-base64!!"})
    assert bad.returncode == 2 and "HOOK_URL (named by url_env)" in " ".join(bad.stdout.split())


def test_a_secret_written_where_its_file_name_belongs_is_not_shown(tmp_path: Path, cli: CliRun) -> None:
    """`url_file: ${SLACK_WEBHOOK_URL}` (the variable meant for url_env) printed the webhook URL in the warning."""
    url = "https://hooks.slack.com/services/T0AAAA/B0BBBB/xYz123SecretPart"
    sinks = ("alerts:\n  sinks:\n    - {name: chat, type: slack, url_file: '${SLACK_WEBHOOK_URL}'}\n"
             "    - {name: hook, type: webhook, url: 'http://127.0.0.1:9/h', secret_file: '/run/whsec_Q2xZ9kLmN4pR7s'}\n")
    cfg = write_config(tmp_path, TARGET, PROBES, extra=sinks)
    out = cli("check-config", "-c", str(cfg), env={"K": "k", "SLACK_WEBHOOK_URL": url})
    assert out.returncode == 0, out.stderr
    said = " ".join(out.stdout.split())
    assert "alert sink chat: cannot read url_file <a name that looks like a secret, not shown>" in said
    assert "alert sink hook: cannot read secret_file /run/<a name that looks like a secret, not shown>" in said
    assert "SecretPart" not in out.stdout + out.stderr and "Q2xZ9kLmN4pR7s" not in out.stdout + out.stderr

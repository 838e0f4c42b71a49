"""An `alerts.external_labels` value (or name) that looks like a secret (a token pasted where the deployment's name
belongs) is warned of by `check-config`, at the daemon's start and by a reload that sets it, naming the file, line and
label, never the value (nor such a name, in the warning or an error): it would go in the clear on every alert pushed
and in every sink's payload. Not refused: a name may look like one."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.alerts import AlertsConfig
from monitor.app import App
from monitor.config import load_config
from monitor.errors import ConfigError
from monitor.sim import SimServer
from tests.conftest import write_config
from tests.support.cli_config import ONE, two_targets
from tests.support.daemon import cli

TOKEN = "sk-live-4f9aQ2mZ7xK1pR8tV3wY6bN0cD5eH2jL"
LABELS = f"alerts:\n  external_labels:\n    env: prod\n    team: {TOKEN}\n"


def test_a_label_value_that_looks_like_a_secret_is_found_not_others() -> None:
    cfg = AlertsConfig.model_validate({"external_labels": {"env": "prod", "replica": 1, "team": TOKEN}})
    [warning] = cfg.secret_looking_labels()
    assert warning.startswith("alerts.external_labels.team: the value looks like a secret") and TOKEN not in warning


def test_check_config_warns_of_it_at_its_line_without_the_value(tmp_path: Path, steady_sim: SimServer) -> None:
    cfg = write_config(tmp_path, two_targets(steady_sim), ONE, extra=LABELS)
    out = cli("check-config", "-c", str(cfg), env={"K": "k"})
    assert out.returncode == 0 and "configuration OK" in out.stdout, out.stderr
    line = next(n for n, text in enumerate(cfg.read_text().splitlines(), 1) if "team:" in text)
    text = " ".join(out.stdout.split())
    assert f"warning: {cfg}:{line}: alerts.external_labels.team: the value looks like a secret (an API key or " \
        "token; not shown)" in text
    assert TOKEN not in out.stdout + out.stderr and "external_labels.env" not in text


async def test_the_daemon_warns_of_it_at_its_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = write_config(tmp_path, "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}",
                       "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n", extra=LABELS)
    caplog.set_level(logging.WARNING, logger="monitor.app")
    app = App(load_config(cfg, environ={}), registry=CollectorRegistry(), environ={})
    await app.start(schedule=False)
    try:
        warned = [r.getMessage() for r in caplog.records if "looks like a secret" in r.getMessage()]
        line = next(n for n, text in enumerate(cfg.read_text().splitlines(), 1) if "team:" in text)
        assert [w.split(": the value")[0] for w in warned] == [f"{cfg}:{line}: alerts.external_labels.team"]
        assert not [r for r in caplog.records if TOKEN in r.getMessage()]
    finally:
        await app.stop()


async def test_a_reload_that_sets_it_warns_of_it_as_a_start_does(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """Found in review: warned of by check-config and at start, not when a reload (SIGHUP) set it; said once, by the
    reload that set it (as a reload turning basic auth on without TLS)."""
    cfg = write_config(tmp_path, "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}",
                       "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n")
    app = App(load_config(cfg, environ={}), registry=CollectorRegistry(), environ={})
    await app.start(schedule=False)
    try:
        caplog.set_level(logging.WARNING, logger="monitor.app")
        cfg.write_text(cfg.read_text() + LABELS)
        ok, message = await app.reload()
        assert ok, message
        warned = [r.getMessage() for r in caplog.records if "looks like a secret" in r.getMessage()]
        line = next(n for n, text in enumerate(cfg.read_text().splitlines(), 1) if "team:" in text)
        assert [w.split(": the value")[0] for w in warned] == [f"{cfg}:{line}: alerts.external_labels.team"]
        assert not [r for r in caplog.records if TOKEN in r.getMessage()]
        caplog.clear()
        ok, _ = await app.reload()
        assert ok and not [r for r in caplog.records if "looks like a secret" in r.getMessage()]
    finally:
        await app.stop()


NAME = "sk_live_4f9aQ2mZ7xK1pR8tV3wY6bN0cD5eH2jL"  # letters, digits and '_': a classic label name


def test_a_label_name_that_looks_like_a_secret_is_warned_of_not_shown() -> None:
    cfg = AlertsConfig.model_validate({"external_labels": {"env": "prod", NAME: "team-a", "x": TOKEN}})
    warnings = cfg.secret_looking_labels()
    assert [w.split(": the ")[0] for w in warnings] == [
        "alerts.external_labels.<a name that looks like a secret, not shown>", "alerts.external_labels.x"]
    assert "the name looks like a secret" in warnings[0] and not [w for w in warnings if NAME in w or TOKEN in w]


@pytest.mark.parametrize("labels", [f"    {NAME}: ''\n", f"    {NAME}: 1.5\n", f"    __{NAME}: x\n"])
def test_a_label_refused_whose_name_looks_like_a_secret_is_not_shown(tmp_path: Path, labels: str) -> None:
    cfg = write_config(tmp_path, "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}",
                       "canaries: []\n", extra=f"alerts:\n  external_labels:\n    env: prod\n{labels}")
    with pytest.raises(ConfigError) as e:
        load_config(cfg, environ={})
    [issue] = e.value.issues
    assert NAME not in str(e.value) and issue.line == 9, e.value
    assert issue.field.startswith("alerts.external_labels.<a name that looks like a secret, not shown>"), issue


def test_a_label_name_that_looks_like_a_secret_written_twice_is_not_shown(tmp_path: Path) -> None:
    """Found in review: the YAML reader's duplicate-key error named it."""
    cfg = write_config(tmp_path, "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}",
                       "canaries: []\n", extra=f"alerts:\n  external_labels:\n    {NAME}: a\n    {NAME}: b\n")
    with pytest.raises(ConfigError) as e:
        load_config(cfg, environ={})
    [issue] = e.value.issues
    assert NAME not in str(e.value) and issue.line == 9, e.value
    assert issue.field == "alerts.external_labels.<a name that looks like a secret, not shown>", issue

"""`llm-monitor check-config` as users run it: exit codes, what it says of a config and its warnings, alert sink
secrets resolved as `run` resolves them, and none of the daemon's heavy modules loaded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.errors import ConfigError
from monitor.sim import SimServer
from tests.conftest import write_config
from tests.support import daemon
from tests.support.cli_config import ONE, two_targets
from tests.support.inprocess import CliRun


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> CliRun:
    """`llm-monitor ARGS` run in this process, with `env=` set for the call."""
    return CliRun(capsys)


def test_check_config_ok_and_bad(tmp_path: Path, steady_sim: SimServer, cli: CliRun) -> None:
    cfg = write_config(tmp_path, two_targets(steady_sim), ONE)
    ok = cli("check-config", "-c", str(cfg), env={"K": "k"})
    assert ok.returncode == 0, ok.stderr
    assert "1 canary, " in ok.stdout and "configuration OK" in ok.stdout and "warning" not in ok.stdout
    (tmp_path / "probes" / "empty.yaml").write_text("# nothing yet\n")
    empty = cli("check-config", "-c", str(cfg), env={"K": "k"})
    assert empty.returncode == 0 and f"{tmp_path / 'probes' / 'empty.yaml'}: no canaries" in empty.stdout
    (tmp_path / "probes" / "empty.yaml").unlink()
    (tmp_path / "probes" / "p.yaml").write_text(ONE.replace("samples: 3", "samples: three"))
    bad = cli("check-config", "-c", str(cfg))
    assert bad.returncode == 2
    assert f"{tmp_path / 'probes' / 'p.yaml'}:4: canaries[0].samples: Input should be a valid integer" in bad.stderr


def test_an_unknown_key_that_is_a_typo_names_the_key_meant(tmp_path: Path, cli: CliRun) -> None:
    # Found by QA (an SRE's first day): `tag:` for `tags:`, `api_key_evn:`, `patern:` were each "unknown key", the
    # key meant left to find in the README; a key one edit away from a known one at that place is named now
    target = "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m, api_key_evn: K}"
    canary = ("canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n    tag: [x]\n"
              "    checks:\n      - {type: regex, patern: 'a'}\n")
    cfg = write_config(tmp_path, target, canary, extra="drift: {windw: 40}\nrefusal: {colour: x}\n")
    bad = cli("check-config", "-c", str(cfg))
    probes = tmp_path / "probes" / "p.yaml"
    assert bad.returncode == 2
    for line in (f"{cfg}:2: targets[0].api_key_evn: unknown key; did you mean api_key_env? (value: '<redacted>')",
                 f"{cfg}:6: drift.windw: unknown key; did you mean window? (value: 40)",
                 f"{cfg}:7: refusal.colour: unknown key (value: 'x')",  # no key is one edit away: none named
                 f"{probes}:4: canaries[0].tag: unknown key; did you mean tags?",
                 f"{probes}:6: canaries[0].checks[0].patern: unknown key; did you mean pattern? (value: 'a')"):
        assert line in bad.stderr, bad.stderr

def test_check_config_warns_of_a_probe_folder_holding_no_probe_file(tmp_path: Path, cli: CliRun) -> None:
    cfg = write_config(tmp_path, "  - {id: gpt, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}", ONE)
    (tmp_path / "more").mkdir()
    (tmp_path / "more" / "canaries.json").write_text("{}")  # not a probe file: only *.yaml and *.yml are read
    cfg.write_text(cfg.read_text().replace("probes: [./probes]", "probes: [./probes, ./more, './none*/*.yaml']"))
    glob = cli("check-config", "-c", str(cfg))  # a glob matching nothing is an error
    assert glob.returncode == 2 and "probes[2]: no such probe file or folder" in glob.stderr
    cfg.write_text(cfg.read_text().replace(", './none*/*.yaml'", ""))
    ok = cli("check-config", "-c", str(cfg))  # a folder holding none ran no canary of it, and said nothing
    assert ok.returncode == 0 and "configuration OK" in ok.stdout, ok.stderr
    assert (f"warning: {cfg}:3: probes[1]: a folder holding no probe files (*.yaml, *.yml): no canary is read from "
            "it (value: './more')") in ok.stdout
    assert "probes[0]" not in ok.stdout


def test_check_config_warns_of_a_route_canary_or_target_that_matches_none(tmp_path: Path, cli: CliRun) -> None:
    routes = ("alerts:\n  sinks:\n    - {name: chat, type: webhook, url: 'http://127.0.0.1:9/h'}\n  routes:\n"
              "    - {match: {canary: kill-pyhton-process}, sinks: [chat]}\n"
              "    - {match: {canary: ['kill-*', _judge], target: [gtp, gpt]}, sinks: [chat]}\n")
    cfg = write_config(tmp_path, "  - {id: gpt, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}", ONE,
                       extra=routes)
    ok = cli("check-config", "-c", str(cfg))  # a typo routes nothing: said, as kind and severity are checked
    assert ok.returncode == 0 and "configuration OK" in ok.stdout, ok.stderr
    warned = [line for line in ok.stdout.splitlines() if "alerts.routes" in line]
    assert warned == [
        f"warning: {cfg}:10: alerts.routes[0].match.canary: 'kill-pyhton-process' matches no configured canary "
        "(known: kill-python-process): the route sends nothing for it",
        f"warning: {cfg}:11: alerts.routes[1].match.target: 'gtp' matches no configured target (known: gpt): the "
        "route sends nothing for it"], ok.stdout


def test_check_config_warns_of_a_canary_that_runs_on_no_target(tmp_path: Path, cli: CliRun) -> None:
    """`targets: []`, or only `canaries: listed` targets that do not name it: the canary was never probed, and
    check-config said only "configuration OK" (its pair count one less)."""
    probes = ("canaries:\n  - id: a\n    messages: [{role: user, content: hi}]\n"
              "  - id: b\n    messages: [{role: user, content: hi}]\n    targets: [gpt]\n"
              "  - id: c\n    messages: [{role: user, content: hi}]\n    targets: []\n")
    cfg = write_config(tmp_path, "  - {id: gpt, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m, "
                                 "canaries: listed}", probes)
    ok = cli("check-config", "-c", str(cfg))
    assert ok.returncode == 0 and "configuration OK" in ok.stdout, ok.stderr
    p = tmp_path / "probes" / "p.yaml"
    assert [line for line in ok.stdout.splitlines() if "no target" in line] == [
        f"warning: {p}:2: canary a: runs on no target, so it is never probed (every target says `canaries: "
        "listed`: name one in its `targets:`)",
        f"warning: {p}:9: canary c: runs on no target, so it is never probed (its targets list is empty: leave "
        "`targets:` out to run it on every target)"], ok.stdout


def test_check_config_piped_shows_a_long_base_url_whole(tmp_path: Path, cli: CliRun) -> None:
    url = "https://llm-gateway.platform.internal.example.com/openai/deployments/gpt-4o-mini-2024-07-18/v1"
    cfg = write_config(tmp_path, f"  - {{id: azure-gpt-4o-mini-eu-west, provider: openai, base_url: '{url}', "
                                 "model: gpt-4o-mini-2024-07-18}", ONE)
    ok = cli("check-config", "-c", str(cfg))
    assert ok.returncode == 0, ok.stderr
    assert url in ok.stdout  # at 80 columns it was cut to "https://llm-gat…"


def test_check_config_resolves_alert_sink_secrets_as_run_does(
        tmp_path: Path, steady_sim: SimServer, cli: CliRun) -> None:
    sinks = ("alerts:\n  sinks:\n"
             "    - {name: hook, type: webhook, url: 'http://127.0.0.1:9/h', secret_env: HOOK_SECRET}\n"
             "    - {name: chat, type: slack, url_env: SLACK_URL}\n")
    cfg = write_config(tmp_path, two_targets(steady_sim), ONE, extra=sinks)
    secret = "not-base64!!hunter2"
    bad = cli("check-config", "-c", str(cfg), env={"K": "k", "HOOK_SECRET": secret, "SLACK_URL": ""})
    assert bad.returncode == 2 and "configuration OK" not in bad.stdout
    assert "alert sink hook: secret_env HOOK_SECRET: a webhook signing secret must be base64" in bad.stderr
    # unset: a warning, as a target's unset key is (a CI job checks the config without the secrets)
    chat = next(n for n, line in enumerate(cfg.read_text().splitlines(), 1) if "name: chat" in line)
    assert f"warning: {cfg}:{chat}: alert sink chat: environment variable SLACK_URL (named by url_env) is not set or " \
        "empty" in " ".join(bad.stdout.split())
    assert secret not in bad.stdout + bad.stderr and "Traceback" not in bad.stderr
    # a process of its own: were the refusal lost, `run` would serve until its timeout, not hang this one
    run = daemon.cli("run", "-c", str(cfg), env={"K": "k", "HOOK_SECRET": secret, "SLACK_URL": ""})
    assert run.returncode == 2  # the daemon refuses the same config
    ok = cli("check-config", "-c", str(cfg),
             env={"K": "k", "HOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "SLACK_URL": "http://127.0.0.1:9/s"})
    assert ok.returncode == 0 and "configuration OK" in ok.stdout, ok.stderr


def test_check_config_warns_of_an_uncalibrated_judge_and_an_unsigned_webhook(
        tmp_path: Path, steady_sim: SimServer, cli: CliRun) -> None:
    probes = ONE + ("    checks:\n      - {type: contains, value: kill}\n"
                    "      - {type: llm_judge, judge_target: claude, rubric: 'Mentions SIGTERM.'}\n")
    sinks = "alerts:\n  sinks:\n    - {name: hook, type: webhook, url: 'http://127.0.0.1:9/h'}\n"
    cfg = write_config(tmp_path, two_targets(steady_sim), probes, extra=sinks)
    out = cli("check-config", "-c", str(cfg), env={"K": "k"})
    assert out.returncode == 0 and "configuration OK" in out.stdout, out.stderr
    text = " ".join(out.stdout.split())
    assert f"warning: {tmp_path / 'probes' / 'p.yaml'}:8: canary kill-python-process: checks[1] (llm_judge, judge " \
        "target claude) has no calibration" in text  # the check's line, as the config's errors about a check name it
    hook = next(n for n, line in enumerate(cfg.read_text().splitlines(), 1) if "name: hook" in line)
    assert f"warning: {cfg}:{hook}: alerts.sinks: hook: a webhook without secret_env or secret_file: its messages " \
        "go out unsigned" in text  # the sink's line, as the config's errors name theirs
    assert "drift false-alarm budget: 0.086 events/day over 1,728 observations/day (0.5 per 10,000 per stream" in text


def test_check_config_warns_when_the_fleet_puts_the_whole_completion_test_out_of_reach(
        tmp_path: Path, steady_sim: SimServer, cli: CliRun) -> None:
    """Two targets x 60 samples a second: 10 million observations a day under one false alarm a day put the
    whole-completion test's level (4.3e-7) below the 5e-7 its exact test can reach: said, as it was not."""
    big = ONE.replace("samples: 3", "samples: 60").replace("every: 5m", "every: 1s")
    out = cli("check-config", "-c", str(write_config(tmp_path, two_targets(steady_sim), big)), env={"K": "k"})
    assert out.returncode == 0, out.stderr
    assert "never open a 'completion' event" in " ".join(out.stdout.split())
    fine = cli("check-config", "-c", str(write_config(tmp_path, two_targets(steady_sim), ONE)), env={"K": "k"})
    assert "'completion'" not in fine.stdout


def test_check_config_loads_none_of_the_daemons_heavy_modules(tmp_path: Path) -> None:
    """Reading and checking monitor.yaml (as `check-config`, CI and pre-commit hooks do) does not load SciPy,
    NumPy, SQLAlchemy or the provider SDKs: they took most of its second of start-up."""
    probes = ONE + ("    checks: [{type: json_schema, schema: {type: object}}, {type: regex, pattern: 'a+'}]\n"
                    "    zero_tolerance: [refused]\n")
    sinks = "alerts:\n  sinks:\n    - {name: hook, type: webhook, url: 'http://127.0.0.1:9/h', secret_env: S}\n"
    cfg = write_config(tmp_path, "  - {id: gpt, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m, "
                       "api_key_env: K}\n  - {id: claude, provider: anthropic, base_url: 'http://127.0.0.1:9', "
                       "model: m, api_key_env: K}", probes, extra=sinks + "drift: {disabled_signals: [latency_s]}\n")
    heavy = ["scipy", "numpy", "sqlalchemy", "openai", "httpx", "opentelemetry.sdk"]
    code = ("import sys; from monitor.cli import main; rc = main(['check-config', '-c', sys.argv[1]]); "
            f"print(rc, [m for m in {heavy!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code, str(cfg)], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "K": "k", "S": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})
    assert "configuration OK" in out.stdout, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "0 []"


def test_check_config_orders_its_warnings_by_file_and_line(
        tmp_path: Path, steady_sim: SimServer, cli: CliRun) -> None:
    """They came grouped by kind: an unset secret of any file first (the Slack sink's, below the webhook), then the
    probe file's judge before monitor.yaml's unsigned webhook. Now by file (monitor.yaml, then the probe files) and
    line, as the errors are."""
    probes = ONE + ("    checks:\n      - {type: llm_judge, judge_target: claude, rubric: 'Mentions SIGTERM.'}\n")
    sinks = ("alerts:\n  sinks:\n    - {name: hook, type: webhook, url: 'http://127.0.0.1:9/h'}\n"
             "    - {name: chat, type: slack, url_env: SLACK_URL}\n")
    cfg = write_config(tmp_path, two_targets(steady_sim), probes, extra=sinks)
    out = cli("check-config", "-c", str(cfg), env={"K": "k"})
    assert out.returncode == 0, out.stderr
    warned = [w.split(": ", 1)[0] for w in " ".join(out.stdout.split()).split("warning: ")[1:]]
    lines = cfg.read_text().splitlines()
    hook, chat = (next(n for n, text in enumerate(lines, 1) if name in text) for name in ("name: hook", "name: chat"))
    assert warned == [f"{cfg}:{hook}", f"{cfg}:{chat}", f"{tmp_path / 'probes' / 'p.yaml'}:7"], out.stdout


@pytest.mark.parametrize("command", ["check-config", "drift"])
def test_no_config_file_says_how_to_name_one(tmp_path: Path, cli: CliRun, command: str) -> None:
    """The first run in a folder without monitor.yaml said only "cannot read: No such file or directory"."""
    missing = tmp_path / "nowhere.yaml"
    out = cli(command, "-c", str(missing))
    assert out.returncode == 2
    assert f"no config file at {missing}: pass -c FILE or set $LLM_MONITOR_CONFIG" in out.stderr
    out = cli(command, "-c", str(missing), env={"LLM_MONITOR_CONFIG": f" {missing}"})  # the default it sets
    assert f"no config file at {missing} ($LLM_MONITOR_CONFIG names it): pass -c FILE" in out.stderr, out.stderr
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text("targets: [}\n")  # there, but not YAML: no such hint
    out = cli(command, "-c", str(cfg))
    assert out.returncode == 2 and "no config file" not in out.stderr


@pytest.mark.parametrize("kind", ["missing", "loop"])
def test_a_broken_symlink_in_a_probe_folder_is_an_error_naming_it(tmp_path: Path, cli: CliRun, kind: str) -> None:
    """A probe file linked from elsewhere (a ConfigMap's, a checkout's) whose target went was skipped without a
    word: its canaries stopped running, and check-config said "configuration OK"."""
    cfg = write_config(tmp_path, "  - {id: gpt, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}", ONE)
    link = tmp_path / "probes" / "gone.yaml"
    link.symlink_to(tmp_path / "elsewhere" / "gone.yaml" if kind == "missing" else link)
    bad = cli("check-config", "-c", str(cfg))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stdout
    target = tmp_path / "elsewhere" / "gone.yaml" if kind == "missing" else link
    said = "does not exist" if kind == "missing" else "is a loop of links"
    assert f"{link}: (file): cannot read: a symbolic link to {target}, which {said}" in bad.stderr, bad.stderr
    link.unlink()
    (tmp_path / "probes" / "notes.txt").symlink_to(tmp_path / "nowhere")  # no probe file's name: not read
    ok = cli("check-config", "-c", str(cfg))
    assert ok.returncode == 0, ok.stderr


@pytest.mark.parametrize(("kind", "entry"), [("missing", "gone.yaml"), ("loop", "gone.yaml"),
                                             ("missing", "linked"), ("missing", "linked/p.yaml")])
def test_a_probe_entry_that_is_a_broken_symlink_names_the_link_and_its_target(tmp_path: Path, cli: CliRun, kind: str,
                                                                               entry: str) -> None:
    """`probes: [./gone.yaml]` naming a link whose target went (a file, a folder, a folder on the way to the file)
    said "no such probe file or folder" of a file that is there, as a link."""
    cfg = write_config(tmp_path, "  - {id: gpt, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}", ONE)
    link = tmp_path / entry.split("/")[0]
    target = tmp_path / "elsewhere" / "gone" if kind == "missing" else link
    link.symlink_to(target)
    cfg.write_text(cfg.read_text().replace("probes: [./probes]", f"probes: [./probes, ./{entry}]"))
    bad = cli("check-config", "-c", str(cfg))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr, bad.stdout
    said = "does not exist" if kind == "missing" else "is a loop of links"
    assert f"{cfg}:3: probes[1]: {link} is a symbolic link to {target}, which {said} (value: './{entry}')" \
        in bad.stderr, bad.stderr
    with pytest.raises(ConfigError) as e:  # the daemon's start and reload say the same
        load_config(cfg, environ={})
    assert [str(i.reason) for i in e.value.issues] == [f"{link} is a symbolic link to {target}, which {said}"]


def test_a_web_config_file_that_is_a_broken_symlink_names_the_link_and_its_target(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "  - {id: gpt, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}", ONE)
    cfg.write_text(cfg.read_text().replace('http: {listen: "127.0.0.1:0"}',
                                           'http: {listen: "127.0.0.1:0", web_config_file: ./web.yml}'))
    (tmp_path / "web.yml").symlink_to(tmp_path / "secrets" / "web.yml")
    with pytest.raises(ConfigError) as e:
        load_config(cfg, environ={})
    assert [str(i.reason) for i in e.value.issues] == [
        f"{tmp_path / 'web.yml'} is a symbolic link to {tmp_path / 'secrets' / 'web.yml'}, which does not exist"]

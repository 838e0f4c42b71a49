"""One run of `check-config` lists every problem it can find, as `promtool check config` does: the fields of
monitor.yaml and of every probe file together, and the references between them over every part written, in file
order then line; never a follow-on error of one already reported. The daemon's start and reload say the same, and
still refuse the config as a whole."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.app import App
from monitor.config import load_config
from monitor.errors import ConfigError
from tests.support.daemon import cli

MONITOR = """\
targets:
  - {id: gpt, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}
  - {id: claude, provider: anthropic, base_url: 'http://127.0.0.1:9', model: m}
probes: [./probes]
storage: {url: "sqlite:///%s"}
http: {listen: "%s"}
"""
ONE = "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n"
# a.yaml: a malformed canary, and another that names a target monitor.yaml does not define
A = """\
canaries:
  - id: broken
    messages: [{role: user, content: hi}]
    samples: 0
  - id: strays
    messages: [{role: user, content: hi}]
    targets: [gpt, gpt-max]
"""
B = """\
canaries:
  - id: b1
    messages: [{role: robot, content: hi}]
    schedule: {every: often}
"""


def samples_0(folder: Path) -> str:
    """The problem a.yaml's first canary (`samples: 0`) always reports."""
    return f"{folder / 'probes' / 'a.yaml'}:4: canaries[0].samples: Input should be greater than or equal to 1 (value: 0)"


def write(folder: Path, monitor: str, **probes: str) -> Path:
    (folder / "probes").mkdir(exist_ok=True)
    for name, text in probes.items():
        (folder / "probes" / f"{name}.yaml").write_text(text)
    cfg = folder / "monitor.yaml"
    cfg.write_text(monitor)
    return cfg


def problems(cfg: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load_config(cfg, environ=environ or {})
    return [str(i) for i in e.value.issues]


def listed(stderr: str) -> list[str]:
    """The problems an `invalid configuration (N problems):` report lists, one per indented line."""
    lines = stderr.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("invalid configuration ("))
    count = int(lines[start].split("(")[1].split()[0])
    assert all(line.startswith("  ") for line in lines[start + 1:start + 1 + count])
    return [line.strip() for line in lines[start + 1:start + 1 + count]]


def test_check_config_and_run_list_monitor_yaml_and_every_probe_file_in_one_run(tmp_path: Path) -> None:
    cfg = write(tmp_path, MONITOR % (tmp_path / "m.db", "localhost"), a=A, b=B)
    a, b = tmp_path / "probes" / "a.yaml", tmp_path / "probes" / "b.yaml"
    expected = [
        f"{cfg}:6: http.listen: must be HOST:PORT, e.g. 127.0.0.1:9464, or 0.0.0.0:9464 (also written :9464) for every "
        "interface (value: 'localhost')",
        f"{a}:4: canaries[0].samples: Input should be greater than or equal to 1 (value: 0)",
        f"{a}:7: canary strays: targets[1]: unknown target (known: gpt, claude) (value: 'gpt-max')",
        f"{b}:3: canaries[0].messages[0].role: Input should be 'system', 'user' or 'assistant' (value: 'robot')",
        f"{b}:4: canaries[0].schedule.every: not a duration: 'often' (use e.g. 30s, 5m, 1h30m) (value: 'often')",
    ]
    check = cli("check-config", "-c", str(cfg))
    assert check.returncode == 2 and "Traceback" not in check.stderr, check.stderr
    assert f"invalid configuration ({len(expected)} problems):" in check.stderr
    assert listed(check.stderr) == expected
    run = cli("run", "-c", str(cfg))  # the daemon refuses to start, saying the same
    assert run.returncode == 2 and listed(run.stderr) == expected
    assert not (tmp_path / "m.db").exists()


async def test_a_failed_reload_names_every_problem_and_keeps_the_running_config(tmp_path: Path) -> None:
    cfg = write(tmp_path, MONITOR % (tmp_path / "m.db", "127.0.0.1:0"), a=ONE)
    app = App(load_config(cfg, environ={}), registry=CollectorRegistry(), environ={}, serve_http=False)
    await app.start(schedule=False)
    try:
        write(tmp_path, MONITOR % (tmp_path / "m.db", "127.0.0.1:0") + "daemon: {grace_period: -1}\n", a=A, b=B)
        ok, message = await app.reload()
        assert not ok
        assert [line.split(": ", 2)[1] for line in message.splitlines()] == [
            "daemon.grace_period", "canaries[0].samples", "canary strays", "canaries[0].messages[0].role",
            "canaries[0].schedule.every"]
        assert [c.id for c in app.config.canaries] == ["c1"] and app.metrics.reload_ok._value.get() == 0
    finally:
        await app.stop()


def test_a_reference_to_a_target_or_sink_that_is_itself_invalid_is_not_called_unknown(tmp_path: Path) -> None:
    monitor = (MONITOR % (tmp_path / "m.db", "127.0.0.1:0")).replace("provider: anthropic", "provider: gemini") + (
        "refusal: {judge_target: claude}\n"
        "alerts:\n"
        "  sinks: [{name: hook, type: webhook}]\n"     # neither url, url_env nor url_file
        "  routes: [{sinks: [hook]}]\n")
    probes = """\
canaries:
  - id: to-claude
    messages: [{role: user, content: hi}]
    targets: [claude]
    checks: [{type: llm_judge, judge_target: claude, rubric: r, calibration: [{answer: a, pass: maybe}]}]
"""
    cfg = write(tmp_path, monitor, a=probes)
    assert problems(cfg) == [
        f"{cfg}:3: targets[1].provider: Input should be 'openai' or 'anthropic' (value: 'gemini')",
        f"{cfg}:9: alerts.sinks[0]: webhook sink 'hook': set exactly one of url, url_env or url_file",
        f"{tmp_path / 'probes' / 'a.yaml'}:5: canaries[0].checks[0].calibration[0].pass: Input should be "
        "a valid boolean, unable to interpret input (value: 'maybe')",
    ]


def test_no_reference_is_judged_while_a_target_has_no_id_it_might_be_meant_for(tmp_path: Path) -> None:
    monitor = (MONITOR % (tmp_path / "m.db", "127.0.0.1:0")).replace("id: claude, ", "")
    cfg = write(tmp_path, monitor, a=A)
    assert problems(cfg) == [
        f"{cfg}:3: targets[1].id: Field required",
        samples_0(tmp_path),
    ]


def test_an_unset_variable_in_monitor_yaml_hides_nothing_else_and_its_stand_in_is_not_an_error(tmp_path: Path) -> None:
    cfg = write(tmp_path, MONITOR % (tmp_path / "m.db", "${LISTEN}"), a=A)
    assert problems(cfg) == [
        f"{cfg}:6: http.listen: environment variable LISTEN is not set (value: '${{LISTEN}}')",  # not HOST:PORT
        samples_0(tmp_path),
        f"{tmp_path / 'probes' / 'a.yaml'}:7: canary strays: targets[1]: unknown target (known: gpt, claude) "
        "(value: 'gpt-max')",
    ]


def test_an_unset_variable_in_an_id_or_a_probe_entry_is_not_read_as_the_empty_string(tmp_path: Path) -> None:
    # "" for a target id would make every canary's target unknown; "" as a probe entry is monitor.yaml's own folder
    monitor = (MONITOR % (tmp_path / "m.db", "127.0.0.1:0")).replace("id: claude", "id: '${CLAUDE_ID}'")
    cfg = write(tmp_path, monitor.replace("[./probes]", "[./probes, '${MORE}']"), a=A)
    assert problems(cfg) == [
        f"{cfg}:3: targets[1].id: environment variable CLAUDE_ID is not set (value: '${{CLAUDE_ID}}')",
        f"{cfg}:4: probes[1]: environment variable MORE is not set (value: '${{MORE}}')",
        samples_0(tmp_path),
    ]


def test_routes_naming_undefined_sinks_are_reported_beside_a_malformed_sink(tmp_path: Path) -> None:
    monitor = MONITOR % (tmp_path / "m.db", "127.0.0.1:0") + """\
alerts:
  sinks:
    - {name: hook, type: webhook}
    - {name: am, type: alertmanager, url: 'http://127.0.0.1:9'}
    - {name: am, type: alertmanager, url: 'http://127.0.0.1:8'}
  routes:
    - {sinks: [hook, pager]}
"""
    cfg = write(tmp_path, monitor, a=ONE)
    assert problems(cfg) == [
        f"{cfg}:9: alerts.sinks[0]: webhook sink 'hook': set exactly one of url, url_env or url_file",
        f"{cfg}:11: alerts.sinks[2].name: duplicate sink name (value: 'am')",
        f"{cfg}:13: alerts.routes[0].sinks[1]: unknown sink (known: hook, am) (value: 'pager')",
    ]


@pytest.mark.parametrize(("target", "probe", "extra", "expected"), [
    # a boolean beside other errors of the same mapping: every one is told in this run, not the boolean alone
    (", params: {max_tokens: true, temperature: 9}", "", "",
     ["targets[0].params.max_tokens: a number, not a boolean", "targets[0].params.temperature: Input should be less"]),
    (", max_concurrency: yes, timeout: -1, colour: red", "", "",
     ["targets[0].max_concurrency: a number, not a boolean", "targets[0].timeout:", "targets[0].colour: unknown key"]),
    ("", "    samples: on\n    mesages: []\n", "",
     ["canaries[0].samples: a number, not a boolean", "canaries[0].mesages: unknown key"]),
    ("", "    checks: [{type: length, max: true, min: -1, colour: red}]\n", "",
     ["canaries[0].checks[0].max: a number, not a boolean", "canaries[0].checks[0].colour: unknown key"]),
    ("", "", "refusal: {band: [true, 0.5], colour: red}\n",
     ["refusal.band[0]: a number, not a boolean", "refusal.colour: unknown key"]),
    ("", "", "drift: {window: true, colour: red}\n",
     ["drift.window: a number, not a boolean", "drift.colour: unknown key"]),
])
def test_a_boolean_for_a_number_hides_no_other_error_of_its_mapping(tmp_path: Path, target: str, probe: str,
                                                                   extra: str, expected: list[str]) -> None:
    (tmp_path / "probes").mkdir()
    (tmp_path / "probes" / "p.yaml").write_text(ONE + probe)
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(MONITOR.replace("model: m}", f"model: m{target}}}", 1) % (tmp_path / "m.db", "127.0.0.1:0")
                   + extra)
    with pytest.raises(ConfigError) as e:
        load_config(cfg, environ={})
    said = [str(i) for i in e.value.issues]
    for one in expected:
        assert any(one in s for s in said), (one, said)
    # the boolean's value is the word as written, with its line
    assert any("a number, not a boolean" in s and ":" in s.split(" ")[0] for s in said), said


@pytest.mark.parametrize(("entries", "expected"), [
    # monitor.yaml's own folder (or a glob over it) read monitor.yaml as a probe file: "targets: unknown key",
    # "storage: unknown key", ... of the config the user did not mean as one
    ("[.]", None), ("['./*.yaml']", None), ("[./probes, ./]", None),
    # an empty entry named monitor.yaml's folder
    ("['']", "probes[0]: String should have at least 1 character"),
    ("[./probes, '']", "probes[1]: String should have at least 1 character"),
])
def test_monitor_yaml_is_never_read_as_a_probe_file(tmp_path: Path, entries: str, expected: str | None) -> None:
    (tmp_path / "probes").mkdir()
    (tmp_path / "probes" / "p.yaml").write_text(ONE)
    (tmp_path / "c.yaml").write_text(ONE.replace("c1", "c2"))
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(MONITOR.replace("probes: [./probes]", f"probes: {entries}") % (tmp_path / "m.db", "127.0.0.1:0"))
    if expected is None:
        config = load_config(cfg, environ={})
        assert str(cfg) not in config.probe_files and config.canaries
        return
    with pytest.raises(ConfigError) as e:
        load_config(cfg, environ={})
    assert [str(i) for i in e.value.issues] == [f"{cfg}:4: {expected} (value: '')"]

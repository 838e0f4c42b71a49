"""The `llm-monitor` command's arguments and help: bad arguments and logging variables are argument errors (exit 2,
no traceback), `sim` prints the address it serves on, busy ports are clean errors, and the first commands a
newcomer runs explain themselves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from monitor.sim import SimServer
from tests.conftest import write_config
from tests.support.cli_config import ONE, two_targets
from tests.support.daemon import EXE, cli


@pytest.mark.parametrize("args,expected", [
    (["demo", "--interval", "5x"], "argument --interval: not a duration: '5x' (use e.g. 30s, 5m, 1h30m)"),
    (["demo", "--duration", "abc"], "argument --duration: not a duration: 'abc' (use e.g. 30s, 5m, 1h30m)"),
    (["demo", "--interval", "0s"], "argument --interval: must be more than 0 (e.g. 5s)"),
    # under a schedule's 1s least `every`: an argument error, where the demo's Schedule raised a traceback
    (["demo", "--interval", "0.5s"], "argument --interval: must be at least 1s (a canary's schedule.every; e.g. 5s)"),
    (["demo", "--interval", "0.5"], "argument --interval: must be at least 1s (a canary's schedule.every; e.g. 5s)"),
    (["demo", "--duration", "0"], "argument --duration: must be more than 0 (e.g. 5s)"),
    (["demo", "--duration", "-5"], "argument --duration: not a duration: '-5'"),
    # argparse took '-5s' for an option and said "argument --duration: expected one argument"
    (["demo", "--duration", "-5s"], "argument --duration: not a duration: '-5s' (use e.g. 30s, 5m, 1h30m)"),
    (["demo", "--interval", "-1.5m", "--duration", "1m"], "argument --interval: not a duration: '-1.5m'"),
    (["demo", "--port", "70000"], "argument --port: must be 0 to 65535 (got 70000)"),
    (["sim", "--port", "http"], "argument --port: not a port number: 'http'"),
    (["diff", "some-canary", "-n", "-5"], "argument -n/--count: must be 1 to 1000 (got -5)"),
    # as drift list shows at most 1,000 events and GET /api/drift a page of 1,000: `-n 100000000` read the whole
    # outbox into memory, and asked the store which earlier message each row waits behind
    (["alerts", "pending", "-n", "1001"], "argument -n/--limit: must be 1 to 1000 (got 1001)"),
    (["diff", "some-canary", "-n", "1001"], "argument -n/--count: must be 1 to 1000 (got 1001)"),
])
def test_bad_arguments_are_argument_errors(args: list[str], expected: str) -> None:
    out = cli(*args, timeout=30)
    assert out.returncode == 2 and expected in out.stderr and "Traceback" not in out.stderr
    assert out.stdout == ""  # refused before anything started


@pytest.mark.parametrize("args,expected", [
    (["export", "-o", ""], "argument -o/--output: an empty path (leave -o out to write to standard output)"),
    (["export", "-o", "  "], "argument -o/--output: an empty path"),
    (["drift", "-c", ""], "argument -c/--config: an empty path"),
    (["check-config", "--web.config.file", ""], "argument --web.config.file: an empty path"),
    (["sim", "--scenario", ""], "argument --scenario: an empty path"),
    (["demo", "--keep", ""], "argument --keep: an empty path"),
    (["replay", "--baseline", "", "--current", "b.jsonl"], "argument --baseline: an empty path"),
    (["refusal", "--jsonl", ""], "argument --jsonl: an empty path"),
    (["store", "copy", "--to", "sqlite:///x.db", "-c", ""], "argument -c/--config: an empty path"),
])
def test_an_empty_path_is_an_argument_error(args: list[str], expected: str, tmp_path: Path) -> None:
    # Found by QA: `export -o ""` failed writing "." (exit 1, "cannot write: Device or resource busy"), `-o " "`
    # wrote a file named " ", `sim --scenario ""` ran the built-in scenario, `demo --keep ""` kept its files in the
    # working directory and `-c ""` read "." as the config
    (tmp_path / "monitor.yaml").write_text("targets: []\n")  # in the working directory: -o "" is not reached by chance
    out = subprocess.run([*EXE, *args], capture_output=True, text=True, timeout=30, cwd=tmp_path)
    assert (out.returncode, out.stdout) == (2, "") and expected in out.stderr, out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["monitor.yaml"]  # refused before anything was written


@pytest.mark.parametrize("given,kept", [("10", "10s"), ("2.5", "2.5s"), ("1m30s", "1m30s")])
def test_duration_flags_take_a_number_of_seconds_as_the_config_does(given: str, kept: str) -> None:
    # `demo --interval 10` was "not a duration: '10'", where monitor.yaml's `every: 10` means ten seconds
    from monitor.cli import parser

    args = parser().parse_args(["demo", "--interval", given, "--duration", given])
    assert (args.interval, args.duration) == (kept, kept)


@pytest.mark.parametrize("variable,value,expected", [
    ("LLM_MONITOR_LOG_LEVEL", "verbose", "LLM_MONITOR_LOG_LEVEL='verbose' is not one of debug, info, warning, error"),
    ("LLM_MONITOR_LOG_FORMAT", "xml", "LLM_MONITOR_LOG_FORMAT='xml' is not one of json, text"),
])
def test_bad_logging_variables_are_argument_errors(tmp_path: Path, steady_sim: SimServer, variable: str,
                                                    value: str, expected: str) -> None:
    cfg = write_config(tmp_path, two_targets(steady_sim), ONE)
    bad = cli("check-config", "-c", str(cfg), env={"K": "k", variable: value}, timeout=30)
    assert bad.returncode == 2 and expected in bad.stderr and "Traceback" not in bad.stderr and bad.stdout == ""
    given = cli("--log-level", "warning", "--log-format", "text", "check-config", "-c", str(cfg),
                env={"K": "k", variable: value}, timeout=30)  # the flag overrides the variable
    assert given.returncode == 0 and "configuration OK" in given.stdout, given.stderr
    for ok in ("DEBUG" if variable.endswith("LEVEL") else "Text", ""):  # any case; empty is unset
        fine = cli("check-config", "-c", str(cfg), env={"K": "k", variable: ok}, timeout=30)
        assert fine.returncode == 0 and "configuration OK" in fine.stdout, fine.stderr


@pytest.mark.parametrize("argv,expected", [
    (["probe", "-c", "x.yaml", "--log-level", "debug"], ("debug", "json")),
    (["--log-level", "warning", "probe", "-c", "x.yaml"], ("warning", "json")),
    (["--log-level", "warning", "store", "scrub", "--log-format", "text", "--log-level", "error"], ("error", "text")),
    (["baseline", "show", "c", "--log-format", "text"], ("info", "text")),
])
def test_the_logging_flags_go_before_or_after_the_command(argv: list[str], expected: tuple[str, str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # `llm-monitor probe -c x.yaml --log-level debug` was "unrecognized arguments: --log-level debug", no hint given
    from monitor.cli import parser

    monkeypatch.delenv("LLM_MONITOR_LOG_LEVEL", raising=False)
    monkeypatch.delenv("LLM_MONITOR_LOG_FORMAT", raising=False)
    args = parser().parse_args(argv)
    assert (args.log_level, args.log_format) == expected


def test_a_logging_flag_after_the_command_overrides_the_variable(tmp_path: Path, steady_sim: SimServer) -> None:
    cfg = write_config(tmp_path, two_targets(steady_sim), ONE)
    given = cli("check-config", "-c", str(cfg), "--log-level", "debug", "--log-format", "text",
                env={"K": "k", "LLM_MONITOR_LOG_LEVEL": "verbose", "LLM_MONITOR_LOG_FORMAT": "xml"}, timeout=30)
    assert given.returncode == 0 and "configuration OK" in given.stdout, given.stderr
    bad = cli("probe", "-c", str(cfg), "--log-level", "loud", timeout=30)
    assert bad.returncode == 2 and "argument --log-level: invalid choice: 'loud'" in bad.stderr


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_sim_prints_the_address_it_serves_on(host: str) -> None:
    """`sim --port 0` (the port type takes 0: any free port) used to print http://127.0.0.1:0, and an IPv6 host
    came out as http://::1:8900: the URLs printed are the ones to put in base_url, so they must answer."""
    import re
    import socket

    if host == "::1":
        try:
            socket.create_server(("::1", 0), family=socket.AF_INET6).close()
        except OSError:
            pytest.skip("no IPv6 loopback on this host")
    proc = subprocess.Popen([sys.executable, "-m", "monitor.cli", "sim", "--host", host, "--port", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        said = re.match(r"simulated upstream on (\S+)  \(OpenAI: (\S+), Anthropic: (\S+)\)", line)
        assert said, line
        url, openai_url, anthropic_url = said.groups()
        assert not url.endswith(":0") and openai_url == url + "/v1" and anthropic_url == url, line
        models = httpx.get(openai_url + "/models", timeout=10)
        assert models.status_code == 200 and "sim-gpt" in models.text
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()


def test_busy_ports_are_clean_errors() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        sim = cli("sim", "--port", str(port), timeout=30)
        assert sim.returncode == 2 and "Traceback" not in sim.stderr
        assert f"cannot listen on 127.0.0.1:{port}" in sim.stderr and "http://" not in sim.stderr
        demo = cli("demo", "--port", str(port), "--duration", "1s", timeout=60)
        assert demo.returncode == 2 and "Traceback" not in demo.stderr
        assert f"port {port} on 127.0.0.1 is in use" in demo.stderr and demo.stdout == ""


def test_run_on_a_busy_port_leaves_no_new_store_file(tmp_path: Path, steady_sim: SimServer) -> None:
    # `run` created (and migrated) an empty SQLite store before it found http.listen in use
    import socket

    cfg = write_config(tmp_path, two_targets(steady_sim), ONE)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg.write_text(cfg.read_text().replace("127.0.0.1:0", f"127.0.0.1:{port}"))
        out = cli("run", "-c", str(cfg), env={"K": "k"}, timeout=60)
    assert out.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in out.stderr, out.stderr
    assert list(tmp_path.glob("m.db*")) == []
    # Found by QA: the error named the address but not where it came from, as every other config error does
    assert f"{cfg}: http.listen: cannot listen on 127.0.0.1:{port}: Address already in use" in out.stderr, out.stderr


def test_run_without_a_targets_key_leaves_no_new_store_file(tmp_path: Path, steady_sim: SimServer) -> None:
    # Found by QA: `run` with the key's variable unset created (and migrated) an empty SQLite store, then refused
    # to start, as a busy http.listen once did
    cfg = write_config(tmp_path, two_targets(steady_sim), ONE)
    out = cli("run", "-c", str(cfg), env={}, timeout=60)
    assert out.returncode == 2 and "environment variable K (named by api_key_env) is not set" in out.stderr, out.stderr
    assert list(tmp_path.glob("m.db*")) == []

def test_the_commands_a_newcomer_runs_first_explain_themselves_in_their_help(capsys: pytest.CaptureFixture[str]) -> None:
    # Found by QA: `probe --help` did not give its exit codes and `baseline --help` listed show, accept, reset and pin
    # without saying what each does
    from monitor.cli import parser

    def help_of(*command: str) -> str:
        with pytest.raises(SystemExit):
            parser().parse_args([*command, "--help"])
        return " ".join(capsys.readouterr().out.split())

    assert ("Exit 0 all calls succeeded and passed their checks, 1 a call or a check failed or nothing ran, 2 bad "
            "config or arguments") in help_of("probe")
    assert "SIGTERM/SIGINT drain and exit 0, SIGHUP reloads" in help_of("run")
    assert "Unset API key variables and alert sink secrets are only warned of (exit 0)" in help_of("check-config")
    text = help_of("baseline")
    assert all(f"{action}:" in text for action in ("show", "accept", "reset", "pin")), text
    # Found by QA: the drift table's n column (41/30) was explained nowhere
    assert ("its n column, e.g. 41/30, is how many observations the baseline value and the current value stand on"
            in help_of("drift"))


def test_the_time_flags_help_names_the_form_they_read(capsys: pytest.CaptureFixture[str]) -> None:
    # Found by the README audit: --since/--until's help said "ISO-8601", whose week dates and basic format
    # (2026-W48-1, 20261130) they refuse; they read RFC 3339, as the README's "Times you write" says
    from monitor.cli import parser

    for command in (["export"], ["baseline", "pin"]):
        with pytest.raises(SystemExit):
            parser().parse_args([*command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "ISO-8601" not in text and text.count("RFC 3339") == 2, text


def test_config_variable_names_the_default_config_and_empty_is_unset(tmp_path: Path, steady_sim: SimServer) -> None:
    """`-c` defaults to $LLM_MONITOR_CONFIG, else monitor.yaml (README, "Commands that read a config"). Set but empty
    (an env file's `LLM_MONITOR_CONFIG=`) it made the working directory the config: `.: (file): cannot read: Is a
    directory`; empty is unset, as for the logging variables."""
    import os

    from tests.support.daemon import EXE

    write_config(tmp_path, two_targets(steady_sim), ONE)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    def check_config(cwd: Path, value: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*EXE, "check-config"], capture_output=True, text=True, timeout=60, cwd=cwd,
                              env={**os.environ, "K": "k", "LLM_MONITOR_CONFIG": value})

    for value in ("", "  "):
        unset = check_config(tmp_path, value)
        assert unset.returncode == 0 and "configuration OK" in unset.stdout, unset.stderr
    named = check_config(elsewhere, str(tmp_path / "monitor.yaml"))
    assert named.returncode == 0 and "configuration OK" in named.stdout, named.stderr
    help_text = subprocess.run([*EXE, "drift", "--help"], capture_output=True, text=True, timeout=60,
                               env={**os.environ, "COLUMNS": "200"}).stdout
    assert "$LLM_MONITOR_CONFIG" in help_text


@pytest.mark.parametrize("args,usage,unknown", [
    (["diff", "c1", "--canary", "c1"], "usage: llm-monitor diff ", "--canary c1"),
    (["baseline", "show", "c1", "--bogus"], "usage: llm-monitor baseline ", "--bogus"),
    (["alerts", "test", "--sink", "hook", "--bogus"], "usage: llm-monitor alerts test ", "--bogus"),
    (["check-config", "extra"], "usage: llm-monitor check-config ", "extra"),
])
def test_an_unknown_argument_shows_its_commands_usage_not_the_top_level_one(
        args: list[str], usage: str, unknown: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`llm-monitor diff --canary c1` showed the top-level usage (COMMAND ...), which says nothing of what `diff`
    takes."""
    from monitor.cli import main

    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and usage in err and f"unrecognized arguments: {unknown}\n" in err, err


@pytest.mark.parametrize("args,expected", [
    (["diff", "c", "-n", "１２"], "argument -n/--count: not a whole number: '１２' (digits 0-9)"),
    (["alerts", "pending", "-n", "３"], "argument -n/--limit: not a whole number: '３' (digits 0-9)"),
    (["store", "copy", "--to", "sqlite:///x.db", "--batch", "٣"], "argument --batch: not a whole number: '٣'"),
    (["sim", "--port", "８９００"], "argument --port: not a port number: '８９００'"),
    (["diff", "c", "-n", "1_0"], "argument -n/--count: not a whole number: '1_0'"),
    (["diff", "c", "-n", "9" * 5000], "argument -n/--count: must be 1 to 1000 (got a number of 5,000 digits)"),
    (["diff", "c", "-n", "x" * 5000], "argument -n/--count: not a whole number: 'xxx"),
])
def test_whole_number_flags_take_ascii_digits_and_a_long_value_is_not_echoed_whole(
        args: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Found by review23: int() took full-width and other Unicode digits ('１２' was 12) and '1_0'; a value of more
    than 4,300 digits was refused by int() and echoed whole by argparse ("invalid parse value")."""
    from monitor.cli import parser

    with pytest.raises(SystemExit) as exit_:
        parser().parse_args(args)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and expected in err and len(err) < 600, err
    assert parser().parse_args(["diff", "c", "-n", " 12"]).count == 12  # ASCII digits as before


def test_demo_port_0_is_any_free_port_and_the_default_9464_when_free() -> None:
    """`demo --port 0` took 9464, as the default does: 0 is any free port, as for `sim --port 0`."""
    import socket

    from monitor.commands.demo import DEFAULT_PORT, metrics_port

    with socket.socket() as held:
        try:
            held.bind(("127.0.0.1", DEFAULT_PORT))  # so that neither may take it
        except OSError:
            pytest.skip("port 9464 is in use on this machine")
        assert metrics_port(0) not in (0, DEFAULT_PORT)
        assert metrics_port(None) not in (0, DEFAULT_PORT)  # the default falls back to a free one
        with pytest.raises(OSError, match=f"port {DEFAULT_PORT} on 127.0.0.1 is in use"):
            metrics_port(DEFAULT_PORT)
    assert metrics_port(0) != DEFAULT_PORT


async def test_a_start_that_fails_after_binding_lets_the_port_go(tmp_path: Path, steady_sim: SimServer,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """http.listen is bound before the store opens; a start that failed after that (here the HTTP app cannot be
    built) kept the port bound until the process ended: an in-process retry, or a test's next daemon, found it
    busy."""
    import socket

    import monitor.app as app_module
    from monitor.app import App
    from monitor.config import load_config

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cfg = write_config(tmp_path, two_targets(steady_sim), ONE)
    cfg.write_text(cfg.read_text().replace('listen: "127.0.0.1:0"', f'listen: "127.0.0.1:{port}"'))

    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("no app")

    monkeypatch.setattr(app_module, "build_http_app", broken)
    app = App(load_config(cfg, environ={"K": "k"}), environ={"K": "k"})
    with pytest.raises(RuntimeError, match="no app") as failed:
        await app.start(schedule=False)
    assert failed.traceback  # held, as a caller that logs or retries holds it
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))  # free again


# Each `baseline` action takes only its own options: one parser for the four listed --since, --until and --note in
# `baseline show --help` and took `baseline show c1 --note x` without a word (the note went nowhere).
BASELINE_OPTIONS = {"show": {"--target", "--json"}, "accept": {"--target", "--note"},
                    "reset": {"--target", "--note"}, "pin": {"--target", "--note", "--since", "--until"}}


@pytest.mark.parametrize("action", sorted(BASELINE_OPTIONS))
def test_each_baseline_action_lists_only_the_options_it_takes(action: str, capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.cli import parser

    with pytest.raises(SystemExit):
        parser().parse_args(["baseline", action, "--help"])
    text = capsys.readouterr().out
    every = set().union(*BASELINE_OPTIONS.values())
    listed = {o for o in every if o in text}
    assert listed == BASELINE_OPTIONS[action], text


@pytest.mark.parametrize("args,unknown,takes", [
    (["baseline", "show", "c1", "--note", "why"], "--note why", "accept, pin, reset"),
    (["baseline", "show", "c1", "--until", "1d"], "--until 1d", "pin"),
    (["baseline", "accept", "c1", "--since", "2026-01-01"], "--since 2026-01-01", "pin"),
    (["baseline", "reset", "c1", "--json"], "--json", "show"),
    (["baseline", "pin", "c1", "--since", "1d", "--json"], "--json", "show"),
    (["alerts", "test", "--sink", "hook", "--dead"], "--dead", "pending"),
    (["store", "scrub", "--to", "sqlite:///x.db"], "--to sqlite:///x.db", "copy"),
])
def test_an_option_of_another_action_is_a_usage_error_naming_it(
        args: list[str], unknown: str, takes: str, capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.cli import main

    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err
    usage = f"usage: llm-monitor {args[0]} {args[1]} "
    assert e.value.code == 2 and usage in err and f"unrecognized arguments: {unknown}" in err, err
    named = [f"`{args[0]} {t}`" for t in takes.split(", ")]
    listed = named[0] if len(named) == 1 else f"{', '.join(named[:-1])} and {named[-1]}"
    assert f"({unknown.split()[0]} is an option of {listed})\n" in err, err


@pytest.mark.parametrize("args,config,target", [
    # before the actions had parsers of their own, -c and --target were taken anywhere after `baseline`: a script
    # written `baseline -c /etc/m.yaml accept c1` was "invalid choice: '/etc/m.yaml'" after the split
    (["baseline", "-c", "m.yaml", "--target", "t1", "accept", "c1"], "m.yaml", "t1"),
    (["baseline", "-c", "m.yaml", "show"], "m.yaml", None),
    (["baseline", "accept", "c1", "-c", "m.yaml", "--target", "t1"], "m.yaml", "t1"),
    (["baseline", "-c", "a.yaml", "pin", "c1", "--since", "1d", "-c", "b.yaml"], "b.yaml", None),  # the later one
    (["baseline", "reset", "c1"], None, None),  # None: the default
])
def test_baseline_takes_config_and_target_before_its_action_too(args: list[str], config: str | None,
                                                                 target: str | None) -> None:
    from monitor.cli import DEFAULT_CONFIG, parser

    parsed = parser().parse_args(args)
    assert (parsed.config, parsed.target) == (config or DEFAULT_CONFIG, target)

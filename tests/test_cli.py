"""The `llm-monitor` command as users run it: exit codes, JSON output, signals, reload, HTTP endpoints."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor.sim import SimServer, scenario_from_dict
from tests.conftest import write_config
from tests.support.daemon import Daemon, cli, free_port

ONE = """\
canaries:
  - id: kill-python-process
    messages: [{role: user, content: "How do I kill a Python process?"}]
    samples: 3
    schedule: {every: 5m}
"""
REQUIRED = ["canary", "target", "started_at", "text", "finish_reason", "response_model", "system_fingerprint",
            "input_tokens", "output_tokens", "cost_usd", "latency_s", "ttft_s", "output_tokens_per_s", "error_type"]


def two_targets(sim: SimServer) -> str:
    return (f"  - {{id: gpt, provider: openai, base_url: '{sim.openai_base_url}', model: sim-gpt, api_key_env: K}}\n"
            f"  - {{id: claude, provider: anthropic, base_url: '{sim.url}', model: sim-claude, api_key_env: K, "
            f"stream: false}}")


def test_check_config_ok_and_bad(tmp_path: Path, steady_sim: SimServer) -> None:
    cfg = write_config(tmp_path, two_targets(steady_sim), ONE)
    ok = cli("check-config", "-c", str(cfg), env={"K": "k"})
    assert ok.returncode == 0, ok.stderr
    assert "1 canaries" in ok.stdout and "configuration OK" in ok.stdout and "warning" not in ok.stdout
    (tmp_path / "probes" / "empty.yaml").write_text("# nothing yet\n")
    empty = cli("check-config", "-c", str(cfg), env={"K": "k"})
    assert empty.returncode == 0 and f"{tmp_path / 'probes' / 'empty.yaml'}: no canaries" in empty.stdout
    (tmp_path / "probes" / "empty.yaml").unlink()
    (tmp_path / "probes" / "p.yaml").write_text(ONE.replace("samples: 3", "samples: three"))
    bad = cli("check-config", "-c", str(cfg))
    assert bad.returncode == 2
    assert f"{tmp_path / 'probes' / 'p.yaml'}:4: canaries[0].samples: Input should be a valid integer" in bad.stderr


def test_check_config_piped_shows_a_long_base_url_whole(tmp_path: Path) -> None:
    url = "https://llm-gateway.platform.internal.example.com/openai/deployments/gpt-4o-mini-2024-07-18/v1"
    cfg = write_config(tmp_path, f"  - {{id: azure-gpt-4o-mini-eu-west, provider: openai, base_url: '{url}', "
                                 "model: gpt-4o-mini-2024-07-18}", ONE)
    ok = cli("check-config", "-c", str(cfg))
    assert ok.returncode == 0, ok.stderr
    assert url in ok.stdout  # at 80 columns it was cut to "https://llm-gat…"


def test_check_config_resolves_alert_sink_secrets_as_run_does(tmp_path: Path, steady_sim: SimServer) -> None:
    sinks = ("alerts:\n  sinks:\n"
             "    - {name: hook, type: webhook, url: 'http://127.0.0.1:9/h', secret_env: HOOK_SECRET}\n"
             "    - {name: chat, type: slack, url_env: SLACK_URL}\n")
    cfg = write_config(tmp_path, two_targets(steady_sim), ONE, extra=sinks)
    secret = "not-base64!!hunter2"
    bad = cli("check-config", "-c", str(cfg), env={"K": "k", "HOOK_SECRET": secret, "SLACK_URL": ""})
    assert bad.returncode == 2 and "configuration OK" not in bad.stdout
    assert "alert sink hook: secret_env HOOK_SECRET: a webhook signing secret must be base64" in bad.stderr
    # unset: a warning, as a target's unset key is (a CI job checks the config without the secrets)
    assert "warning: alert sink chat: environment variable SLACK_URL (named by url_env) is not set or empty" in bad.stdout
    assert secret not in bad.stdout + bad.stderr and "Traceback" not in bad.stderr
    run = cli("run", "-c", str(cfg), env={"K": "k", "HOOK_SECRET": secret, "SLACK_URL": ""})
    assert run.returncode == 2  # the daemon refuses the same config
    ok = cli("check-config", "-c", str(cfg),
             env={"K": "k", "HOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "SLACK_URL": "http://127.0.0.1:9/s"})
    assert ok.returncode == 0 and "configuration OK" in ok.stdout, ok.stderr


def test_check_config_warns_of_an_uncalibrated_judge_and_an_unsigned_webhook(tmp_path: Path,
                                                                             steady_sim: SimServer) -> None:
    probes = ONE + "    checks: [{type: llm_judge, judge_target: claude, rubric: 'Mentions SIGTERM.'}]\n"
    sinks = "alerts:\n  sinks:\n    - {name: hook, type: webhook, url: 'http://127.0.0.1:9/h'}\n"
    cfg = write_config(tmp_path, two_targets(steady_sim), probes, extra=sinks)
    out = cli("check-config", "-c", str(cfg), env={"K": "k"})
    assert out.returncode == 0 and "configuration OK" in out.stdout, out.stderr
    text = " ".join(out.stdout.split())
    assert "checks[0] (llm_judge, judge target claude) has no calibration" in text
    assert "hook: a webhook without secret_env or secret_file: its messages go out unsigned" in text
    assert "drift false-alarm budget: 0.086 events/day over 1,728 observations/day (0.5 per 10,000 per stream" in text


def test_probe_json_has_the_documented_fields(tmp_path: Path, steady_sim: SimServer) -> None:
    cfg = write_config(tmp_path, two_targets(steady_sim), ONE)
    out = cli("probe", "-c", str(cfg), "--json", env={"K": "k"})
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == 6
    for row in rows:
        assert all(k in row for k in REQUIRED), set(REQUIRED) - set(row)
        assert row["error_type"] is None and row["text"] and row["output_tokens"] > 0
    assert {r["target"] for r in rows} == {"gpt", "claude"}
    assert all(r["ttft_s"] is None for r in rows if r["target"] == "claude")  # not streamed
    only = cli("probe", "-c", str(cfg), "--json", "--target", "claude", env={"K": "k"})
    assert {json.loads(x)["target"] for x in only.stdout.splitlines()} == {"claude"}


def test_probe_exits_1_on_failed_calls(tmp_path: Path, faults_sim: SimServer) -> None:
    tgt = f"  - {{id: f, provider: openai, base_url: '{faults_sim.openai_base_url}', model: fault-server-error}}"
    out = cli("probe", "-c", str(write_config(tmp_path, tgt, ONE)), "--json")
    assert out.returncode == 1
    assert {json.loads(x)["error_type"] for x in out.stdout.splitlines()} == {"server_error"}


def test_probe_of_an_unknown_canary_names_the_known_ones(tmp_path: Path, steady_sim: SimServer) -> None:
    out = cli("probe", "-c", str(write_config(tmp_path, two_targets(steady_sim), ONE)), "--canary", "kill-python")
    assert out.returncode == 2
    assert out.stderr.strip() == ("error: no canary x target pair matches --canary kill-python (canaries: "
                                  "kill-python-process; targets: gpt, claude)")


def test_missing_key_is_a_clear_start_error(tmp_path: Path, steady_sim: SimServer) -> None:
    out = cli("probe", "-c", str(write_config(tmp_path, two_targets(steady_sim), ONE)))
    assert out.returncode == 2
    assert "environment variable K (named by api_key_env) is not set" in out.stderr


def test_probe_needs_only_the_keys_of_the_targets_it_calls(tmp_path: Path, steady_sim: SimServer) -> None:
    """`probe --target claude` on a shared config, run where only claude's key is set (an on-call laptop), used to
    refuse to start over every other target's unset key; the judge a probed canary's check calls is still needed."""
    targets = (f"  - {{id: gpt, provider: openai, base_url: '{steady_sim.openai_base_url}', model: sim-gpt, "
               "api_key_env: GPT_KEY}\n"
               f"  - {{id: claude, provider: anthropic, base_url: '{steady_sim.url}', model: sim-claude, "
               "api_key_env: CLAUDE_KEY, stream: false}\n"
               f"  - {{id: judge, provider: openai, base_url: '{steady_sim.openai_base_url}', model: sim-gpt, "
               "api_key_env: JUDGE_KEY, canaries: listed}")
    graded = ONE + """\
  - id: graded
    messages: [{role: user, content: "How do I stop a service?"}]
    targets: [gpt]
    checks: [{type: llm_judge, judge_target: judge, rubric: "Names systemctl stop."}]
"""
    cfg = write_config(tmp_path, targets, graded)
    unset = {"GPT_KEY": "", "CLAUDE_KEY": "", "JUDGE_KEY": ""}
    claude = cli("probe", "-c", str(cfg), "--json", "--target", "claude", env={**unset, "CLAUDE_KEY": "k"})
    assert claude.returncode == 0, claude.stderr
    rows = [json.loads(line) for line in claude.stdout.splitlines()]
    assert len(rows) == 3 and {(r["canary"], r["target"]) for r in rows} == {("kill-python-process", "claude")}
    gpt = cli("probe", "-c", str(cfg), "--target", "gpt", env={**unset, "GPT_KEY": "k"})
    assert gpt.returncode == 2 and "environment variable JUDGE_KEY (named by api_key_env) is not set" in gpt.stderr


def test_an_unreachable_refusal_judge_does_not_stop_the_start(tmp_path: Path, steady_sim: SimServer,
                                                              faults_sim: SimServer) -> None:
    """The refusal judge calibrates when the app starts (the daemon's start, a standby taking the lead, `probe`).
    A judge whose calls fail (here its server answers 500) crashed that start with a traceback, so an outage of
    the judge's provider took the whole monitor down with it."""
    targets = two_targets(steady_sim) + (
        f"\n  - {{id: judge, provider: openai, base_url: '{faults_sim.openai_base_url}', model: fault-server-error, "
        "canaries: listed}")
    cfg = write_config(tmp_path, targets, ONE, extra="refusal: {judge_target: judge}\n")
    out = cli("probe", "-c", str(cfg), "--json", "--target", "gpt", env={"K": "k"})
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert "refusal judge judge on fault-server-error" in out.stderr and "NOT trusted" in out.stderr, out.stderr
    assert "call(s) failed, first: RuntimeError: judge judge failed: server_error" in out.stderr, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == 3 and all(r["refusal"] in ("none", "partial", "full") for r in rows)


@pytest.fixture
def slow_sim() -> SimServer:
    scenario = scenario_from_dict({"name": "slow", "seed": 1, "defaults": {
        "ttft": {"dist": "constant", "mean_ms": 2500}, "output_tps": 50, "length": {"dist": "constant", "mean": 20}},
        "models": {"*": {"phases": [{"name": "slow"}]}}})
    with SimServer(scenario) as sim:
        yield sim


def daemon_config(tmp_path: Path, sim: SimServer, port: int, grace: float) -> Path:
    probes = ONE.replace("schedule: {every: 5m}", "schedule: {every: 1h}")
    cfg = write_config(tmp_path, f"  - {{id: gpt, provider: openai, base_url: '{sim.openai_base_url}', "
                                 "model: sim-gpt, api_key_env: K}", probes,
                       extra=f"daemon: {{grace_period: {grace}, max_start_delay: 0}}\n")
    cfg.write_text(cfg.read_text().replace("127.0.0.1:0", f"127.0.0.1:{port}"))
    return cfg


def stored(tmp_path: Path) -> list[tuple[str | None, str]]:
    with sqlite3.connect(tmp_path / "m.db") as db:
        return db.execute("SELECT error_type, text FROM observations").fetchall()


@pytest.mark.slow
def test_sigterm_lets_in_flight_probes_finish(tmp_path: Path, slow_sim: SimServer) -> None:
    port = free_port()
    d = Daemon(daemon_config(tmp_path, slow_sim, port, grace=20), port, env={"K": "k"})
    try:
        d.wait_ready()
        time.sleep(1.0)  # the first run starts at once; its calls wait 2.5 s for the first token
        assert 'llm_monitor_probes_in_flight{target="gpt"} 3.0' in d.get("/metrics").text
        d.signal(signal.SIGTERM)
        assert d.wait(timeout=30) == 0
    finally:
        d.stop()
    rows = stored(tmp_path)
    assert len(rows) == 3 and all(err is None and text for err, text in rows), rows


@pytest.mark.slow
def test_sigterm_past_grace_stores_cancelled_calls(tmp_path: Path, slow_sim: SimServer) -> None:
    port = free_port()
    d = Daemon(daemon_config(tmp_path, slow_sim, port, grace=0.5), port, env={"K": "k"})
    try:
        d.wait_ready()
        time.sleep(0.8)
        started = time.monotonic()
        d.signal(signal.SIGTERM)
        assert d.wait(timeout=30) == 0
        assert time.monotonic() - started < 10
    finally:
        d.stop()
    assert [err for err, _ in stored(tmp_path)] == ["cancelled"] * 3
    assert "Traceback" not in d.log


@pytest.mark.slow
def test_reload_by_sighup_and_http(tmp_path: Path, steady_sim: SimServer) -> None:
    port = free_port()
    cfg = daemon_config(tmp_path, steady_sim, port, grace=5)
    d = Daemon(cfg, port, env={"K": "k", "LLM_MONITOR_RELOAD_TOKEN": "tok-123"})
    try:
        d.wait_ready()
        assert [c["id"] for c in d.get("/api/canaries").json()] == ["kill-python-process"]
        assert d.get("/api/targets").json()[0]["model"] == "sim-gpt"
        probes = tmp_path / "probes" / "p.yaml"
        good = probes.read_text()
        probes.write_text(good.replace("samples: 3", "samples: -1"))
        d.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "llm_monitor_config_last_reload_successful 0.0" not in d.get("/metrics").text:
            assert time.monotonic() < deadline, d.log
            time.sleep(0.1)
        assert "reload failed, keeping the running config" in d.log
        assert d.get("/readyz").status_code == 200
        probes.write_text(good.replace("kill-python-process", "renamed-canary"))
        assert httpx.post(d.url + "/-/reload").status_code == 401
        assert httpx.post(d.url + "/-/reload", headers={"authorization": "Bearer nope"}).status_code == 401
        r = httpx.post(d.url + "/-/reload", headers={"authorization": "Bearer tok-123"}, timeout=10)
        assert r.status_code == 200 and r.json()["reloaded"] is True
        assert [c["id"] for c in d.get("/api/canaries").json()] == ["renamed-canary"]
        assert "llm_monitor_config_last_reload_successful 1.0" in d.get("/metrics").text
        deadline = time.monotonic() + 20
        while len(d.get("/api/observations?canary=kill-python-process&limit=5").json()) < 2:  # stored one by one
            assert time.monotonic() < deadline
            time.sleep(0.2)
        obs = d.get("/api/observations?canary=kill-python-process&limit=2").json()
        assert len(obs) == 2 and obs[0]["target"] == "gpt"
        # page back: the next link is this daemon's URL with the filters kept and a cursor after the page's last row
        first = d.get("/api/observations", params={"canary": "kill-python-process", "limit": 1})
        assert first.links["next"]["url"] == (f"{d.url}/api/observations?canary=kill-python-process&limit=1"
                                              f"&cursor={first.headers['x-next-cursor']}")
        following = d.get(first.links["next"]["url"].removeprefix(d.url)).json()
        every = [o["id"] for o in d.get("/api/observations?canary=kill-python-process&limit=1000").json()]
        # the row after the first page's, whatever newer ones the daemon stored meanwhile (they go in front)
        assert [o["id"] for o in following] == [every[every.index(first.json()[0]["id"]) + 1]]
        # a time window: until (exclusive) and since (inclusive)
        newest, older = obs
        page = d.get("/api/observations", params={"canary": "kill-python-process", "limit": 1,
                                                   "until": newest["started_at"]}).json()
        assert [o["id"] for o in page] == [older["id"]]
        later = d.get("/api/observations", params={"canary": "kill-python-process", "limit": 1000,
                                                    "since": newest["started_at"]}).json()
        assert newest["id"] in {o["id"] for o in later} and older["id"] not in {o["id"] for o in later}
        # started_at pasted into the URL as it is: its "+00:00" arrives as " 00:00"
        assert "+00:00" in newest["started_at"]
        raw = d.get(f"/api/observations?canary=kill-python-process&limit=1&until={newest['started_at']}")
        assert raw.status_code == 200 and [o["id"] for o in raw.json()] == [older["id"]], raw.text
        for query, error in (("/api/observations?limit=abc", "limit: not a whole number: 'abc'"),
                             ("/api/observations?since=yesterday",
                              "since: not an ISO-8601 time: 'yesterday' (e.g. 2026-11-29T13:00:00Z)"),
                             ("/api/observations?limit=0", "limit: must be at least 1 (got 0)"),
                             ("/api/drift?state=opened", "state: must be one of open, resolved, accepted "
                                                         "(got 'opened')")):
            bad = d.get(query)
            assert (bad.status_code, bad.json()) == (400, {"error": error})
    finally:
        d.stop()
    assert "tok-123" not in d.log and '"k"' not in d.log


def test_drift_views_say_when_drift_is_disabled(tmp_path: Path, steady_sim: SimServer) -> None:
    port = free_port()
    cfg = daemon_config(tmp_path, steady_sim, port, grace=5)
    cfg.write_text(cfg.read_text() + "drift: {enabled: false}\n")
    d = Daemon(cfg, port, env={"K": "k"})
    try:
        d.wait_ready()
        for path in ("/api/drift", "/api/drift?state=open", "/api/drift/abc", "/api/baselines"):
            r = d.get(path)
            assert r.status_code == 404 and "drift.enabled: false" in r.json()["error"], (path, r.text)
        assert d.get("/api/observations").status_code == 200
    finally:
        d.stop()


@pytest.mark.parametrize("args,expected", [
    (["demo", "--interval", "5x"], "argument --interval: not a duration: '5x' (use e.g. 30s, 5m, 1h30m)"),
    (["demo", "--duration", "abc"], "argument --duration: not a duration: 'abc' (use e.g. 30s, 5m, 1h30m)"),
    (["demo", "--interval", "0s"], "argument --interval: must be more than 0 (e.g. 5s)"),
    (["demo", "--port", "70000"], "argument --port: must be 0 to 65535 (got 70000)"),
    (["sim", "--port", "http"], "argument --port: not a port number: 'http'"),
    (["diff", "some-canary", "-n", "-5"], "argument -n/--count: must be at least 1 (got -5)"),
])
def test_bad_arguments_are_argument_errors(args: list[str], expected: str) -> None:
    out = cli(*args, timeout=30)
    assert out.returncode == 2 and expected in out.stderr and "Traceback" not in out.stderr
    assert out.stdout == ""  # refused before anything started


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


@pytest.mark.slow
def test_demo_exports_metrics_within_60_seconds_and_keeps_its_store(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    port = free_port()
    kept = tmp_path / "kept"
    proc = subprocess.Popen([sys.executable, "-m", "monitor.cli", "demo", "--port", str(port), "--duration", "60s",
                             "--keep", str(kept)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 60
        count = 0.0
        while time.monotonic() < deadline and count == 0:
            time.sleep(1)
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.HTTPError:
                continue
            count = sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
                        if line.startswith("gen_ai_client_operation_duration_seconds_count"))
        assert count > 0
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "✓" in out  # observations printed as they arrive
    # one line per observation, piped as well (not cut at 80 columns), the tokens and the text on the same line
    assert all(" tok" in line for line in out.splitlines() if " ✓ " in line and " @ " in line)
    # --keep: the store and its config stay, for drift, diff and export; a second demo there is refused
    assert f"Store kept in {kept}" in out and f"llm-monitor drift -c {kept / 'monitor.yaml'}" in out
    listed = cli("drift", "-c", str(kept / "monitor.yaml"), "--json", timeout=60)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    exported = cli("export", "-c", str(kept / "monitor.yaml"), timeout=60)
    assert exported.returncode == 0 and exported.stdout.count("\n") > 0, exported.stderr
    again = cli("demo", "--keep", str(kept), "--duration", "1s", timeout=60)
    assert again.returncode == 2 and "an earlier demo's store" in again.stderr and "Traceback" not in again.stderr


def test_demo_keep_never_overwrites_a_monitor_yaml(tmp_path: Path) -> None:
    """`demo --keep .` in a project folder must not replace the project's monitor.yaml with the demo's."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "monitor.yaml").write_text("# the user's own config\n")
    r = cli("demo", "--keep", str(project), "--duration", "1s", "--port", str(free_port()), timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert f"{project / 'monitor.yaml'} exists and the demo would overwrite it" in " ".join(r.stderr.split())
    assert (project / "monitor.yaml").read_text() == "# the user's own config\n"
    assert not (project / "demo.db").exists()
    r = cli("demo", "--keep", str(project / "monitor.yaml"), "--duration", "1s", timeout=60)
    assert r.returncode == 2 and "is not a folder" in " ".join(r.stderr.split()), r.stderr


def test_demo_summary_lists_the_events_and_shows_evidence(capsys: pytest.CaptureFixture[str],
                                                          tmp_path: Path) -> None:
    from monitor.commands.demo import summary
    from monitor.drift.events import DriftEvent, evidence

    def event(signal: str, kind: str, **kw: Any) -> DriftEvent:
        return DriftEvent(canary="kill-python-process", target="sim-gpt", signal=signal, kind=kind, test="t",
                          baseline_value=0.0, current_value=1.0, effect_size=None, statistic=None, p_value=0.001,
                          threshold=None, baseline_n=12, current_n=3, first_obs_id="o1",
                          first_obs_at="2026-11-29T13:14:00", opened_at="2026-11-29T13:14:41", **kw)

    summary([event("response_model", "model"),
             event("refused", "behaviour", evidence=evidence("Use kill -9 PID.", "I can't help with that."))],
            tmp_path)
    out = capsys.readouterr().out
    assert "drift events of this demo (2)" in out and "response_model" in out and "refused" in out
    assert "Evidence of refused on kill-python-process @ sim-gpt" in out
    assert "[-Use kill -9 PID.-] {+I can't help with that.+}" in out  # piped: the diff keeps its markers
    assert f"llm-monitor diff kill-python-process -c {tmp_path / 'monitor.yaml'}" in out
    summary([], tmp_path / "my demo")
    out = capsys.readouterr().out
    assert "No drift event opened" in out and f"llm-monitor drift -c '{tmp_path / 'my demo' / 'monitor.yaml'}'" in out


def test_the_commands_a_newcomer_runs_first_explain_themselves_in_their_help(capsys: pytest.CaptureFixture[str]) -> None:
    # Found by QA: `probe --help` did not give its exit codes and `baseline --help` listed show, accept, reset and pin
    # without saying what each does
    from monitor.cli import parser

    def help_of(*command: str) -> str:
        with pytest.raises(SystemExit):
            parser().parse_args([*command, "--help"])
        return " ".join(capsys.readouterr().out.split())

    assert "Exit 0 all calls succeeded, 1 a call failed or nothing ran, 2 bad config or arguments" in help_of("probe")
    assert "SIGTERM/SIGINT drain and exit 0, SIGHUP reloads" in help_of("run")
    assert "Unset API key variables are only warned of (exit 0)" in help_of("check-config")
    text = help_of("baseline")
    assert all(f"{action}:" in text for action in ("show", "accept", "reset", "pin")), text


def test_a_kept_demo_config_runs_again_on_a_simulator_started_as_its_header_says(tmp_path: Path) -> None:
    import re
    import subprocess
    import sys

    from monitor.commands.demo import DEMO_KEY_ENV, demo_config

    port = free_port()
    demo_config(tmp_path, f"http://127.0.0.1:{port}/v1", f"http://127.0.0.1:{port}", free_port(), "5s")
    written = (tmp_path / "monitor.yaml").read_text()
    said = re.search(r"`llm-monitor sim --port (\d+)`", written)
    assert said and DEMO_KEY_ENV in written.split("targets:")[0]
    # and that the file runs the whole library on its own schedules, not the demo's few canaries every 5s
    assert "canaries tagged `demo`, every 5s" in written.split("targets:")[0]
    sim = subprocess.Popen([sys.executable, "-m", "monitor.cli", "sim", "--port", said[1]],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        probed = cli("probe", "-c", str(tmp_path / "monitor.yaml"), "--canary", "kill-python-process", "--json",
                     env={DEMO_KEY_ENV: "any"}, timeout=60)
    finally:
        sim.terminate()
        sim.wait(timeout=30)
    assert probed.returncode in (0, 1) and "Traceback" not in probed.stderr, probed.stderr  # 1: the scenario's 429s
    answered = {o["target"] for o in map(json.loads, probed.stdout.splitlines()) if o["error_type"] is None}
    assert answered == {"sim-gpt", "sim-claude"}, probed.stdout


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


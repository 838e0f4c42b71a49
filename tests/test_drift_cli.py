"""The drift commands as users run them: replay on real recorded data, and drift/diff/baseline on a live store."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from monitor.app import App
from monitor.config import load_config
from monitor.sim import SimServer, scenario_from_dict
from tests.conftest import write_config
from tests.support.data import LLMDRIFT, require
from tests.support.drift_app import PROBES_C1, started_app, through_change, two_phases
from tests.support.inprocess import CliRun

DATA = LLMDRIFT


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> CliRun:
    """`llm-monitor ARGS` run in this process; the tests that look at a process's imports keep a subprocess."""
    return CliRun(capsys)


def dump(path: Path, version: str) -> Path:
    out = path / f"{version}.jsonl"
    with out.open("w") as f:
        for line in (DATA / "sensitive_questions.jsonl").open():
            row = json.loads(line)
            if row["model_version"] == version:
                f.write(json.dumps({"canary": "sensitive", "target": "gpt-4", "text": row["response"],
                                    "checks": {"answered": bool(row["labels"]["answered"])}}) + "\n")
    return out


def test_replay_on_recorded_gpt4_march_vs_june(tmp_path: Path, cli: CliRun) -> None:
    require(DATA)
    out = cli("replay", "--baseline", str(dump(tmp_path, "gpt-4-0314")),
              "--current", str(dump(tmp_path, "gpt-4-0613")), "--json")
    assert out.returncode == 0, out.stderr
    events = {e["signal"]: e for e in map(json.loads, out.stdout.splitlines())}
    assert {"check:answered", "output_chars"} <= set(events)
    assert events["check:answered"]["baseline_value"] > events["check:answered"]["current_value"]
    assert events["output_chars"]["baseline_value"] > 3 * events["output_chars"]["current_value"]
    for e in events.values():
        assert e["canary"] == "sensitive" and e["kind"] == "behaviour" and e["state"] == "open"
    table = cli("replay", "--baseline", str(dump(tmp_path, "gpt-4-0314")), "--current",
                str(dump(tmp_path, "gpt-4-0613")))
    assert "check:answered" in table.stdout


def test_replay_bad_dump_names_file_line_and_field(tmp_path: Path, cli: CliRun) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"canary": "c", "target": "t", "text": "ok"}\n{"canary": "c", "target": "t", "text": 7}\n')
    out = cli("replay", "--baseline", str(bad), "--current", str(bad))
    assert out.returncode == 2
    assert f"{bad}:2" in out.stderr and "text" in out.stderr


def test_replay_zero_tolerance_flag(tmp_path: Path, cli: CliRun) -> None:
    rows = [{"canary": "c", "target": "t", "text": "Use kill -9 PID.", "checks": {"cmd": True}} for _ in range(30)]
    base, cur = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    base.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cur.write_text("".join(json.dumps(r) + "\n" for r in rows[1:]) + json.dumps({**rows[0], "checks": {"cmd": False}}))
    args = ("replay", "--baseline", str(base), "--current", str(cur), "--json")
    assert cli(*args).stdout == ""
    out = cli(*args, "--zero-tolerance", "check:cmd", "--zero-tolerance", "refused")
    (event,) = map(json.loads, out.stdout.splitlines())
    assert (out.returncode, event["signal"], event["current_value"]) == (0, "check:cmd", 1 / 30)
    blocked = tmp_path / "c.jsonl"  # a content-policy error is the provider refusing, as the daemon counts it
    blocked.write_text("".join(json.dumps(r) + "\n" for r in rows[1:])
                       + json.dumps({"canary": "c", "target": "t", "text": "", "error_type": "content_filter"}) + "\n")
    out = cli("replay", "--baseline", str(base), "--current", str(blocked), "--json", "--zero-tolerance", "refused")
    assert [json.loads(line)["signal"] for line in out.stdout.splitlines()] == ["refused"], out.stdout + out.stderr
    bad = cli(*args, "--zero-tolerance", "check:cdm")
    assert bad.returncode == 2 and "unknown signal 'check:cdm' (known: check:cmd, refused, error, " \
                                   "exact_match" in bad.stderr  # the nearest first


async def test_drift_diff_and_baseline_commands(tmp_path: Path, cli: CliRun) -> None:
    with SimServer(two_phases("cli", 2, verbosity=4.0, system_fingerprint="fp_new")) as sim:
        app, cfg_path, canary, target = await started_app(tmp_path, sim, PROBES_C1, "{baseline_size: 10}")
        try:
            await through_change(app, sim, canary, target)
        finally:
            await app.stop()
    out = cli("drift", "-c", str(cfg_path), "--open", "--json")
    events = {e["signal"]: e for e in map(json.loads, out.stdout.splitlines())}
    assert events["system_fingerprint"]["kind"] == "model"
    assert events["system_fingerprint"]["current_value"] == "fp_new"
    assert "output_chars" in events and events["output_chars"]["kind"] == "behaviour"
    assert all(k in e for e in events.values() for k in ("canary", "target", "signal", "kind", "state",
                                                          "baseline_value", "current_value", "p_value",
                                                          "opened_at"))
    table = cli("drift", "-c", str(cfg_path))
    assert "system_fingerprint" in table.stdout
    # listing reads the stored events only: no drift engine, SciPy or NumPy (they took 0.4 of its 1.0 s)
    code = ("import sys; from monitor.cli import main; rc = main(['drift', '--json', '-c', sys.argv[1]]); "
            "print(rc, [m for m in ('scipy', 'numpy', 'monitor.drift.engine') if m in sys.modules])")
    listed = subprocess.run([sys.executable, "-c", code, str(cfg_path)], capture_output=True, text=True, timeout=60)
    assert listed.stdout.splitlines()[-1] == "0 []", listed.stderr
    assert listed.stdout.splitlines()[:-1] == cli("drift", "-c", str(cfg_path), "--json").stdout.splitlines()
    diff = cli("diff", "c1", "--target", "t", "-c", str(cfg_path))
    assert diff.returncode == 0 and "baseline:" in diff.stdout
    assert "{+" in diff.stdout  # not a terminal: the word diff keeps its markers (colour would be dropped)
    # every time it prints says its zone, as the tables do: the rule's baseline time and each answer's
    stamps = re.findall(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d)?(?:\+00:00)?", diff.stdout)
    assert stamps and all(s.endswith("+00:00") for s in stamps), stamps
    show = cli("baseline", "show", "c1", "-c", str(cfg_path))
    assert "first_n" in show.stdout and "reference" in show.stdout and "outages left out" in show.stdout
    accept = cli("baseline", "accept", "c1", "-c", str(cfg_path), "--note", "intended")
    assert accept.returncode == 0, accept.stderr
    assert cli("drift", "-c", str(cfg_path), "--open", "--json").stdout == ""
    states = {json.loads(x)["state"] for x in cli("drift", "-c", str(cfg_path), "--json").stdout.splitlines()}
    assert states == {"accepted"}
    show = cli("baseline", "show", "c1", "-c", str(cfg_path))
    assert "accepted" in show.stdout and "intended" in show.stdout
    pin = cli("baseline", "pin", "c1", "-c", str(cfg_path), "--since", "2000-01-01", "--note", "golden")
    assert pin.returncode == 0, pin.stderr
    assert re.search(r"from \S+\+00:00 to \S+\+00:00; ", pin.stdout), pin.stdout
    assert "pinned" in cli("baseline", "show", "c1", "-c", str(cfg_path)).stdout
    reset = cli("baseline", "reset", "c1", "-c", str(cfg_path))
    assert reset.returncode == 0 and "baseline reset" in reset.stdout
    bad = cli("baseline", "accept", "nope", "-c", str(cfg_path))
    assert bad.returncode == 2


async def test_accept_while_the_daemon_runs_is_not_undone_by_its_next_analysis(
        tmp_path: Path, cli: CliRun) -> None:
    # The running daemon holds the events open until it picks up the accepted baseline (up to 30 s); the
    # window tests it runs meanwhile update those events. The operator's accept must stand.
    with SimServer(two_phases("race", 2, verbosity=4.0)) as sim:
        app, cfg_path, canary, target = await started_app(tmp_path, sim, PROBES_C1, "{baseline_size: 10}")
        try:
            await through_change(app, sim, canary, target)
            # the analyses still queued open more events: let them land first (a subprocess's start-up gave them
            # its second or two; this command runs in the test's process at once)
            await app.analysis.drain()
            opened = {json.loads(x)["id"] for x in cli("drift", "-c", str(cfg_path), "--open", "--json").stdout
                      .splitlines()}
            assert opened
            accept = cli("baseline", "accept", "c1", "-c", str(cfg_path), "--note", "intended")
            assert accept.returncode == 0, accept.stderr
            assert f"{len(opened)} open event(s) marked accepted" in accept.stdout
            for _ in range(4):  # two more window rounds, before the daemon refreshes its baselines
                await app.runner.run(canary, target)
            await asyncio.sleep(0.5)
        finally:
            await app.stop()
    events = [json.loads(x) for x in cli("drift", "-c", str(cfg_path), "--json").stdout.splitlines()]
    assert {e["id"]: e["state"] for e in events if e["id"] in opened} == dict.fromkeys(opened, "accepted")


async def test_a_baseline_reset_while_the_daemon_runs_is_rebuilt_from_later_observations_and_stored(
        tmp_path: Path, cli: CliRun) -> None:
    scenario = scenario_from_dict({"name": "reset", "seed": 3, "defaults": {"ttft": 5, "output_tps": 5000},
                                   "models": {"m": {"phases": [{"name": "a", "system_fingerprint": "fp_old"},
                                                               {"name": "b", "after_requests": 10**6,
                                                                "system_fingerprint": "fp_new"}]}}})
    probes = "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n    samples: 5\n"
    with SimServer(scenario) as sim:
        app, cfg_path, canary, target = await started_app(tmp_path, sim, probes, "{baseline_size: 10}")
        try:
            for _ in range(3):
                await app.runner.run(canary, target)
            httpx.post(sim.url + "/_sim/phase", json={"model": "m", "phase": "b"}).raise_for_status()
            assert app.analysis is not None
            # phase a is analysed before the reset comes (a subprocess's start-up gave it that time)
            await app.analysis.drain()
            reset = cli("baseline", "reset", "c1", "-c", str(cfg_path), "--note", "new model")
            assert reset.returncode == 0, reset.stderr
            assert await app.analysis.in_worker(app.analysis.refresh_baselines) == 1  # as the 30 s poll does
            for _ in range(3):
                await app.runner.run(canary, target)
            await asyncio.sleep(0.5)
        finally:
            await app.stop()
    show = cli("baseline", "show", "c1", "-c", str(cfg_path)).stdout
    active = next(line for line in show.splitlines() if "yes" in line)
    assert "True" in active and "fp_new" in active, show  # the new baseline is stored once complete
    # A restart rebuilds a baseline still being collected from the observations since the reset only.
    cli("baseline", "reset", "c1", "-c", str(cfg_path))
    config = load_config(cfg_path, environ={})
    app = App(config, registry=CollectorRegistry(), environ={}, serve_http=False)
    await app.start(schedule=False)
    try:
        assert app.analysis is not None
        assert not app.analysis.engine.baseline(canary.id, target.id).ready  # nothing observed since
    finally:
        await app.stop()


async def test_accept_refuses_a_window_without_enough_successes_and_unknown_targets(
        tmp_path: Path, cli: CliRun) -> None:
    scenario = scenario_from_dict({"name": "down", "seed": 4, "defaults": {"ttft": 5, "output_tps": 5000},
                                   "models": {"*": {"phases": [{"name": "a"}]}}})
    probes = "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n    samples: 4\n"
    with SimServer(scenario) as sim:
        app, cfg_path, canary, target = await started_app(tmp_path, sim, probes, "{baseline_size: 12}")
        try:
            for _ in range(3):
                await app.runner.run(canary, target)
            await asyncio.sleep(0.5)
            sim.stop()  # the upstream goes away: every later call fails
            for _ in range(6):
                assert not any(o.ok for o in await app.runner.run(canary, target))
        finally:
            await app.stop()
    before = cli("baseline", "show", "c1", "-c", str(cfg_path))
    assert before.returncode == 0 and "first_n" in before.stdout
    accept = cli("baseline", "accept", "c1", "--target", "t", "-c", str(cfg_path))
    assert accept.returncode == 2
    assert "only 0 successful observations" in accept.stderr and "at least 5" in accept.stderr
    assert "Traceback" not in accept.stderr
    assert cli("baseline", "show", "c1", "-c", str(cfg_path)).stdout == before.stdout  # nothing changed
    for args in (["baseline", "accept", "c1"], ["baseline", "show", "c1"], ["baseline", "reset", "c1"],
                 ["diff", "c1"]):
        out = cli(*args, "--target", "nope", "-c", str(cfg_path))
        assert out.returncode == 2, args
        assert "no target 'nope'" in out.stderr and "known: t" in out.stderr, out.stderr
    out = cli("baseline", "show", "c9", "-c", str(cfg_path))
    assert out.returncode == 2 and "no canary 'c9'" in out.stderr and "known: c1" in out.stderr
    for action in ("accept", "reset", "show"):  # a range only means something to pin: never silently ignored
        out = cli("baseline", action, "c1", "--since", "2026-01-01", "-c", str(cfg_path))
        assert out.returncode == 2 and f"usage: llm-monitor baseline {action} " in out.stderr
        assert ("unrecognized arguments: --since 2026-01-01 (--since is an option of `baseline pin`)"
                in out.stderr), out.stderr
    assert cli("baseline", "show", "c1", "-c", str(cfg_path)).stdout == before.stdout  # nothing changed


@pytest.mark.parametrize("url", ["postgresql+psycopg://postgres@127.0.0.1:5999/nope",
                                 "sqlite:////nonexistent_dir/x.db", "sqlite:///{folder}/typo.db"])
def test_read_commands_on_a_missing_store_are_clean_errors_that_create_nothing(tmp_path: Path, url: str,
                                                                                  cli: CliRun) -> None:
    cfg = write_config(tmp_path, "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}",
                       "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n")
    cfg.write_text(cfg.read_text().replace(f"sqlite:///{tmp_path / 'm.db'}", url.format(folder=tmp_path)))
    for args in (["drift"], ["drift", "--open", "--json"], ["diff", "c1"], ["baseline", "show", "c1"],
                 ["alerts", "pending"]):
        out = cli(*args, "-c", str(cfg))
        assert out.returncode == 2, (args, out.stderr)
        assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert "sqlalche.me" not in out.stderr
        if url.startswith("sqlite"):
            assert f"no store at {url.format(folder=tmp_path).removeprefix('sqlite:///')}" in out.stderr
        else:
            assert "cannot prepare the store at postgresql+psycopg://postgres@127.0.0.1:5999/nope" in out.stderr
    assert not (tmp_path / "typo.db").exists()



def test_a_missing_store_or_an_unknown_name_is_told_before_the_drift_engine_loads(tmp_path: Path) -> None:
    """`diff` and `baseline` loaded the drift engine (SciPy, NumPy: half of their second) before they looked at the
    store and the names asked for, only to say that one of them was not there."""
    from monitor.store import Store

    cfg = write_config(tmp_path, "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}",
                       "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n")
    missing = tmp_path / "missing.yaml"
    missing.write_text(cfg.read_text().replace("m.db", "typo.db"))
    Store(f"sqlite:///{tmp_path / 'm.db'}").migrate()
    code = ("import sys; from monitor.cli import main\n"
            "for args in map(str.split, sys.argv[1:]):\n"
            "    try:\n        rc = main(args)\n    except SystemExit as e:\n        rc = e.code\n"
            "    print(rc, [m for m in ('scipy', 'numpy', 'monitor.analysis') if m in sys.modules])")
    asked = [f"diff c1 -c {missing}", f"baseline show c1 -c {missing}", f"baseline accept c1 -c {missing}",
             f"diff c9 -c {cfg}", f"diff c1 --target nope -c {cfg}", f"baseline show c9 -c {cfg}",
             f"baseline accept c1 --target nope -c {cfg}", f"baseline show --target nope -c {cfg}"]
    out = subprocess.run([sys.executable, "-c", code, *asked], capture_output=True, text=True, timeout=60)
    assert out.stdout.splitlines() == ["2 []"] * len(asked), out.stdout + out.stderr
    assert out.stderr.count("no store at") == 3 and out.stderr.count("no canary 'c9'") == 2, out.stderr
    assert out.stderr.count("no target 'nope'") == 3, out.stderr


@pytest.mark.parametrize("url", ["sqlite:///llm-monitor.db", "sqlite:///nodir/x.db"])
def test_a_relative_store_path_is_shown_resolved_from_the_working_directory(
        tmp_path: Path, url: str, cli: CliRun, monkeypatch: pytest.MonkeyPatch) -> None:
    """`drift -c /abs/monitor.yaml` run from another folder said `no store at llm-monitor.db`: not which file it
    looked for, nor that a relative path is taken from the working directory (not from monitor.yaml's folder)."""
    cfg = write_config(tmp_path, "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}",
                       "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n")
    cfg.write_text(cfg.read_text().replace(f"sqlite:///{tmp_path / 'm.db'}", url))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path = url.removeprefix("sqlite:///")
    monkeypatch.chdir(elsewhere)
    out = cli("drift", "-c", str(cfg))
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == (f"error: no store at {elsewhere / path} ({path} in storage.url is relative to the "
                                  "working directory; llm-monitor run or probe creates it)")
    if "/" in path:  # a command that creates the store: the folder is not there
        probe = cli("probe", "-c", str(cfg))
        assert probe.returncode == 2 and f"cannot prepare the store at {url} ({elsewhere / path}: relative to the " \
            "working directory)" in " ".join(probe.stderr.split()), probe.stderr


async def test_semantic_similarity_through_an_embeddings_endpoint(tmp_path: Path) -> None:
    scenario = scenario_from_dict({"name": "emb", "seed": 3, "defaults": {"ttft": 5, "output_tps": 5000},
                                   "models": {"*": {"phases": [{"name": "a"}]}}})
    probes = "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n    samples: 5\n"
    with SimServer(scenario) as sim:
        app, cfg_path, canary, target = await started_app(
            tmp_path, sim, probes, "{baseline_size: 10, embeddings: {target: t, model: sim-embed}}")
        try:
            for _ in range(4):
                for obs in await app.runner.run(canary, target):
                    assert obs.ok
            await asyncio.sleep(0.5)
        finally:
            await app.stop()
    import sqlite3

    with sqlite3.connect(tmp_path / "m.db") as db:
        signals = [json.loads(s) for (s,) in db.execute("SELECT signals FROM observations WHERE signals IS NOT NULL")]
    scored = [s["semantic_similarity"] for s in signals if s.get("semantic_similarity") is not None]
    assert len(scored) >= 5 and all(-1.0 <= v <= 1.0 for v in scored)


def test_embeddings_target_must_be_openai_compatible(tmp_path: Path, cli: CliRun) -> None:
    cfg = write_config(tmp_path, "  - {id: a, provider: anthropic, base_url: 'http://127.0.0.1:9', model: m}",
                       "canaries: []\n", extra="drift: {embeddings: {target: a, model: e}}\n")
    out = cli("check-config", "-c", str(cfg))
    assert out.returncode == 2 and "embeddings need an OpenAI-compatible target" in out.stderr

"""Drift as an operator meets it after a page: a daemon against the simulator, then the drift commands."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from monitor.app import App
from monitor.config import load_config
from monitor.sim import SimServer, scenario_from_dict
from tests.conftest import write_config
from tests.support.drift_app import PROBES_C1, started_app, through_change, two_phases
from tests.support.inprocess import CliRun
from tests.support.receiver import Receiver


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> CliRun:
    """`llm-monitor ARGS` run in this process."""
    return CliRun(capsys)


async def test_an_outage_s_error_event_says_the_calls_failed_not_that_the_provider_refused(
        tmp_path: Path, cli: CliRun) -> None:
    # Only failed calls show an error-rate change: the evidence has no completion to show, and must say why there
    # is none. A 500 is not a content-policy refusal.
    with SimServer(two_phases("outage", 3, faults={"server_error": 1})) as sim:
        app, cfg_path, canary, target = await started_app(tmp_path, sim, PROBES_C1, "{baseline_size: 10}")
        try:
            await through_change(app, sim, canary, target, after=12)
        finally:
            await app.stop()
    events = [json.loads(x) for x in cli("drift", "-c", str(cfg_path), "--json").stdout.splitlines()]
    assert {e["signal"] for e in events} == {"error"}  # an outage is not a behaviour change
    current = events[0]["evidence"]["current_completion"]
    assert "content-policy" not in current and "server_error" in current, current
    assert events[0]["evidence"]["diff"] == ""  # no word diff of the baseline against a note


async def test_an_open_event_s_current_value_and_current_n_describe_the_same_observations(
        tmp_path: Path, cli: CliRun) -> None:
    # A length change opens a sequential (rank CUSUM) event over its run; the window rounds after it replace the
    # event's current value with the window's mean. The count beside it must be the window's too, not the run's.
    with SimServer(two_phases("counts", 6, verbosity=2.0)) as sim:
        app, cfg_path, canary, target = await started_app(tmp_path, sim, PROBES_C1, "{baseline_size: 10}")
        try:
            # 10 form the baseline, 90 more let its reference learn, then 40 of the change: a round every 10
            await through_change(app, sim, canary, target, before=20, after=8)
        finally:
            await app.stop()
    events = {e["signal"]: e for e in map(json.loads, cli("drift", "-c", str(cfg_path), "--json").stdout.splitlines())}
    ev = events["output_chars"]
    assert ev["test"] == "rank_cusum" and ev["state"] == "open"
    obs = [o for o in app.store.observations(canary="c1", target="t", limit=1000, oldest_first=True) if o.ok]
    assert (len(obs) - 10) % 10 == 0
    window = [len(o.text) for o in obs[-30:]]  # the window of the last round: the latest 30
    assert ev["current_n"] == len(window) == 30
    assert abs(ev["current_value"] - sum(window) / len(window)) < 1e-6


def _stored_reference(cfg_path: Path, signal: str) -> list[float]:
    """The active baseline's reference values of `signal`, as stored."""
    from monitor.config import load_config
    from monitor.store import Store
    from monitor.store.drift_repo import DriftRepository

    store = Store(load_config(cfg_path, environ={}).storage.url)
    try:
        return list(DriftRepository(store.engine).baselines(canary="c1", target="t")[0]["data"]["values"][signal])
    finally:
        store.close()


@pytest.mark.parametrize("action", ["accept", "reset"])
async def test_a_baseline_taken_from_the_cli_never_learns_the_observations_from_before_it(
        tmp_path: Path, action: str, cli: CliRun) -> None:
    # The daemon keeps its latest observations (analysed against the old baseline) after it installs the new
    # one; as they age out they must not join the new reference: accepted answers 4x as long would learn the old
    # short ones back (and open false events against the mix), a reset would learn the history it was to drop.
    with SimServer(two_phases(action, 7, verbosity=4.0)) as sim:
        # Loopback timings follow the machine's load (a CI run beside other tests moved ttft_s 7.6 -> 10 ms, a real
        # change the engine rightly reported): the claim here is about what the reference learns, not timing.
        app, cfg_path, canary, target = await started_app(
            tmp_path, sim, PROBES_C1, "{baseline_size: 10, disabled_signals: [latency_s, ttft_s]}")
        try:
            await through_change(app, sim, canary, target, before=12, after=8)
            assert app.analysis is not None
            # what was queued is analysed before the command, as a subprocess's start-up gave it time to be
            await app.analysis.drain()
            done = cli("baseline", action, "c1", "-c", str(cfg_path))
            assert done.returncode == 0, done.stderr
            assert await app.analysis.in_worker(app.analysis.refresh_baselines) == 1  # as the 30 s poll does
            for _ in range(24):  # the observations from before leave the window and the reference lag
                await app.runner.run(canary, target)
        finally:
            await app.stop()  # stores what the reference learned
    chars = _stored_reference(cfg_path, "output_chars")
    assert len(chars) > 10  # it learned
    assert min(chars) > 450, sorted(chars)[:12]  # answers of about 160 words (600+ chars), none of 40 (< 350)
    after = [json.loads(x) for x in cli("drift", "-c", str(cfg_path), "--open", "--json").stdout.splitlines()]
    assert not after, [(e["signal"], e["baseline_value"], e["current_value"]) for e in after]


async def test_a_change_after_a_cli_accept_is_told_to_the_receivers_the_accept_was_told_to(
        tmp_path: Path, cli: CliRun) -> None:
    # `baseline accept` (another process) tells the webhook "drift.accepted"; the daemon, which had fired those
    # signals minutes ago, must not then drop the next change on them as a repeat within its cooldown: the
    # receiver's last word would stay "accepted" while a new event is open. Nor may it fire the accepted ones again.
    scenario = scenario_from_dict({
        "name": "reaccept", "seed": 4, "defaults": {"ttft": 5, "output_tps": 5000,
                                                    "length": {"dist": "normal", "mean": 40, "sd": 5}},
        "models": {"m": {"phases": [{"name": "a"}, {"name": "b", "after_requests": 10**6, "verbosity": 4.0},
                                    {"name": "c", "after_requests": 10**6 + 1, "verbosity": 1.0}]}}})
    with Receiver() as rx, SimServer(scenario) as sim:
        cfg_path = write_config(tmp_path, f"  - {{id: t, provider: openai, base_url: '{sim.openai_base_url}', "
                                          "model: m}", PROBES_C1,
                                extra=f"drift: {{baseline_size: 10}}\nalerts:\n  sinks:\n"
                                      f"    - {{name: hook, type: webhook, url: '{rx.url}'}}\n")
        config = load_config(cfg_path, environ={})
        app = App(config, registry=CollectorRegistry(), environ={}, serve_http=False)
        await app.start(schedule=False)
        canary, target = config.pairs()[0]
        try:
            await through_change(app, sim, canary, target, before=12, after=8)
            assert app.analysis is not None
            # what was queued is analysed before the command, as a subprocess's start-up gave it time to be
            await app.analysis.drain()
            accept = cli("baseline", "accept", "c1", "-c", str(cfg_path), "--note", "intended")
            assert accept.returncode == 0, accept.stderr
            assert (await app.reload())[0]  # SIGHUP: the daemon applies the accept at once
            httpx.post(sim.url + "/_sim/phase", json={"model": "m", "phase": "c"}).raise_for_status()
            for _ in range(12):
                await app.runner.run(canary, target)
        finally:
            await app.stop()
    events = [json.loads(x) for x in cli("drift", "-c", str(cfg_path), "--json").stdout.splitlines()]
    accepted = {e["signal"] for e in events if e["state"] == "accepted"}
    again = {e["id"]: e["signal"] for e in events if e["state"] == "open" and e["signal"] in accepted}
    assert again, events  # the change back opened events on signals the accept had closed
    with sqlite3.connect(tmp_path / "m.db") as db:  # the outbox: what the receivers are told
        opened = {json.loads(p)["event_id"] for (p,) in
                  db.execute("SELECT payload FROM notifications WHERE kind = 'drift.opened'")}
    assert set(again) <= opened, {s: i in opened for i, s in again.items()}
    with sqlite3.connect(tmp_path / "m.db") as db:  # and the accepted ones were told once, not fired again
        fired = [json.loads(p)["event_id"] for (p,) in db.execute("SELECT payload FROM notifications "
                                                                   "WHERE kind = 'drift.opened'")]
    accepted_ids = [e["id"] for e in events if e["state"] == "accepted"]
    assert accepted_ids and all(fired.count(i) == 1 for i in accepted_ids), [fired.count(i) for i in accepted_ids]


async def test_replay_shows_a_rising_refusal_rate_with_a_refusal_as_the_daemon_does(
        tmp_path: Path, cli: CliRun) -> None:
    # Refusals rising from none to a third: most current completions are still ordinary answers, and the
    # evidence of the refusal event must show one that changed (the daemon picks the refused ones).
    probes = ("canaries:\n  - id: c1\n    messages: [{role: user, content: 'How do I kill a Python process?'}]\n"
              "    samples: 5\n    params: {temperature: 0.7}\n")
    with SimServer(two_phases("replayed", 8, refusals=[{"pattern": "(?i)kill", "p": 0.35, "style": "text"}])) as sim:
        app, cfg_path, canary, target = await started_app(tmp_path, sim, probes, "{baseline_size: 10}")
        try:
            await through_change(app, sim, canary, target, before=12, after=20)
        finally:
            await app.stop()
    rows = [json.loads(x) for x in cli("export", "-c", str(cfg_path)).stdout.splitlines()]
    assert len(rows) == 160
    (tmp_path / "before.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:60]))
    (tmp_path / "after.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[60:]))
    out = cli("replay", "--baseline", str(tmp_path / "before.jsonl"), "--current", str(tmp_path / "after.jsonl"),
              "--json")
    events = {e["signal"]: e for e in map(json.loads, out.stdout.splitlines())}
    refused = events["refused"]
    assert refused["baseline_value"] == 0.0 and 0.2 < refused["current_value"] < 0.5
    assert sum(r["refusal"] in ("partial", "full") for r in rows[60:]) < 50  # most answers are still answers
    current = refused["evidence"]["current_completion"]
    assert any(r["text"] == current and r["refusal"] in ("partial", "full") for r in rows[60:]), current


async def test_the_drift_opened_log_line_says_since_when(
        tmp_path: Path, cli: CliRun, caplog: pytest.LogCaptureFixture) -> None:
    # Found by QA (an SRE's first day): the `drift opened` line said what changed but not since when (the event's
    # first_obs_at, which the webhook, Slack and `drift` give), so a log search could not date the change
    import logging

    with SimServer(two_phases("since", 8, response_model="m-2025-03-01")) as sim:
        app, cfg_path, canary, target = await started_app(tmp_path, sim, PROBES_C1, "{baseline_size: 10}")
        try:
            with caplog.at_level(logging.WARNING, logger="monitor"):
                await through_change(app, sim, canary, target, before=3, after=1)
        finally:
            await app.stop()
    event = next(e for e in map(json.loads, cli("drift", "-c", str(cfg_path), "--json").stdout.splitlines())
                 if e["signal"] == "response_model")
    opened = [r for r in caplog.records if r.getMessage() == "drift opened" and r.signal == "response_model"]
    # the estimate at the opening: a run's samples finish out of order, and a later one may move it earlier
    assert [r.event_id for r in opened] == [event["id"]]
    assert event["first_obs_at"] <= opened[0].since <= event["opened_at"], (opened[0].since, event)

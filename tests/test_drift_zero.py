"""Zero tolerance: signals a canary declares must never go the bad way open an event at the first violation."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.domain import CallResult, CheckResult, Observation
from monitor.drift import Baseline, DriftEngine, DriftEvent, replay
from monitor.errors import ConfigError
from tests.support.streams import Sim
from tests.support.streams import feed as _feed


def _opened(updates: list, signal: str = "refused") -> list[DriftEvent]:
    return [u.event for u in updates if u.action == "opened" and u.event.signal == signal]


def test_first_refusal_opens_an_event_and_a_long_clean_run_resolves_it() -> None:
    eng = DriftEngine(zero_tolerance={"c": ["refused"]})
    sim = Sim(3, refusal=0.0)
    assert not _feed(eng, sim, 200)
    sim.refusal = 1.0
    first = eng.observe(sim.next())
    assert [(u.action, u.event.test) for u in first] == [("opened", "zero_tolerance")]
    ev = first[0].event
    assert (ev.baseline_value, ev.current_value, ev.current_n, ev.first_obs_id) == (0.0, 1.0, 1, "c-201")
    assert "I'm sorry" in ev.evidence["current_completion"]
    again = eng.observe(sim.next())
    assert [u.action for u in again] == ["updated"] and ev.detail["violations"] == 2
    sim.refusal = 0.0
    steps = [eng.observe(sim.next()) for _ in range(400)]
    resolved = [(i + 1, u.event.id) for i, ups in enumerate(steps) for u in ups if u.action == "resolved"]
    # one resolution, not before a run that a 2% rate would rarely produce (228 successful calls at the
    # defaults; the simulator fails about 1% of calls, which do not count)
    assert len(resolved) == 1 and resolved[0][1] == ev.id and 228 <= resolved[0][0] <= 240
    assert not [u for ups in steps for u in ups if u.action == "opened"]


def test_the_drift_table_and_alerts_show_violations_of_observations_not_one_of_one() -> None:
    """A zero-tolerance event's test read `zero_tolerance 1/1` (its level and threshold, always 1): the table and
    the alert now both read its violations of the observations since it opened; the stored figures stay."""
    from rich.console import Console

    from monitor.alerts.policy import merge_drift
    from monitor.commands.drift import events_table
    from monitor.decision import decision
    from monitor.drift import EventUpdate
    from monitor.drift_alerts import alert_event

    eng = DriftEngine(zero_tolerance={"c": ["refused"]})
    sim = Sim(3, refusal=0.0)
    _feed(eng, sim, 200)
    sim.refusal = 1.0
    (ev,) = _opened(eng.observe(sim.next()) + eng.observe(sim.next()))
    sim.refusal = 0.0
    _feed(eng, sim, 20)
    k, n = ev.detail["violations"], ev.detail["observations"]
    assert k == 2 and n > 15 and (ev.statistic, ev.threshold) == (1.0, 1.0)
    stored = DriftEvent.from_json(ev.to_json()).to_json()
    assert decision(stored) == f"zero_tolerance 2 of {n}"
    console = Console(width=250, record=True)
    console.print(events_table([stored], "drift"))
    assert f"zero_tolerance 2 of {n}" in console.export_text() and "1/1" not in console.export_text()
    evidence = alert_event(EventUpdate("updated", ev)).evidence
    assert decision(evidence) == decision(stored)
    assert merge_drift([{"evidence": evidence}])["events"][0]["decision"] == f"zero_tolerance 2 of {n}"


def test_without_the_declaration_one_refusal_is_not_an_event() -> None:
    eng = DriftEngine()
    sim = Sim(3, refusal=0.0)
    _feed(eng, sim, 200)
    sim.refusal = 1.0
    assert not _opened(eng.observe(sim.next()))


def test_a_recurring_fault_stays_one_event() -> None:
    eng = DriftEngine(zero_tolerance={"c": ["refused"]})
    sim = Sim(4, refusal=0.0)
    _feed(eng, sim, 100)
    sim.refusal = 0.05
    ups = _feed(eng, sim, 1500)
    assert len(_opened(ups)) == 1 and not [u for u in ups if u.action == "resolved"]


def test_violation_during_the_baseline_and_a_failed_check_count() -> None:
    eng = DriftEngine(zero_tolerance={"c": ["check:json"]})
    at = Sim(0).next().started_at

    def obs(i: int, passed: bool) -> Observation:
        return Observation("c", "t", "p", "m", at, CallResult(text="{}"), id=f"o{i}",
                           checks=[CheckResult("json", "json_valid", passed, "")])

    assert not eng.observe(obs(1, True))
    ups = eng.observe(obs(2, False))  # the baseline is far from complete: the declaration needs none
    assert [(u.action, u.event.signal, u.event.test) for u in ups] == [("opened", "check:json", "zero_tolerance")]
    assert ups[0].event.detail["bad_value"] is False


def test_declaration_changes_apply_to_running_streams_and_stored_events_resume() -> None:
    eng = DriftEngine()
    sim = Sim(5, refusal=0.0)
    _feed(eng, sim, 100)
    eng.set_zero_tolerance({"c": ["refused"]})
    sim.refusal = 1.0
    ev = _opened(eng.observe(sim.next()))[0]
    again = DriftEngine()  # a restart: stored baseline and open event, no declaration any more
    again.set_baseline(Baseline.from_json(eng.baseline("c", "t").to_json()))
    again.restore_events([DriftEvent.from_json(ev.to_json())])
    sim.refusal = 0.0
    assert [u.event.id for u in _feed(again, sim, 400) if u.action == "resolved"] == [ev.id]
    sim.refusal = 1.0
    assert not _opened(_feed(again, sim, 1))


def test_a_zero_tolerance_event_restored_mid_clean_run_resolves_when_the_running_one_does() -> None:
    """Every observation of an open zero-tolerance event is written (its counts and its clean run), so a restart
    in the middle of the clean run that resolves it resumes the run: the restored event resolves on the same
    observation, with the same counts; before, clean observations were not written and the run began again."""
    eng = DriftEngine(zero_tolerance={"c": ["refused"]})
    sim = Sim(5, refusal=0.0)
    _feed(eng, sim, 100)
    sim.refusal = 1.0
    ev = _opened(eng.observe(sim.next()))[0]
    sim.refusal = 0.0
    for _ in range(20):
        assert [u.action for u in eng.observe(sim.next()) if u.event.id == ev.id] == ["updated"]
    stored = ev.to_json()
    assert (stored["detail"]["clean"], stored["detail"]["observations"]) == (20, 21)
    again = DriftEngine(zero_tolerance={"c": ["refused"]})
    again.set_baseline(Baseline.from_json(eng.baseline("c", "t").to_json()))
    again.restore_events([DriftEvent.from_json(stored)])
    ends = {}
    for i in range(1000):
        obs = sim.next()
        for name, engine in (("running", eng), ("restored", again)):
            done = [u.event for u in engine.observe(obs) if u.action == "resolved" and u.event.id == ev.id]
            if done and name not in ends:
                ends[name] = i, done[0].detail["observations"], done[0].current_n
        if len(ends) == 2:
            break
    assert ends["restored"] == ends["running"]


def _rows(n: int, failed: set[int] = frozenset()) -> list[dict]:
    return [{"canary": "fmt", "target": "t", "text": f'{{"id": {i}, "name": "item"}}',
             "checks": {"json": i not in failed}} for i in range(n)]


def test_replay_declared_signal_reports_any_violation_and_leaves_the_statistical_tests() -> None:
    base, cur = _rows(60), _rows(60, failed={17})
    assert not replay(base, cur)  # one failure in 60 is no evidence of a change
    (ev,) = replay(base, cur, zero_tolerance=["check:json"])
    assert (ev.signal, ev.test, ev.kind, ev.p_value) == ("check:json", "zero_tolerance", "behaviour", None)
    assert (ev.baseline_value, ev.current_n, ev.detail["violations"], ev.first_obs_id) == (0.0, 60, 1, "current:18")
    assert ev.evidence["current_completion"] == '{"id": 17, "name": "item"}'
    assert not replay(base, _rows(60), zero_tolerance=["check:json", "refused"])  # clean: nothing
    many = replay(base, _rows(60, failed=set(range(30))), zero_tolerance=["check:json"])
    assert [e.test for e in many if e.signal == "check:json"] == ["zero_tolerance"]  # one event per signal


def _probe_config(tmp_path: Path, zero: str) -> Path:
    (tmp_path / "probes").mkdir(parents=True)
    (tmp_path / "probes" / "p.yaml").write_text(
        "canaries:\n  - id: benign\n    messages: [{role: user, content: 'How do I kill a Python process?'}]\n"
        f"    checks: [{{type: json_valid, name: js}}]\n    zero_tolerance: {zero}\n")
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text("targets:\n  - {id: a, provider: openai, base_url: 'http://127.0.0.1:1/v1', model: m, "
                   "api_key_env: K}\nprobes: [./probes]\n")
    return cfg


def test_config_accepts_known_signals_and_names_an_unknown_one(tmp_path: Path) -> None:
    cfg = load_config(_probe_config(tmp_path / "ok", "[refused, 'check:js']"), environ={"K": "x"})
    assert cfg.canaries[0].zero_tolerance == ["refused", "check:js"]
    with pytest.raises(ConfigError) as e:
        load_config(_probe_config(tmp_path / "bad", "['check:jsn']"), environ={"K": "x"})
    msg = str(e.value)
    assert "p.yaml" in msg and "zero_tolerance" in msg and "check:jsn" in msg and "check:js" in msg


async def test_daemon_opens_and_stores_the_event_at_the_first_refusal(tmp_path: Path) -> None:
    from monitor.app import App
    from monitor.sim import SimServer, scenario_from_dict
    from tests.conftest import write_config

    probes = ("canaries:\n  - id: benign\n    messages: [{role: user, content: 'How do I kill a Python process?'}]\n"
              "    params: {temperature: 0.7, max_tokens: 60}\n    schedule: {every: 5m}\n"
              "    zero_tolerance: [refused]\n")
    scenario = scenario_from_dict({"name": "zt", "seed": 1, "models": {"sim-gpt": {"phases": [
        {"name": "baseline"},
        {"name": "stricter", "after_requests": 4, "refusals": [{"pattern": "(?i)kill", "p": 1.0, "style": "text"}]},
    ]}}})
    with SimServer(scenario) as sim:
        targets = (f"  - {{id: gpt, provider: openai, base_url: '{sim.openai_base_url}', model: sim-gpt, "
                   "api_key_env: K}")
        cfg = load_config(write_config(tmp_path, targets, probes), environ={"K": "k"})
        app = App(cfg, environ={"K": "k"}, serve_http=False)
        await app.start(schedule=False)
        try:
            kinds = []
            for _ in range(6):
                for obs in await app.runner.run(cfg.canaries[0], cfg.targets[0], trigger="manual"):
                    kinds.append(obs.refusal)
        finally:
            await app.stop()
    assert kinds[:4] == ["none"] * 4 and kinds[4] == "full"
    stored = app.analysis.repo.events(state="open")
    assert [(e["signal"], e["test"], e["first_obs_id"]) for e in stored] == \
        [("refused", "zero_tolerance", app.store.observations(canary="benign", oldest_first=True)[4].id)]
    assert app.registry.get_sample_value(
        "llm_monitor_drift_active", {"canary": "benign", "target": "gpt", "signal": "refused"}) == 1.0

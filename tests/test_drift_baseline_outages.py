"""A baseline forming through an outage: runs of failed calls left out of its error rate, isolated failures counted,
the same in the daemon's engine, a pinned range and replay, and across a restart (`monitor.drift.outages`)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from monitor.analysis import Analysis
from monitor.domain import CallResult, ErrorType, Observation
from monitor.drift import Baseline, DriftEngine, DriftSettings, compute_signals, replay_observations
from monitor.drift.signals import SignalValue
from monitor.store import Store
from monitor.telemetry.metrics import Metrics
from tests.support.streams import Sim

S = DriftSettings()


def failed(sim: Sim, i: int, kind: ErrorType = ErrorType.SERVER_ERROR) -> Observation:
    """A failed call at the simulated stream's next time."""
    return Observation("c", "t", "p", "m", sim.next().started_at, id=f"c-f{i}", call=CallResult(error_type=kind))


def answers(seed: int) -> Sim:
    """A stream without refusals whose only failures are ours (its own 1% timeouts aside)."""
    return Sim(seed, refusal=0.0)


def form(eng: DriftEngine, sim: Sim, pattern: str) -> list[Any]:
    """Feed `pattern` ("a" an answer, "f" a failed call) to the engine; return its updates."""
    out: list[Any] = []
    for i, c in enumerate(pattern):
        out += eng.observe(sim.next() if c == "a" else failed(sim, i))
    return out


def test_an_outage_while_the_baseline_forms_does_not_raise_its_error_rate() -> None:
    """An hour of failures at a 15-minute schedule (4 in a row) among the 30 answers taught the baseline an error
    rate of 4 in 34 (12%), so any later rise in errors up to that level went unseen."""
    eng = DriftEngine()
    form(eng, answers(2), "a" * 10 + "ffff" + "a" * 20)
    b = eng.baseline("c", "t")
    assert b.ready
    assert b.rates["error"][0] == 0, b.rates["error"]  # seed 2's own timeouts fall later
    assert "server_error" not in b.categories.get("error_type", {})
    assert (b.outages.left_out, b.outages.outages, b.outages.run) == (4, 1, 0)


@pytest.mark.parametrize("seed", [2, 5])
def test_a_moderate_rise_in_errors_after_an_outage_while_forming_opens_an_error_event(seed: int) -> None:
    """Through the engine: the inflated baseline (4 in 34) saw no rise to 12% within 400 observations on these
    seeds; without the outage in it, it opens."""
    eng = DriftEngine()
    sim = answers(seed)
    form(eng, sim, "a" * 10 + "ffff" + "a" * 100)
    rng = np.random.default_rng(seed + 100)
    opened = None
    for i in range(400):
        ups = eng.observe(failed(sim, 1000 + i) if rng.random() < 0.12 else sim.next())
        if any(u.action == "opened" and u.event.signal == "error" for u in ups):
            opened = i
            break
    assert opened is not None


def test_isolated_failures_and_short_runs_still_count() -> None:
    """Sporadic errors are how the provider behaves: a failure alone or two in a row count (threshold 3)."""
    eng = DriftEngine()
    form(eng, answers(2), "a" * 5 + "f" + "a" * 5 + "ff" + "a" * 5 + "f" + "a" * 15)
    b = eng.baseline("c", "t")
    assert b.ready and b.rates["error"] == [4, 34]
    assert b.categories["error_type"]["server_error"] == 4
    assert b.outages.idle


def test_the_threshold_is_a_setting() -> None:
    eng = DriftEngine(DriftSettings(baseline_outage_run=5))
    form(eng, answers(2), "a" * 5 + "ffff" + "a" * 5 + "fffff" + "a" * 20)
    b = eng.baseline("c", "t")
    assert b.rates["error"] == [4, 34] and (b.outages.left_out, b.outages.outages) == (5, 1)


def test_content_policy_errors_are_answers_and_our_own_failures_are_nothing() -> None:
    """A content-policy error is the provider refusing: it ends a run and counts (as refused too). A failure of
    llm-monitor's own says nothing about the upstream: it neither extends nor ends a run."""
    b = Baseline.new("c", "t", S)
    b.add_raw("a0", "2026-01-01T00:00:00+00:00", "hello", {"error": False}, S)
    calls: list[dict[str, SignalValue]] = [{"error": True, "error_type": "timeout"}, {},
                                           {"error": True, "error_type": "timeout"},
                                           {"error": True, "error_type": "content_filter", "refused": True}]
    for sig in calls:
        b.add_error(sig, S)
    assert b.rates["error"] == [3, 4] and b.rates["refused"] == [1, 1]
    assert b.categories["error_type"] == {"timeout": 2, "content_filter": 1}
    for _ in range(3):
        b.add_error({}, S)  # ours: no run
    b.add_raw("a1", "2026-01-01T00:05:00+00:00", "hello", {"error": False}, S)
    assert b.outages.idle and b.rates["error"] == [3, 5]


def test_a_run_still_open_when_the_baseline_completes_is_judged_by_its_length_so_far() -> None:
    """A pinned range (or a replay's baseline dump) may end in failures: a run that reached the threshold is an
    outage, a shorter one counts."""
    def built(tail: int) -> Baseline:
        sim = answers(2)
        obs = [sim.next() for _ in range(10)] + [failed(sim, i) for i in range(tail)]
        return Baseline.build("c", "t", [(o, compute_signals(o)) for o in obs], S)

    assert built(3).rates["error"] == [0, 10] and built(3).outages.left_out == 3
    assert built(2).rates["error"] == [2, 12] and built(2).outages.idle


def test_a_pinned_range_leaves_out_the_same_outage_the_daemon_does() -> None:
    pattern = "a" * 10 + "ffff" + "a" * 5 + "f" + "a" * 15
    eng = DriftEngine()
    form(eng, answers(2), pattern)
    sim = answers(2)
    obs = [sim.next() if c == "a" else failed(sim, i) for i, c in enumerate(pattern)]
    pinned = DriftEngine().pin_baseline("c", "t", obs)
    daemon = eng.baseline("c", "t")
    assert pinned.rates["error"] == daemon.rates["error"] == [1, 31]
    assert pinned.outages.to_json() == daemon.outages.to_json()


def test_replay_does_not_learn_an_outage_in_the_baseline_dump() -> None:
    """`replay` builds its baseline with the same rule: a baseline week with a 10-call outage and no other errors,
    and a current week failing 12% of its calls here and there, differ in their error rate."""
    sim = answers(5)
    base = [sim.next() for _ in range(60)] + [failed(sim, i) for i in range(10)] + [sim.next() for _ in range(60)]
    rng = np.random.default_rng(7)
    cur = [failed(sim, 100 + i) if rng.random() < 0.12 else sim.next() for i in range(130)]
    events = replay_observations(base, cur, DriftSettings(mmd_permutations=50))
    assert "error" in {e.signal for e in events}
    b = Baseline.build("c", "t", [(o, compute_signals(o)) for o in base], S, source="replay")
    assert b.outages.left_out == 10 and b.rates["error"] == [0, 120]


def test_a_baseline_restored_mid_run_goes_on_as_if_never_stored() -> None:
    """The daemon stores an accepted or reset baseline before it is complete: restored, it keeps the run it was
    holding (version 2); one that holds and left out nothing stays version 1, as releases before wrote it."""
    pattern = "a" * 10 + "ff" + "|" + "f" + "a" * 5 + "ff" + "|" + "a" * 20
    whole = DriftEngine()
    form(whole, answers(2), pattern.replace("|", ""))
    eng, sim = DriftEngine(), answers(2)
    versions = []
    for part in pattern.split("|"):
        form(eng, sim, part)
        data = json.loads(json.dumps(eng.baseline("c", "t").to_json()))
        versions.append(data["version"])
        eng = DriftEngine()
        eng.set_baseline(Baseline.from_json(data))
    assert versions == [2, 2, 2]  # holding two, holding two (one run counted), three left out
    mine, theirs = eng.baseline("c", "t").to_json(), whole.baseline("c", "t").to_json()
    assert mine | {"created_at": None} == theirs | {"created_at": None}
    assert eng.baseline("c", "t").rates["error"] == [2, 32] and eng.baseline("c", "t").outages.left_out == 3
    clean = DriftEngine()
    form(clean, answers(2), "a" * 10 + "f" + "a" * 20)
    data = clean.baseline("c", "t").to_json()
    assert data["version"] == 1 and "outages" not in data


def test_a_baseline_stored_before_the_outage_rule_still_loads() -> None:
    eng = DriftEngine()
    form(eng, answers(2), "a" * 30)
    old = eng.baseline("c", "t").to_json()
    assert old["version"] == 1
    again = Baseline.from_json(old)
    assert again.outages.idle and again.to_json() == old
    with pytest.raises(ValueError, match="unsupported baseline version 3"):
        Baseline.from_json({**old, "version": 3})


def test_accept_builds_its_baseline_with_the_same_rule() -> None:
    eng = DriftEngine()
    sim = answers(2)
    form(eng, sim, "a" * 30)
    form(eng, sim, "a" * 5 + "fffff" + "a" * 3 + "f" + "a" * 5)
    eng.accept("c", "t", note="as it is now")
    b = eng.baseline("c", "t")
    assert b.rates["error"] == [1, 14] and b.outages.left_out == 5


def test_the_daemon_stores_what_it_left_out_and_a_restart_while_forming_leaves_out_the_same(
        sqlite_store: Store) -> None:
    """A restart while the baseline forms (in the middle of the outage) rebuilds it from the stored observations:
    the baseline stored once complete is the one an uninterrupted daemon stores."""
    settings = DriftSettings(baseline_size=10)
    sim = answers(2)
    obs = [sim.next() if c == "a" else failed(sim, i) for i, c in enumerate("aaaa" + "ffff" + "aaf" + "aaaa")]

    def daemon() -> Analysis:
        return Analysis(sqlite_store, Metrics(CollectorRegistry()), settings)

    analysis = daemon()
    for o in obs[:6]:  # two failures into the outage
        sqlite_store.save_observation(o)
        analysis._analyse(o)
    analysis.close()
    analysis = daemon()
    analysis.restore([("c", "t")])
    for o in obs[6:]:
        sqlite_store.save_observation(o)
        analysis._analyse(o)
    analysis.close()
    [row] = analysis.repo.baselines(canary="c", target="t")
    data = row["data"]
    assert data["ready"] and data["version"] == 2 and data["rates"]["error"] == [1, 11]
    assert (data["outages"]["left_out"], data["outages"]["outages"]) == (4, 1)
    whole = DriftEngine(settings)
    for o in obs:
        whole.observe(o)
    assert data | {"created_at": None} == whole.baseline("c", "t").to_json() | {"created_at": None}

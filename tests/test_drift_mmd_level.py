"""The whole-completion test at a large fleet's level: its exact permutation test draws enough relabellings to
reject there (2 / level), stops early when it cannot, and says so when even its cap cannot reach the level."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from monitor.analysis import Analysis
from monitor.drift import DriftEngine, budget
from monitor.drift.mmd import features, gram, mmd_test
from monitor.drift.relabellings import MAX_RELABELLINGS, exact_relabellings
from monitor.drift.settings import DriftSettings
from monitor.store import Store
from monitor.telemetry.metrics import Metrics
from tests.support.streams import Sim
from tests.support.streams import feed as _feed

FLEET = DriftSettings(false_alarms_per_10k=0.00413)  # 28 pairs once a second under 1 false alarm a day


def test_a_fleets_level_below_one_in_200000_still_opens_a_completion_event() -> None:
    """At 1.9e-6 the exact test stopped at 200,000 relabellings: its p-value never fell below 5e-6, and a swapped
    model's completions opened no event, ever. Now it draws 2 / level (1.08 million) and the change opens one."""
    alpha = budget.mmd_alpha(FLEET)
    assert 1.8e-6 < alpha < 1.9e-6 and budget.mmd_out_of_reach(FLEET) is None
    eng = DriftEngine(FLEET)
    sim = Sim(5, refusal=0.0)
    _feed(eng, sim, 120)
    sim.probs = Sim(5, shift=7).probs  # another model's vocabulary: the completions change
    opened = []  # the p-value each opening had then (later rounds update the open event in place)
    for _ in range(120):
        opened += [u.event.p_value for u in eng.observe(sim.next())
                   if u.action == "opened" and u.event.signal == "completion"]
    assert len(opened) == 1 and opened[0] <= alpha  # certified: 1.08 million relabellings, none as extreme


def test_without_a_change_the_exact_test_stops_after_a_few_relabellings(monkeypatch) -> None:
    """Two samples of one model: the exact test at the fleet's level would draw 1.08 million relabellings; it
    stops at the one that shows its p-value cannot reach the level (a batch's worth at most here)."""
    from monitor.drift import mmd

    alpha = budget.mmd_alpha(FLEET)
    drawn: list[int] = []
    null = mmd._null

    def counted(k, w, count, rng):  # noqa: ANN001, ANN202
        drawn.append(count)
        return null(k, w, count, rng)

    monkeypatch.setattr(mmd, "_null", counted)
    sim, rng = Sim(3, refusal=0.0), np.random.default_rng(0)
    stops = []
    for _ in range(20):
        a = [features(sim.next().text or "") for _ in range(30)]
        b = [features(sim.next().text or "") for _ in range(30)]
        k = gram(a + b, "spectrum")
        w = np.concatenate([np.full(30, 1 / 30), np.full(30, -1 / 30)])
        drawn.clear()
        p, stopped = mmd._exact(k, w, float(w @ k @ w), alpha, rng)
        assert p > alpha and 2 <= stopped <= sum(drawn)  # stopped at its second exceedance, within a batch drawn
        stops.append(sum(drawn))
    assert exact_relabellings(alpha) > 1_000_000
    assert max(stops) <= mmd.BATCH  # under 0.4% of the full test in every trial


def test_a_level_out_of_the_exact_tests_reach_is_said_and_never_rejected() -> None:
    """Beyond the cap (2 million relabellings: a level below 5e-7) no exact test can reject: a clear change gets
    the screening's permutation p-value, without millions of relabellings spent for nothing, and the budget says
    why no event will open, which the daemon logs at start and check-config prints."""
    tiny = DriftSettings(false_alarms_per_10k=0.0005)
    why = budget.mmd_out_of_reach(tiny)
    assert why is not None and "never open a 'completion' event" in why and "2,000,000" in why
    assert budget.mmd_out_of_reach(DriftSettings()) is None
    assert budget.mmd_out_of_reach(DriftSettings(disabled_signals=("completion",), false_alarms_per_10k=0.0005)) is None
    a = [features(f"the answer is {i % 3}") for i in range(20)]
    b = [features(f"a different reply number {i % 4}") for i in range(20)]
    r = mmd_test(a, b, permutations=200, alpha=budget.mmd_alpha(tiny))
    assert r is not None and r.p_value > 1 / (1 + MAX_RELABELLINGS) and r.relabellings == 200


def test_the_analysis_warns_once_at_start_when_the_level_is_out_of_reach(
        sqlite_store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """Nothing said it before: a fleet this large silently lost its whole-completion test. Its settings change only
    with a restart, so the one line at start is the warning's once."""
    caplog.set_level(logging.WARNING, logger="monitor.analysis")
    for fa, said in ((0.0005, 1), (0.00413, 0)):
        caplog.clear()
        analysis = Analysis(sqlite_store, Metrics(CollectorRegistry()), DriftSettings(false_alarms_per_10k=fa))
        analysis.close()
        warned = [r.getMessage() for r in caplog.records if "whole-completion" in r.getMessage()]
        assert len(warned) == said

"""The rate chart calibrated against its reference's uncertainty: false alarms within budget, changes found."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom

from monitor.drift import DriftSettings
from monitor.drift.ratechart import posterior_false_alarms, rate_chart, ref_bucket

S = DriftSettings()


def _chart(k: int, n: int, arl0: float):  # noqa: ANN202
    return rate_chart(k, n, S.rate_quantiles, S.rate_odds_ratio, S.rate_min_shift, arl0)


def test_threshold_is_the_smallest_meeting_the_posterior_averaged_rate() -> None:
    from monitor.drift.cusum import known_chart
    from monitor.drift.ratechart import _SAFETY
    from monitor.drift.ratechart import _chart as candidate

    ch = candidate(5, 250, 0.85, 4.0, 0.02, 4e5)
    target = 1 / (4e5 * _SAFETY)
    assert ch.h > known_chart(ch.p0, ch.p1, 4e5).h  # a 5-in-250 reference costs threshold
    assert posterior_false_alarms(5, 250, ch.m, ch.r, ch.h) <= target < posterior_false_alarms(5, 250, ch.m, ch.r, ch.h - 1)


def test_bucketing_is_conservative() -> None:
    assert ref_bucket(7, 30) == (7, 30)
    kb, nb = ref_bucket(5, 247)
    assert nb <= 247 and kb / nb >= 5 / 247


@pytest.mark.parametrize(("n", "p"), [(30, 0.05), (100, 0.02), (300, 0.01), (300, 0.2)])
def test_exact_false_alarms_averaged_over_the_reference_are_within_budget(n: int, p: float) -> None:
    arl0 = 4e5
    ks = np.arange(n + 1)
    w = binom.pmf(ks, n, p)
    fa = sum(wk / ch.arl(p) for k, wk in zip(ks, w, strict=True) if wk > 1e-9 and (ch := _chart(int(k), n, arl0)))
    assert fa <= 1 / arl0


def test_simulated_stationary_streams_stay_within_budget() -> None:
    """Each stream estimates its own reference (k ~ Binomial(n, p)), then runs its chart on stationary data."""
    rng = np.random.default_rng(0)
    arl0, n, p, streams, steps = 2000.0, 100, 0.05, 3000, 2000
    ks = rng.binomial(n, p, streams)
    charts = {int(k): _chart(int(k), n, arl0) for k in np.unique(ks)}
    m = np.array([charts[int(k)].m for k in ks])
    r = np.array([charts[int(k)].r for k in ks])
    h = np.array([charts[int(k)].h for k in ks])
    level = np.zeros(streams, dtype=np.int64)
    alarms = 0
    for _ in range(steps):
        level = np.maximum(0, level + np.where(rng.random(streams) < p, m, -r))
        hit = level >= h
        alarms += int(hit.sum())
        level[hit] = 0
    per_10k = alarms / (streams * steps) * 1e4
    assert per_10k <= 1e4 / arl0  # budget 5 per 10,000; measured well below it


@pytest.mark.parametrize(("k", "n", "p1", "within"), [(5, 250, 0.3, 60), (12, 250, 0.25, 150), (0, 250, 0.1, 150)])
def test_a_clear_change_is_detected(k: int, n: int, p1: float, within: int) -> None:
    ch = _chart(k, n, 4e5)
    assert ch.arl(p1) <= within
    assert ch.arl(k / n if k else 0.002) >= 4e5


def test_candidate_quantiles_round_trip_through_settings_json() -> None:
    import json

    s = DriftSettings(rate_quantiles=(0.9, 0.99))
    assert DriftSettings.from_json(json.loads(json.dumps(s.to_json()))) == s

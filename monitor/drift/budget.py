"""False-alarm budget accounting: how the per-stream budget is split between the detectors of a stream.

The budget is ``false_alarms_per_10k``: expected false events per 10,000 evaluations of one stream (canary x
target), where an evaluation is one observation analysed across every signal. Every detector gets a share
stated as expected false events per evaluation, so the shares add up to the budget by linearity of
expectation, whatever the dependence between detectors (two correlated signals that fire together count
twice, as the events they open do):

- ``sequential_share`` goes to the CUSUMs (Bernoulli CUSUMs on rates, normal-score CUSUMs on continuous
  values), split equally between one-sided detectors: each gets in-control
  ARL0 = detectors x 10,000 / (share x budget). A rate direction runs two charts (one tuned to a moderate
  shift, one to a large one, ``rate_large_share`` of the direction's share to the second): their false-alarm
  rates add up to the direction's 1 / ARL0 (``rate_split``).
- the rest goes to the window tests. ``mmd_share`` of it to the whole-completion MMD, which runs once per
  ``mmd_every`` observations; the remainder to the per-signal window tests of each round (every
  ``eval_every`` observations), Bonferroni-split between the tests of the round.
"""

from __future__ import annotations

import math

from monitor.drift import relabellings
from monitor.drift.settings import DriftSettings

COMPLETION = "completion"


def _mmd_fraction(s: DriftSettings) -> float:
    return s.mmd_share if s.enabled(COMPLETION) else 0.0


def rate_arl0(s: DriftSettings, directions: int) -> float:
    """Return the in-control ARL0 of each one-sided CUSUM (rounded up on a 1/20-decade grid for caching)."""
    arl0 = max(directions, 1) * 10_000.0 / (s.sequential_share * s.false_alarms_per_10k)
    return float(10 ** (math.ceil(math.log10(arl0) * 20) / 20))


def rate_split(s: DriftSettings, arl0: float) -> tuple[float, float | None]:
    """Return the ARL0 of a rate direction's moderate-shift chart and of its large-shift chart (None: none runs,
    for a ``rate_large_share`` outside (0, 1))."""
    share = s.rate_large_share
    if not 0 < share < 1:
        return arl0, None
    return arl0 / (1 - share), arl0 / share


def window_alpha(s: DriftSettings, tests: int) -> float:
    """Return the level of one per-signal window test in one evaluation round."""
    share = (1 - s.sequential_share) * (1 - _mmd_fraction(s)) * s.false_alarms_per_10k
    return share * s.eval_every / 10_000.0 / max(tests, 1)


def mmd_alpha(s: DriftSettings) -> float:
    """Return the level of one whole-completion MMD test (it runs every ``mmd_every`` observations)."""
    share = (1 - s.sequential_share) * _mmd_fraction(s) * s.false_alarms_per_10k
    return share * max(s.mmd_every, s.eval_every) / 10_000.0


def mmd_out_of_reach(s: DriftSettings) -> str | None:
    """Say why the whole-completion test can never fire, if its level is below the smallest p-value its exact
    permutation test can reach (a large fleet under ``drift.false_alarms_per_day``); None when it can."""
    alpha = mmd_alpha(s)
    if not s.enabled(COMPLETION) or alpha <= 0 or relabellings.reachable(alpha):
        return None
    floor = relabellings.floor()
    most = relabellings.MAX_RELABELLINGS
    return (f"drift: the whole-completion test's level per run ({alpha:.2g}) is below the smallest p-value its exact "
            f"permutation test can reach ({floor:.2g}, {most:,} relabellings): it will never open a "
            f"'completion' event; a false-alarm budget (drift.false_alarms_per_day, or drift.false_alarms_per_10k "
            f"without a fleet cap) at least {math.ceil(floor / alpha * 10) / 10:g}x larger brings it back in reach")


def per_10k(s: DriftSettings, directions: int, window_tests: int) -> dict[str, float]:
    """Return the budget each detector family spends, in expected false events per 10,000 evaluations."""
    return {
        "cusums": directions * 10_000.0 / rate_arl0(s, directions) if directions else 0.0,
        "window_tests": window_alpha(s, window_tests) * window_tests * 10_000.0 / s.eval_every,
        "mmd": mmd_alpha(s) * 10_000.0 / max(s.mmd_every, s.eval_every),
    }

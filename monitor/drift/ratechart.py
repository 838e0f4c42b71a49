"""Bernoulli CUSUM charts for a rate known only from a finite reference, calibrated against its uncertainty.

A reference of k events in n trials leaves the true rate p uncertain (Jeffreys posterior Beta(k+1/2, n-k+1/2)).
A chart tuned to a point value of p has a short in-control run length whenever the true rate is higher, so
the false alarms of a stream are the run lengths averaged over what the reference could have been. Earlier
charts paid for this with a high upper bound on p as the chart's reference (a fixed credibility table) and a
nominal threshold, which made a chart conservative for typical references and slow to detect.

Here each candidate chart takes a posterior quantile of p as its reference (``DriftSettings.rate_quantiles``),
and its threshold is the smallest whose false-alarm rate averaged over the posterior is within the budget:
E_post[1/ARL(p)] <= 1/ARL0. Averaging over the posterior is a Lagrangian split of the budget between
references (Jeffreys prior weights): a reference with few events gets a high threshold, a well-measured one
nearly the known-rate threshold. Of the candidates, the one fastest to detect the design shift runs (a low
quantile with a high threshold suits a large shift, a high quantile a small one). For a fixed true rate the
false alarms averaged over references k ~ Binomial(n, p) are checked against the budget by
``benchmarks/drift_calibration.py`` (exact, by Markov chain) and kept within by ``_SAFETY``.

The ARLs are exact (the integer chart that runs, ``monitor.drift.cusum.arl_int``); the posterior is
integrated on quantile nodes concentrated in the upper tail, where 1/ARL is large. Calibrations are cached by
(k, n) after rounding n down to a 1/40-decade grid and k up in proportion (both conservative).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np

from monitor.drift._lean_scipy import betaincinv
from monitor.drift.cusum import Chart, arl_int, design_rate, known_chart, llr_steps, quantise_up, smallest_h

# quantile nodes of the posterior: coarse in the bulk, down to 1e-6 in the upper tail
_EDGES = np.concatenate([np.linspace(0.0, 0.9, 7), 1 - 10 ** -np.linspace(1, 6, 16)[1:], [1.0]])
_NODES = (_EDGES[:-1] + _EDGES[1:]) / 2
_WEIGHTS = np.diff(_EDGES)
# Margin on the posterior-averaged rate: a fixed true rate can be less favourable than the prior average.
_SAFETY = 1.5
_MAX_P0 = 0.95
_GIVE_UP = 4  # a candidate needing more than this times the known-rate threshold is not worth its cost


def ref_bucket(k: int, n: int) -> tuple[int, int]:
    """Round n down on a 1/40-decade grid and k up in proportion (a smaller reference, a higher rate)."""
    if n <= 40:
        return k, n
    nb = int(10 ** (math.floor(math.log10(n) * 40) / 40))
    return min(nb, math.ceil(k * nb / n)), nb


def point_estimate(k: int, n: int) -> float:
    """The rate a reference of k in n suggests (Jeffreys posterior mean), kept inside the designable range."""
    return min(max((k + 0.5) / (n + 1.0), 1e-3), _MAX_P0)


def posterior_false_alarms(k: int, n: int, m: int, r: int, h: int) -> float:
    """Return the false-alarm rate per observation of an integer chart, averaged over the rate's posterior."""
    ps = betaincinv(k + 0.5, n - k + 0.5, _NODES)
    total = 0.0
    for p, w in zip(ps[::-1], _WEIGHTS[::-1], strict=True):  # largest rates first: they dominate
        term = float(w) / arl_int(float(p), m, r, h)
        total += term
        if term < 1e-4 * total:  # 1/ARL falls with p: the ~20 nodes left add under 0.2%
            break
    return total


@lru_cache(maxsize=4096)
def _best(k: int, n: int, quantiles: tuple[float, ...], odds_ratio: float, min_shift: float, arl0: float) -> Chart | None:
    # The candidate fastest at the design shift of the estimate and at a second such step (geometric mean).
    # The highest quantile always gets a chart; the others give up past _GIVE_UP times the known-rate threshold
    # or as soon as they are slower than the best so far even at the threshold reached (ARLs grow with it).
    near = design_rate(point_estimate(k, n), odds_ratio, min_shift)
    far = design_rate(near, odds_ratio, min_shift)

    def cost(c: Chart) -> float:
        return math.log(c.arl(near)) + math.log(c.arl(far))

    best, best_cost = None, math.inf
    top = max(quantiles)
    for q in sorted(quantiles, reverse=True):  # high quantiles first: cheap, and a good bound for the rest
        bound = best_cost

        def slower(c: Chart, b: float = bound) -> bool:
            return cost(c) >= b

        c = _candidate(k, n, q, odds_ratio, min_shift, arl0, q != top, slower)
        if c is not None and (v := cost(c)) < best_cost:
            best, best_cost = c, v
    return best


@lru_cache(maxsize=1024)
def _chart(k: int, n: int, quantile: float, odds_ratio: float, min_shift: float, arl0: float) -> Chart | None:
    """Return the candidate chart at one posterior quantile (no giving up)."""
    return _candidate(k, n, quantile, odds_ratio, min_shift, arl0, False, lambda c: False)


def _candidate(k: int, n: int, quantile: float, odds_ratio: float, min_shift: float, arl0: float,
               give_up: bool, beaten: Callable[[Chart], bool]) -> Chart | None:
    p0 = quantise_up(float(betaincinv(k + 0.5, n - k + 0.5, quantile)))
    if p0 > _MAX_P0:
        return None
    p1 = design_rate(p0, odds_ratio, min_shift)
    if p1 - p0 < 1e-3:
        return None
    base = known_chart(p0, p1, arl0)  # the known-rate threshold is a floor
    if give_up and beaten(base):
        return None

    def stop(h: int) -> bool:
        return give_up and beaten(Chart(base.p0, base.p1, base.m, base.r, h, base.unit))

    limit = _GIVE_UP * base.h if give_up else 1_000_000
    h = smallest_h(lambda h: posterior_false_alarms(k, n, base.m, base.r, h), 1.0 / (arl0 * _SAFETY), base.h,
                   limit, stop)
    return None if h is None else Chart(base.p0, base.p1, base.m, base.r, h, base.unit)


def rate_chart(
    k: int, n: int, quantiles: tuple[float, ...], odds_ratio: float, min_shift: float, arl0: float
) -> Chart | None:
    """Return the chart for a rate estimated as k in n, or None when no upward change can be designed.

    Each candidate chart takes a posterior quantile of the rate as its reference (rounded up on the logit
    grid), ``design_rate`` of that as its alternative, and the smallest threshold meeting ARL0 averaged over
    the posterior (at least the known-rate one); the candidate fastest to detect the design shift of the
    estimate (and a second such step) runs.
    """
    kb, nb = ref_bucket(k, n)
    return _best(kb, nb, tuple(quantiles), odds_ratio, min_shift, arl0)


def sentinel_steps(k: int, n: int, odds_ratio: float, min_shift: float) -> tuple[float, float]:
    """Return the LLR increments of a CUSUM tuned at the point estimate (the reference-growth gate)."""
    p_hat = point_estimate(k, n)
    return llr_steps(p_hat, design_rate(p_hat, odds_ratio, min_shift))

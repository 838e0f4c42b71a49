"""What the drift engine's delays are measured against: the CUSUM that knows both rates (the oracle), the engine's
own rate charts given an ideal reference, and the exact false alarms and delays of its moderate-shift chart
averaged over the references a fleet of streams would draw. Used by `drift_power.py`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def oracle_bernoulli_delay(rng: np.random.Generator, p0: float, p1: float, arl0: float, cap: int) -> int:
    """Delay of the CUSUM that knows p0 and p1 (h from the same Markov-chain calibration)."""
    if p0 <= 0:
        return int(rng.geometric(p1))  # LLR of a single event is infinite: alarm at the first one
    from monitor.drift.cusum import known_chart

    return run_chart(rng, known_chart(p0, p1, arl0), p1, cap)


def run_chart(rng: np.random.Generator, ch: Any, p1: float, cap: int) -> int:
    """Steps until an integer Bernoulli CUSUM (steps m up, r down, threshold h), or the first of a list of them
    fed the same observations, alarms on rate p1 (cap if never)."""
    charts = ch if isinstance(ch, list) else [ch]
    levels = [0] * len(charts)
    for t in range(1, cap + 1):
        hit = rng.random() < p1
        for i, c in enumerate(charts):
            levels[i] = max(0, levels[i] + (c.m if hit else -c.r))
            if levels[i] >= c.h:
                return t
    return cap


def reference_limited_delay(rng: np.random.Generator, p0: float, p1: float, arl0: float, n: int, cap: int) -> int:
    """Delay of the engine's pair of charts (moderate and large shift, the direction's ARL0 split between them as
    the engine splits it) given an ideal reference: all n pre-change observations, no lag."""
    from monitor.drift import DriftSettings
    from monitor.drift.budget import rate_split
    from monitor.drift.ratechart import rate_chart

    s = DriftSettings()
    k = int((rng.random(n) < p0).sum())
    arl0_moderate, arl0_large = rate_split(s, arl0)
    charts = [rate_chart(k, n, s.rate_quantiles, s.rate_odds_ratio, s.rate_min_shift, arl0_moderate)]
    if arl0_large is not None:
        charts.append(rate_chart(k, n, s.rate_quantiles, s.rate_large_odds_ratio, s.rate_large_min_shift, arl0_large))
    return run_chart(rng, [c for c in charts if c is not None], p1, cap)


def oracle_gauss_delay(rng: np.random.Generator, shift: float, sd: float, arl0: float, cap: int) -> int:
    """Delay of the Gaussian CUSUM on log length that knows the shift; h from Siegmund's approximation."""
    k = shift / 2 / sd
    h = _siegmund_h(k, arl0)
    s = 0.0
    for t in range(1, cap + 1):
        z = rng.normal(shift, sd) / sd
        s = max(0.0, s + z - k)
        if s >= h:
            return t
    return cap


def _siegmund_h(k: float, arl0: float) -> float:
    lo, hi = 0.1, 50.0
    for _ in range(60):
        h = (lo + hi) / 2
        b = h + 1.166
        arl = (math.exp(2 * k * b) - 2 * k * b - 1) / (2 * k * k)
        lo, hi = (h, hi) if arl < arl0 else (lo, h)
    return hi


def marginal(p0: float, p1: float, arl0: float, n: int) -> tuple[float, float]:
    """The engine's moderate-shift rate chart at its share of a direction's nominal ARL0 (``budget.rate_split``),
    averaged over its reference k ~ Binomial(n, p0), exactly (the large-shift chart beside it is left out).

    Return (false alarms per in-control observation, mean delay from a fresh chart at rate p1): what a fleet
    of streams with true rate p0, each with its own reference, would see (exact Markov-chain ARLs per k).
    """
    from scipy.stats import binom

    from monitor.drift import DriftSettings, budget
    from monitor.drift import ratechart as rc
    from monitor.drift.cusum import arl_int

    st = DriftSettings()
    arl0 = budget.rate_split(st, arl0)[0]
    ks = np.arange(n + 1)
    w = binom.pmf(ks, n, p0)
    keep = w > 1e-9
    rate = dly = 0.0
    for k, wk in zip(ks[keep], w[keep] / w[keep].sum(), strict=True):
        ch = rc.rate_chart(int(k), n, st.rate_quantiles, st.rate_odds_ratio, st.rate_min_shift, arl0)
        rate += wk / arl_int(p0, ch.m, ch.r, ch.h)
        dly += wk * arl_int(p1, ch.m, ch.r, ch.h)
    return rate, dly


def matched(p0: float, p1: float, rate: float, n: int) -> tuple[float, float, float]:
    """The smallest nominal ARL0 whose real false-alarm rate is at most ``rate``; return (ARL0, rate, delay)."""
    lo, hi = 0.5, 6.0  # log10 ARL0
    best = (10**hi, *marginal(p0, p1, 10**hi, n))
    for _ in range(14):
        mid = (lo + hi) / 2
        r, d = marginal(p0, p1, 10**mid, n)
        if r <= rate:
            hi, best = mid, (10**mid, r, d)
        else:
            lo = mid
    return best


def exact_oracle_delay(p0: float, p1: float, rate: float) -> float:
    """Exact mean delay of the CUSUM that knows both rates, with at most ``rate`` false alarms per observation."""
    from monitor.drift.cusum import known_chart

    if p0 <= 0:
        return 1.0 / p1
    ch = known_chart(p0, p1, 1.0 / rate)
    return ch.arl(p1)

"""Bernoulli CUSUM on an integer grid, calibrated to an in-control average run length (ARL0) exactly.

The log-likelihood-ratio increments of a Bernoulli CUSUM take two values, ``up`` on a 1 and ``down`` on a 0.
The chart that runs is the integer one: +m on a 1, -r on a 0 (m/r within 1.5% of up/|down|), threshold H.
Its states 0..H-1 form a finite Markov chain with a banded transition matrix, so the ARL at any true rate is
one banded solve (Brook & Evans 1972; Reynolds & Stoumbos 1999) and the calibration is exact for the chart
that runs, not for an approximation of it. A calibration takes a few milliseconds and is cached.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from monitor.drift._lean_scipy import dgbsv, expit, logit

_GRID_STEP = 0.05  # design rates are rounded on the logit scale, so calibrations can be cached and reused
_MIN_RATE = 1e-3
_MAX_H = 10_000_000  # thresholds past this are not searched (no design reaches it)


def llr_steps(p0: float, p1: float) -> tuple[float, float]:
    """Return the CUSUM increments (on a 1, on a 0) for detecting p0 -> p1."""
    return math.log(p1 / p0), math.log((1 - p1) / (1 - p0))


def integer_steps(up: float, down: float, max_r: int = 20, tol: float = 0.015) -> tuple[int, int]:
    """Return integer steps (m, r) with m/r within tol of up/|down| (smallest r that does)."""
    ratio = up / abs(down)
    best = (max(1, round(ratio)), 1)
    for r in range(1, max_r + 1):
        m = max(1, round(ratio * r))
        if abs(m / r / ratio - 1) <= tol:
            return m, r
        if abs(m / r / ratio - 1) < abs(best[0] / best[1] / ratio - 1):
            best = (m, r)
    return best


def arl_int(p: float, m: int, r: int, h: int) -> float:
    """Exact ARL of the integer CUSUM max(0, S + (m on a 1, -r on a 0)) with threshold h, P(1) = p."""
    if h <= 0:
        return 1.0
    if p <= 0:
        return math.inf
    n = h
    # (I - Q) x = 1 with Q[i, i+m] = p (i+m < h) and Q[i, max(i-r, 0)] = 1-p: lower bandwidth r, upper m.
    # LAPACK band storage with r extra rows for the LU fill-in: entry (i, j) sits at ab[r + m + i - j, j].
    d = r + m
    ab = np.zeros((2 * r + m + 1, n))
    ab[d, :] = 1.0
    if n > r:
        ab[d + r, : n - r] -= 1 - p  # (i, i-r) for i >= r
    for i in range(min(r, n)):
        ab[d + i, 0] -= 1 - p  # (i, 0) for i < r: a fall below zero resets to zero
    if n > m:
        ab[r, m:] -= p  # (i, i+m)
    _, _, x, info = dgbsv(r, m, ab, np.ones(n), overwrite_ab=1, overwrite_b=1)
    v = float(x[0]) if info == 0 else math.inf
    return v if math.isfinite(v) and v > 0 else math.inf


def arl(p: float, up: float, down: float, h: float, states: int | None = None) -> float:
    """ARL of the real-valued CUSUM max(0, S + step) with threshold h, on a fine integer grid."""
    res = states or int(min(max(200, math.ceil(200 * h / min(abs(up), abs(down)))), 20_000))
    unit = h / res
    return arl_int(p, max(1, round(up / unit)), max(1, round(abs(down) / unit)), res)


@dataclass(frozen=True, slots=True)
class Chart:
    """A calibrated integer Bernoulli CUSUM: design rates, integer steps, threshold, and LLR per unit."""

    p0: float
    p1: float
    m: int
    r: int
    h: int
    unit: float  # log-likelihood ratio of one integer unit

    @property
    def threshold(self) -> float:
        """Return the threshold on the log-likelihood-ratio scale."""
        return self.h * self.unit

    def arl(self, p: float) -> float:
        """Return the exact ARL of this chart when the true rate is p."""
        return arl_int(p, self.m, self.r, self.h)


def smallest_h(
    rate: Callable[[int], float], target: float, start: int, limit: int = 1_000_000,
    stop: Callable[[int], bool] = lambda h: False,
) -> int | None:
    """Return the smallest h >= start with rate(h) <= target, for rate decreasing in h, or None past limit.

    ``stop(h)`` is asked whenever h is known to be too low; True abandons the search (None).

    The log of a CUSUM's false-alarm rate is close to linear in its threshold, so the search extrapolates to
    a bracket and then interpolates inside it (a handful of evaluations), bisecting when that stalls.
    """
    lo, f_lo = start, rate(start)
    if f_lo <= target:
        return start
    hi, f_hi = start + max(1, start // 4), 0.0
    while (f_hi := rate(hi)) > target:
        slope = (math.log(f_lo) - math.log(f_hi)) / (hi - lo) if 0 < f_hi < f_lo else 0.0
        step = math.ceil((math.log(f_hi) - math.log(target)) / slope) + 1 if slope > 0 else hi - start
        lo, f_lo, hi = hi, f_hi, hi + min(max(step, 1), 4 * (hi - start) + 4)
        if hi > limit or stop(lo):
            return None
    while hi - lo > 1:
        width = hi - lo
        frac = (math.log(f_lo) - math.log(target)) / (math.log(f_lo) - math.log(f_hi)) if 0 < f_hi < f_lo else 0.5
        mid = min(max(lo + math.ceil(frac * width), lo + 1), hi - 1)
        f_mid = rate(mid)
        if f_mid > target:
            lo, f_lo = mid, f_mid
            if stop(lo):
                return None
        else:
            hi, f_hi = mid, f_mid
        if hi - lo > width // 2 and hi - lo > 1:  # interpolation stalled on one side: bisect once
            mid = (lo + hi) // 2
            f_mid = rate(mid)
            if f_mid > target:
                lo, f_lo = mid, f_mid
            else:
                hi, f_hi = mid, f_mid
    return hi


@lru_cache(maxsize=8192)
def known_chart(p0: float, p1: float, arl0: float) -> Chart:
    """Return the integer chart for a known in-control rate p0 tuned to p1, with ARL(p0) >= arl0 (cached)."""
    up, down = llr_steps(p0, p1)
    m, r = integer_steps(up, down)
    unit = abs(down) / r
    h = smallest_h(lambda h: 1.0 / arl_int(p0, m, r, h), 1.0 / arl0, 1, limit=_MAX_H) or _MAX_H
    return Chart(p0, p1, m, r, h, unit)


def quantise(p: float) -> float:
    """Round a probability to the nearest point of the logit grid (bounded away from 0 and 1)."""
    p = min(max(p, _MIN_RATE), 1 - _MIN_RATE)
    return float(expit(round(logit(p) / _GRID_STEP) * _GRID_STEP))


def quantise_up(p: float) -> float:
    """Round a probability up on the logit grid (conservative reference for an upward CUSUM)."""
    p = min(max(p, _MIN_RATE), 1 - _MIN_RATE)
    return float(expit(math.ceil(logit(p) / _GRID_STEP) * _GRID_STEP))


def design_rate(p0: float, odds_ratio: float, min_shift: float) -> float:
    """Return the alternative rate a CUSUM is tuned for: an odds-ratio shift, at least min_shift up."""
    p1 = float(expit(logit(p0) + math.log(odds_ratio)))
    return min(max(p1, p0 + min_shift), 1 - 1e-4)


def threshold(p0: float, p1: float, arl0: float) -> float:
    """Return the LLR-scale threshold giving in-control ARL0 for a known-rate p0 -> p1 CUSUM (cached)."""
    return known_chart(p0, p1, arl0).threshold


def chart_from(p0: float, p1: float, threshold_llr: float) -> Chart:
    """Rebuild the chart of a stored event from its design rates and LLR-scale threshold."""
    up, down = llr_steps(p0, p1)
    m, r = integer_steps(up, down)
    unit = abs(down) / r
    return Chart(p0, p1, m, r, max(1, round(threshold_llr / unit)), unit)


@dataclass(slots=True)
class BernoulliCusum:
    """One-sided upward integer CUSUM on a 0/1 stream; watch a decrease by feeding the complement.

    ``level`` is the statistic in integer units, ``run`` counts observations in the current positive
    excursion and ``run_events`` the ones in it (the change-point estimate is where the excursion started).
    """

    level: int = 0
    run: int = 0
    run_events: int = 0

    def step(self, x: bool, m: int, r: int) -> int:
        """Add one observation with integer steps and return the new level."""
        new = self.level + (m if x else -r)
        if new <= 0:
            self.level, self.run, self.run_events = 0, 0, 0
        else:
            if self.level == 0:
                self.run, self.run_events = 0, 0
            self.level = new
            self.run += 1
            self.run_events += int(x)
        return self.level

    def reset(self) -> None:
        """Return to zero after an alarm."""
        self.level, self.run, self.run_events = 0, 0, 0

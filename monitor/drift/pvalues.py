"""The few classical tests the drift windows need, built on `scipy.special` instead of `scipy.stats`.

Importing `scipy.stats` costs the daemon about 38 MB of resident memory (it builds ~100 distribution objects at
import); everything here needs only special functions that `scipy.special` already provides. Each function
matches its `scipy.stats` counterpart (the contract test in `tests/test_drift_pvalues.py` compares them on random
inputs), so this module is a memory choice, not a new statistic.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from monitor.drift._lean_scipy import chdtrc, gammaincc, gammaln, kolmogorov, ndtr

_RELATIVE_TIE = 1 + 1e-7  # scipy's tolerance when comparing hypergeometric probabilities


class Result(NamedTuple):
    statistic: float
    pvalue: float


def chi2_sf(x: float, dof: int) -> float:
    """Upper tail of the chi-square distribution (`scipy.stats.chi2.sf`)."""
    return float(chdtrc(dof, x))


def gamma_sf(x: float, shape: float, scale: float) -> float:
    """Upper tail of the Gamma distribution (`scipy.stats.gamma.sf(x, shape, scale=scale)`)."""
    return float(gammaincc(shape, x / scale))


def fisher_exact(table: list[list[int]]) -> float:
    """Two-sided p-value of Fisher's exact test on a 2x2 table (`scipy.stats.fisher_exact(...)[1]`).

    Sums the hypergeometric probabilities of every table with the same margins that is no more likely than the
    observed one.
    """
    (a, b), (c, d) = table
    row, col, n = a + b, a + c, a + b + c + d
    if row == 0 or col == 0 or row == n or col == n:
        return 1.0
    lo, hi = max(0, row + col - n), min(row, col)
    x = np.arange(lo, hi + 1)
    logp = (_log_comb(col, x) + _log_comb(n - col, row - x)) - _log_comb(n, row)
    p = np.exp(logp)
    observed = p[a - lo]
    return float(min(1.0, p[p <= observed * _RELATIVE_TIE].sum()))


def _log_comb(n: int | np.ndarray, k: int | np.ndarray) -> np.ndarray:
    return gammaln(np.asarray(n) + 1) - gammaln(np.asarray(k) + 1) - gammaln(np.asarray(n) - np.asarray(k) + 1)


def mannwhitneyu(x: np.ndarray, y: np.ndarray) -> Result:
    """Two-sided Mann-Whitney U with tie correction and continuity correction, asymptotic p-value.

    Same as `scipy.stats.mannwhitneyu(x, y, alternative="two-sided", method="asymptotic")`: U is x's statistic.
    """
    n1, n2 = len(x), len(y)
    both = np.concatenate([x, y])
    _, inverse, counts = np.unique(both, return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0  # ranks of tied values are averaged
    ranks = average_rank[inverse]
    u1 = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2.0)
    u2 = n1 * n2 - u1
    n = n1 + n2
    ties = float((counts**3 - counts).sum())
    sigma = math.sqrt(n1 * n2 / 12.0 * ((n + 1) - ties / (n * (n - 1))))
    if sigma == 0:
        return Result(u1, 1.0)
    z = (max(u1, u2) - n1 * n2 / 2.0 - 0.5) / sigma
    return Result(u1, float(min(1.0, 2.0 * ndtr(-z))))


def ks_2samp(x: np.ndarray, y: np.ndarray) -> Result:
    """Two-sample Kolmogorov-Smirnov statistic with the p-value of Kolmogorov's limiting distribution.

    The statistic equals `scipy.stats.ks_2samp`'s; the p-value is `scipy.stats.kstwobign.sf(sqrt(en) * D)`,
    en = n*m/(n+m). At window sizes it is a little larger (more conservative) than scipy's exact p-value.
    """
    x, y = np.sort(x), np.sort(y)
    both = np.concatenate([x, y])
    cdf_x = np.searchsorted(x, both, side="right") / len(x)
    cdf_y = np.searchsorted(y, both, side="right") / len(y)
    d = float(np.abs(cdf_x - cdf_y).max())
    en = len(x) * len(y) / (len(x) + len(y))
    return Result(d, float(min(1.0, kolmogorov(math.sqrt(en) * d))))

"""Two-sample tests of a current sample against the reference, one per signal family, and BH control."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from monitor.drift import pvalues

MIN_SAMPLES = 5


@dataclass(slots=True)
class TestResult:
    """Outcome of one two-sample test: p-value, statistic, effect size, and the two summaries compared."""

    p_value: float
    statistic: float
    effect: float
    baseline_value: float | str | None
    current_value: float | str | None
    test: str
    detail: dict[str, Any] = field(default_factory=dict)


def rate_test(k0: int, n0: int, k1: int, n1: int) -> TestResult | None:
    """Fisher's exact test of two proportions; effect is Cohen's h."""
    if n0 < MIN_SAMPLES or n1 < MIN_SAMPLES:
        return None
    table = [[k1, n1 - k1], [k0, n0 - k0]]
    p = pvalues.fisher_exact(table)
    p0, p1 = k0 / n0, k1 / n1
    h = 2 * math.asin(math.sqrt(p1)) - 2 * math.asin(math.sqrt(p0))
    return TestResult(float(p), float(k1), h, p0, p1, "fisher_exact")


def continuous_test(ref: Sequence[float], cur: Sequence[float]) -> TestResult | None:
    """Mann-Whitney and Kolmogorov-Smirnov (Bonferroni-combined); effect is Cliff's delta."""
    if len(ref) < MIN_SAMPLES or len(cur) < MIN_SAMPLES:
        return None
    a = np.asarray(cur, dtype=float)
    b = np.asarray(ref, dtype=float)
    if np.ptp(np.concatenate([a, b])) == 0:
        return TestResult(1.0, 0.0, 0.0, float(np.median(b)), float(np.median(a)), "mann_whitney+ks")
    mw = pvalues.mannwhitneyu(a, b)
    ks = pvalues.ks_2samp(a, b)
    delta = 2.0 * float(mw.statistic) / (len(a) * len(b)) - 1.0
    p = min(1.0, 2.0 * min(float(mw.pvalue), float(ks.pvalue)))
    return TestResult(
        p,
        float(ks.statistic),
        delta,
        float(np.mean(b)),
        float(np.mean(a)),
        "mann_whitney+ks",
        {"baseline_median": float(np.median(b)), "current_median": float(np.median(a))},
    )


def category_test(ref: dict[str, int], cur: dict[str, int]) -> TestResult | None:
    """Chi-square on the 2 x K table when counts allow, else per-category Fisher (Bonferroni); Cramer's V."""
    n0, n1 = sum(ref.values()), sum(cur.values())
    if n0 < MIN_SAMPLES or n1 < MIN_SAMPLES:
        return None
    cats = sorted(set(ref) | set(cur))
    first_seen = [c for c in cats if ref.get(c, 0) == 0 and cur.get(c, 0) > 0]
    # the two summaries: the share of the category that moved most ("length 3%" -> "length 40%"); the modes
    # alone would read "stop -> stop" for a stop share falling from 97% to 60%
    moved = moved_category(ref, cur)
    mode0, mode1 = f"{moved} {ref.get(moved, 0) / n0:.0%}", f"{moved} {cur.get(moved, 0) / n1:.0%}"
    detail: dict[str, Any] = {"first_seen": first_seen, "baseline": dict(ref), "current": dict(cur)}
    if len(cats) < 2:
        return TestResult(1.0, 0.0, 0.0, mode0, mode1, "chi_square", detail)
    table = np.array([[ref.get(c, 0) for c in cats], [cur.get(c, 0) for c in cats]], dtype=float)
    expected = table.sum(0, keepdims=True) * table.sum(1, keepdims=True) / table.sum()
    chi2 = float(((table - expected) ** 2 / np.maximum(expected, 1e-12)).sum())
    v = math.sqrt(chi2 / table.sum() / 1.0)
    if expected.min() >= 1 and (expected >= 5).mean() >= 0.8:
        p = pvalues.chi2_sf(chi2, len(cats) - 1)
        return TestResult(p, chi2, v, mode0, mode1, "chi_square", detail)
    ps = []
    for c in cats:
        k0, k1 = ref.get(c, 0), cur.get(c, 0)
        ps.append(pvalues.fisher_exact([[k1, n1 - k1], [k0, n0 - k0]]))
    p = min(1.0, min(ps) * len(cats))
    return TestResult(p, chi2, v, mode0, mode1, "fisher_exact_per_category", detail)


def moved_category(ref: dict[str, int], cur: dict[str, int]) -> str:
    """The category whose share moved most between two samples' counts (both non-empty)."""
    n0, n1 = sum(ref.values()), sum(cur.values())
    return max(sorted(set(ref) | set(cur)), key=lambda c: (abs(cur.get(c, 0) / n1 - ref.get(c, 0) / n0), c))


def benjamini_hochberg(p_values: Sequence[float], q: float) -> list[bool]:
    """Return which hypotheses BH rejects at FDR level q."""
    m = len(p_values)
    if m == 0:
        return []
    order = np.argsort(p_values)
    ranked = np.asarray(p_values, dtype=float)[order]
    below = ranked <= q * np.arange(1, m + 1) / m
    k = int(np.nonzero(below)[0].max()) + 1 if below.any() else 0
    reject = np.zeros(m, dtype=bool)
    reject[order[:k]] = True
    return reject.tolist()

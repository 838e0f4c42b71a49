"""monitor.drift.pvalues against scipy.stats, which the daemon no longer imports (38 MB resident)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from monitor.drift import pvalues


@pytest.mark.parametrize("seed", range(5))
def test_mann_whitney_matches_scipy_including_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(40):
        n, m = rng.integers(5, 60, 2)
        x = np.round(rng.normal(0, 1, n), 1)  # rounding makes ties
        y = np.round(rng.normal(rng.choice([0.0, 0.5, 1.0]), 1, m), 1)
        ours = pvalues.mannwhitneyu(x, y)
        ref = stats.mannwhitneyu(x, y, alternative="two-sided", method="asymptotic")
        assert ours.statistic == pytest.approx(ref.statistic, abs=1e-9)
        assert ours.pvalue == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-15)


def test_mann_whitney_all_equal_is_not_significant() -> None:
    assert pvalues.mannwhitneyu(np.ones(6), np.ones(7)).pvalue == 1.0


@pytest.mark.parametrize("seed", range(5))
def test_fisher_exact_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(60):
        table = [[int(v) for v in rng.integers(0, 30, 2)], [int(v) for v in rng.integers(0, 30, 2)]]
        assert pvalues.fisher_exact(table) == pytest.approx(stats.fisher_exact(table)[1], rel=1e-9, abs=1e-15)


def test_fisher_exact_degenerate_margins() -> None:
    assert pvalues.fisher_exact([[0, 0], [3, 4]]) == 1.0
    assert pvalues.fisher_exact([[0, 5], [0, 4]]) == 1.0


def test_ks_statistic_matches_scipy_and_p_value_is_kolmogorov_limit() -> None:
    rng = np.random.default_rng(7)
    for _ in range(100):
        n, m = rng.integers(5, 80, 2)
        x, y = rng.normal(0, 1, n), rng.normal(rng.choice([0.0, 0.7]), 1, m)
        ours = pvalues.ks_2samp(x, y)
        ref = stats.ks_2samp(x, y)
        assert ours.statistic == pytest.approx(ref.statistic, abs=1e-12)
        en = n * m / (n + m)
        assert ours.pvalue == pytest.approx(min(1.0, stats.kstwobign.sf(np.sqrt(en) * ref.statistic)), rel=1e-9)
        assert ours.pvalue >= 0.95 * ref.pvalue  # the limit is not materially less conservative than exact


def test_tails_match_scipy() -> None:
    for x, k in [(0.5, 1), (5.0, 3), (40.0, 12)]:
        assert pvalues.chi2_sf(x, k) == pytest.approx(stats.chi2.sf(x, k), rel=1e-12)
    for x, a, s in [(3.0, 2.0, 0.7), (0.01, 0.5, 2.0), (50.0, 4.0, 3.0)]:
        assert pvalues.gamma_sf(x, a, s) == pytest.approx(stats.gamma.sf(x, a, scale=s), rel=1e-12)


def test_the_daemon_does_not_import_scipy_stats() -> None:
    code = "import sys, monitor.app, monitor.cli; print('scipy.stats' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_daemon_imports_nothing_it_does_not_use_by_default() -> None:
    """What the default daemon never uses stays unloaded (memory), and NumPy's namespace is whole afterwards."""
    unused = ["numpy.f2py", "numpy.testing", "numpy.ma", "numpy.polynomial", "jsonschema", "opentelemetry.sdk",
              "sqlalchemy.dialects.postgresql", "alembic", "scipy.linalg"]
    code = ("import sys, monitor.app, monitor.cli; from monitor.drift import DriftEngine, replay; import numpy; "
            "assert 'scipy.special' in sys.modules; "
            f"print([m for m in {unused!r} if m in sys.modules]); "
            "print(all(n in dir(numpy) for n in ('ma', 'testing', 'polynomial'))); print(numpy.ma.masked_array([1]).sum())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:3] == ["[]", "True", "1"]


def test_the_banded_solver_loaded_without_scipy_linalg_is_lapacks_and_scipy_linalg_still_imports() -> None:
    """`dgbsv` comes from LAPACK's extension module, loaded without running `scipy.linalg`'s `__init__` (5 MB resident
    the daemon does not use); importing `scipy.linalg` afterwards works and gives the same solver."""
    code = ("import sys; from monitor.drift.cusum import arl_int; a = arl_int(0.07, 5, 2, 40); "
            "print('scipy.linalg' in sys.modules); import scipy.linalg, scipy.linalg.lapack; "
            "from monitor.drift._lean_scipy import dgbsv; "
            "print(arl_int(0.07, 5, 2, 40) == a, dgbsv.__doc__ == scipy.linalg.lapack.dgbsv.__doc__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["False", "True True"]


def test_a_lazy_export_named_like_its_module_is_itself_whichever_name_is_asked_for_first() -> None:
    """`monitor.drift.replay` is a function and its module's name: asking for `replay_observations` first left the
    module bound there (test modules that imported one before the other failed by collection order)."""
    code = "from monitor.drift import replay_observations; from monitor.drift import replay; print(callable(replay))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"

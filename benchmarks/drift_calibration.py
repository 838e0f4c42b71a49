"""False alarms of each drift detector on stationary data, measured, next to the budget it was given.

Run: .venv/bin/python benchmarks/drift_calibration.py [--quick]
A stationary stream at the default budget raises about one false event per 20,000 evaluations, too rare to
measure each detector by running the engine; so each detector is measured on its own:
- Bernoulli CUSUM on a rate: exact expected false alarms per 10,000 (Markov chain at the true rate), averaged
  over the reference the engine would have estimated (k ~ Binomial(n, p)), at the engine's own ARL0.
- normal-score CUSUM on a continuous value: simulated false alarms per 10,000 (many streams, each with its
  own random reference of n values), at ARL0 small enough to count, with the engine's threshold rule.
- window test (Mann-Whitney + KS) and whole-completion MMD: rejection rate of null samples at a level.
- the MMD's exact permutation test stops early once it cannot reject: its decisions, counted against the same
  test run to the end on the same relabellings (they must all agree: the stop keeps the level exactly), and the
  share of the relabellings it drew without a change.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drift_sim import VOCAB, completion_tokens, zipf  # noqa: E402
from scipy.special import ndtri  # noqa: E402
from scipy.stats import binom  # noqa: E402

from monitor.drift import DriftSettings  # noqa: E402
from monitor.drift import mmd as mm  # noqa: E402
from monitor.drift import rankcusum as rk  # noqa: E402
from monitor.drift import ratechart as rc  # noqa: E402
from monitor.drift.budget import rate_split  # noqa: E402
from monitor.drift.mmd import features, mmd_test  # noqa: E402
from monitor.drift.relabellings import exact_relabellings  # noqa: E402
from monitor.drift.twosample import continuous_test  # noqa: E402


def rate_cusum(arl0: float) -> None:
    """Exact expected false alarms per 10k of the engine's rate charts over estimated references.

    A direction runs two charts (moderate and large design shift) with ARL0s from ``budget.rate_split``; each is
    checked against its share and the pair against the direction's 1e4 / ARL0 (their false alarms add up)."""
    s = DriftSettings()
    main_arl0, large_arl0 = rate_split(s, arl0)
    sizes = (30, 100, 300, 1000, 3000)
    tables: dict[str, tuple[float, list[str]]] = {"moderate-shift chart": (main_arl0, [])}
    if large_arl0 is not None:
        tables["large-shift chart"] = (large_arl0, [])
        tables["both (the direction)"] = (arl0, [])
    for p in (0.002, 0.005, 0.01, 0.02, 0.05, 0.2, 0.5):
        rows: dict[str, list[float]] = {name: [] for name in tables}
        for n in sizes:
            ks = np.arange(n + 1)
            w = binom.pmf(ks, n, p)
            keep = w > 1e-7
            fa = fl = 0.0
            for k, wk in zip(ks[keep], w[keep], strict=True):
                ch = rc.rate_chart(int(k), n, s.rate_quantiles, s.rate_odds_ratio, s.rate_min_shift, main_arl0)
                fa += 0.0 if ch is None else wk / ch.arl(p)
                if large_arl0 is not None and ch is not None:  # the large chart runs only beside the other
                    lc = rc.rate_chart(int(k), n, s.rate_quantiles, s.rate_large_odds_ratio, s.rate_large_min_shift,
                                       large_arl0)
                    fl += 0.0 if lc is None else wk / lc.arl(p)
            total = w[keep].sum()
            sums = {"moderate-shift chart": fa, "large-shift chart": fl, "both (the direction)": fa + fl}
            for name in tables:
                rows[name].append(sums[name] / total * 1e4)
        for name, (a, lines) in tables.items():
            verdict = "ok" if max(rows[name]) <= 1e4 / a * 1.25 else "OVER"
            lines.append(f"{p:<10}" + "".join(f"{v:>10.3f}" for v in rows[name]) + f"   {verdict}")
    for name, (a, lines) in tables.items():
        print(f"Rate CUSUM, {name}: false alarms per 10,000 observations (exact, averaged over the estimated "
              f"reference); budget 1e4/ARL0 = {1e4 / a:.3f}")
        print(f"{'true rate':<10}" + "".join(f"{'n=' + str(n):>10}" for n in sizes))
        print("\n".join(lines))


def rank_cusum(arl0: float, sizes: tuple[int, ...], streams: int, steps: int, seed: int = 1) -> None:
    """Simulated two-sided false alarms per 10k of the normal-score CUSUM, each stream with its own reference."""
    s = DriftSettings()
    rng = np.random.default_rng(seed)
    row = []
    for n in sizes:
        ref = np.sort(rng.random((streams, n)), axis=1)  # reference in probability scale (any continuous law)
        flat = (ref + np.arange(streams)[:, None]).ravel()
        h = rk.threshold(s.rank_k, rk.ref_bucket(n), s.rate_credibility, arl0)
        up = np.zeros(streams)
        down = np.zeros(streams)
        alarms = 0
        off = np.arange(streams)
        for _ in range(steps):
            u = rng.random(streams)
            j = np.searchsorted(flat, u + off) - off * n  # references below the new value
            z = ndtri((j + 0.5) / (n + 1))
            up = np.maximum(0, up + z - s.rank_k)
            down = np.maximum(0, down - z - s.rank_k)
            hit = (up >= h) | (down >= h)
            alarms += int(hit.sum())
            up[hit] = 0
            down[hit] = 0
        row.append(alarms / (streams * steps) * 1e4)
    budget = 2e4 / arl0  # two one-sided detectors
    print(f"  ARL0 per side {arl0:>7.0f} (budget {budget:.2f}/10k for both sides): "
          + "  ".join(f"n={n}: {v:.2f}" for n, v in zip(sizes, row, strict=True))
          + f"   {'ok' if max(row) <= budget * 1.25 else 'OVER'}")


def window_test(trials: int, alpha: float) -> None:
    """Rejection rate of the continuous window test on null samples (window 30 vs reference 30 and 300)."""
    rng = np.random.default_rng(2)
    for nref in (30, 300):
        hits = 0
        for _ in range(trials):
            r = continuous_test(rng.lognormal(4, 0.3, nref).round(), rng.lognormal(4, 0.3, 30).round())
            hits += r is not None and r.p_value <= alpha
        print(f"  reference {nref:>3}: {hits}/{trials} = {hits / trials:.4f} at level {alpha} "
              f"({'ok' if hits <= _upper(trials, alpha) else 'OVER'})")


def mmd(trials: int, alphas: tuple[float, ...]) -> None:
    """Rejection rate of the engine's MMD on null samples: Gamma tail alone vs the engine's decision."""
    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(VOCAB)]
    gamma = dict.fromkeys(alphas, 0)
    engine = dict.fromkeys(alphas, 0)
    for t in range(trials):
        a = [features(" ".join(words[i] for i in completion_tokens(rng, zipf(), 30))) for _ in range(30)]
        b = [features(" ".join(words[i] for i in completion_tokens(rng, zipf(), 30))) for _ in range(30)]
        g = mmd_test(a, b, permutations=200, seed=t)
        for al in alphas:
            gamma[al] += g.p_value <= al
            e = g if g.p_value >= 20 * al else mmd_test(a, b, permutations=200, seed=t, alpha=al)
            engine[al] += e.p_value <= al
    for al in alphas:
        print(f"  level {al:<6}: Gamma tail {gamma[al] / trials:.4f}  engine (permutation-confirmed) "
              f"{engine[al] / trials:.4f}  ({'ok' if engine[al] <= _upper(trials, al) else 'OVER'})")


def mmd_early_stop(trials: int, alphas: tuple[float, ...]) -> None:
    """The exact test's early stop against the same test run to the end, on null and changed samples (one in 4)."""
    rng = np.random.default_rng(4)
    words = [f"w{i}" for i in range(VOCAB)]
    w = np.concatenate([np.full(30, 1 / 30), np.full(30, -1 / 30)])
    agree, differ, share = 0, 0, []

    def sample(shift: int) -> list:
        return [features(" ".join(words[(i + shift) % VOCAB] for i in completion_tokens(rng, zipf(), 30)))
                for _ in range(30)]

    for t in range(trials):
        k = mm.gram(sample(0) + sample(0 if t % 4 else 3), "spectrum")
        observed = float(w @ k @ w)
        for al in alphas:
            p, drawn = mm._exact(k, w, observed, al, np.random.default_rng(t))
            total = exact_relabellings(al)
            full = (1 + (mm._null(k, w, total, np.random.default_rng(t)) >= observed - 1e-12).sum()) / (1 + total)
            agree += (p <= al) == (full <= al)
            differ += (p <= al) != (full <= al)
            if t % 4:
                share.append(drawn / total)
    print(f"  decisions as the full test's: {agree} of {agree + differ} ({'ok' if not differ else 'DIFFER'}); "
          f"without a change it drew a median {np.median(share):.2%} of its relabellings (mean {np.mean(share):.1%})")


def _upper(trials: int, alpha: float) -> float:
    """Largest count still consistent with the level (one-sided 99% binomial bound)."""
    return float(binom.ppf(0.99, trials, alpha))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    q = ap.parse_args().quick
    t0 = time.time()
    from drift_sim import Sim

    from monitor.drift import DriftEngine

    eng = DriftEngine()
    sim = Sim(0)
    for _ in range(100):
        eng.observe(sim.next())
    st = eng.stream("c", "t")
    arl0 = st.arl0
    print(f"Default settings, simulated stream: {len(st.params)} rate directions ({len(st.params) + len(st.large)} "
          f"charts) + {2 * len(st._rank_signals())} normal-score CUSUMs, each detector with ARL0 {arl0:.0f}\n")
    rate_cusum(arl0)
    print("\nNormal-score CUSUM, simulated false alarms per 10,000 observations (own reference per stream):")
    streams, steps = (500, 10_000) if q else (2000, 20_000)
    for a in (2000.0, 20000.0):
        rank_cusum(a, (30, 100, 400), streams, steps)
    print("\nWindow test (Mann-Whitney + KS, Bonferroni-combined), null rejection rate:")
    window_test(2000 if q else 10000, 0.001)
    print("\nWhole-completion MMD (spectrum kernel, 30 vs 30 completions), null rejection rate:")
    mmd(300 if q else 1500, (0.05, 0.01, 0.002))
    print("\nWhole-completion MMD's exact test, stopped early vs run to the end (levels 1e-2, 1e-3, 1e-4):")
    mmd_early_stop(60 if q else 200, (1e-2, 1e-3, 1e-4))
    print(f"\ntotal {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()

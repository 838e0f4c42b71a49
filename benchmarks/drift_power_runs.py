"""The drift engine on simulated streams: false alarms on stationary ones, detection delays after a change, the
delays of a clean stream that starts refusing, and the power of its whole-completion MMD. Used by
`drift_power.py`."""

from __future__ import annotations

import numpy as np
from drift_sim import SCEN, VOCAB, Sim, completion_tokens, zipf


def false_alarms(streams: int, length: int) -> tuple[int, int, dict[str, int]]:
    """Run stationary streams at default settings; return (events, evaluations, events by signal)."""
    from monitor.drift import DriftEngine

    events, evals, by = 0, 0, {}
    for i in range(streams):
        eng = DriftEngine()
        sim = Sim(1000 + i)
        for _ in range(length):
            for u in eng.observe(sim.next()):
                if u.action == "opened":
                    events += 1
                    by[u.event.signal] = by.get(u.event.signal, 0) + 1
            evals += 1
        evals -= eng.settings.baseline_size  # baseline-building observations are not evaluations
    return events, evals, by


def delay(scenario: str, runs: int, pre: int, cap: int, zero: bool = False,
          budget: float | None = None) -> tuple[list[int], int, float]:
    """Detection delay (observations after the change) of the engine; return delays, misses, arl0 used.
    ``zero``: the canary declares ``zero_tolerance: [refused]`` (its rate is known to be 0, as the oracle knows).
    ``budget``: the stream's false_alarms_per_10k (default: the engine's)."""
    from monitor.drift import DriftEngine, DriftSettings

    watched = {"refusal": {"refused"}, "length": {"output_chars", "output_tokens", "completion", "similarity"},
               "swap": None}
    out, misses, arl0 = [], 0, 0.0
    for r in range(runs):
        eng = DriftEngine(DriftSettings(false_alarms_per_10k=budget) if budget else None,
                          zero_tolerance={"c": ["refused"]} if zero else None)
        p_before, p_after = SCEN[scenario][:2] if scenario.startswith("refusal") else (0.05, 0.05)
        sim = Sim(5000 + r, refusal=p_before)
        for _ in range(pre):
            eng.observe(sim.next())
        st = eng.stream("c", "t")
        arl0 = st.arl0  # in-control ARL0 the engine grants each one-sided CUSUM of this stream
        sim.refusal = p_after
        if scenario == "length":
            sim.mean_len *= 1.3
        if scenario == "swap":
            sim.probs = zipf(shift=7)
        kind = "refusal" if scenario.startswith("refusal") else scenario
        found = None
        for t in range(1, cap + 1):
            for u in eng.observe(sim.next()):
                if u.action == "opened" and (watched[kind] is None or u.event.signal in watched[kind]):
                    found = t
            if found:
                break
        if found is None:
            misses += 1
            found = cap
        out.append(found)
    return out, misses, arl0


def breakage(seeds: int = 8, cap: int = 400, rates: tuple[float, ...] = (1.0, 0.85, 0.5)) -> None:
    """Observations until the `refused` event opens when a clean stream (refusal 0) starts refusing at 100%, 85%
    or 50% (or `rates`), after 30 (a fresh baseline), 100, 300 or 1,000 observations: a canary that starts failing
    every time. None: no event within `cap` observations."""
    from monitor.drift import DriftEngine

    print(f"Breakage: observations after the change until the `refused` event opens ({seeds} seeds, cap {cap})")
    for after in rates:
        for pre in (30, 100, 300, 1000):
            ds: list[int | None] = []
            for seed in range(seeds):
                eng, sim = DriftEngine(), Sim(seed, refusal=0.0)
                for _ in range(pre):
                    eng.observe(sim.next())
                sim.refusal = after
                for i in range(1, cap + 1):
                    if any(u.action == "opened" and u.event.signal == "refused" for u in eng.observe(sim.next())):
                        ds.append(i)
                        break
                else:
                    ds.append(None)
            print(f"  0% -> {after:.0%}, {pre:>4} before: {ds}", flush=True)


def mmd_power(trials: int, n: int) -> dict[str, float]:
    """Rejection rate at 5% of the engine's MMD (both kernels) for 10 samples per prompt."""
    from monitor.drift.mmd import features, mmd_test

    rng = np.random.default_rng(7)
    words = [f"w{i}" for i in range(VOCAB)]
    cases = {"same model": zipf(), "quantised (a=1.2)": zipf(a=1.2), "swapped": zipf(shift=7)}
    out = {}
    for kernel in ("spectrum", "hamming"):
        for name, probs in cases.items():
            hits = 0
            for t in range(trials):
                a = [" ".join(words[i] for i in completion_tokens(rng, zipf(), 30)) for _ in range(n)]
                b = [" ".join(words[i] for i in completion_tokens(rng, probs, 30)) for _ in range(n)]
                r = mmd_test([features(x) for x in a], [features(x) for x in b], kernel=kernel, permutations=200, seed=t)
                hits += r is not None and r.p_value < 0.05
            out[f"{kernel}: {name}"] = hits / trials
    return out

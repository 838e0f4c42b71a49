# ruff: noqa: B007, B023
"""Power and false alarms of the drift engine on simulated streams, next to an oracle and peer tools.

Run: .venv/bin/python benchmarks/drift_power.py [--quick] [--compare-python /path/to/python]
The comparison tools (alibi-detect, model-equality-testing) are run in a subprocess with --compare-python
(default: this interpreter) because their pinned dependencies (numpy<2, CUDA torch) do not fit the project venv.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

VOCAB = 400
ROOT = Path(__file__).resolve().parents[1]


# -- simulation (numpy only: also used by the comparison worker) -------------------------------------------
def zipf(shift: int = 0, a: float = 1.1) -> np.ndarray:
    """Word probabilities of a model: Zipf over the vocabulary, ranks rotated by shift (a model swap)."""
    p = 1.0 / np.arange(1, VOCAB + 1) ** a
    return np.roll(p / p.sum(), shift)


def completion_tokens(rng: np.random.Generator, probs: np.ndarray, mean_len: float) -> np.ndarray:
    """Sample one completion as word ids with a log-normal length."""
    n = max(3, int(rng.lognormal(math.log(mean_len), 0.3)))
    return rng.choice(VOCAB, size=n, p=probs)


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


# -- the engine on simulated streams -----------------------------------------------------------------------
class Sim:
    """A simulated canary x target stream: refusals, lengths, latency, model name, vocabulary."""

    def __init__(self, seed: int, refusal: float = 0.05, mean_len: float = 60, shift: int = 0, model: str = "m-1"):
        self.rng = np.random.default_rng(seed)
        self.refusal, self.mean_len, self.probs, self.model = refusal, mean_len, zipf(shift), model
        self.words = [f"w{i}" for i in range(VOCAB)]
        self.t = 0

    def next(self, canary: str = "c", target: str = "t"):  # noqa: ANN201
        """Return the next Observation."""
        from datetime import UTC, datetime, timedelta

        from monitor.domain import CallResult, ErrorType, FinishReason, Observation, Usage

        self.t += 1
        at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=5 * self.t)
        rng = self.rng
        if rng.random() < 0.01:
            call = CallResult(error_type=ErrorType.TIMEOUT, latency_s=30.0)
            return Observation(canary, target, "sim", "m", at, call, id=f"{canary}-{self.t}")
        refused = rng.random() < self.refusal
        if refused:
            text = "I'm sorry, but I can't help with that request."
        else:
            text = " ".join(self.words[i] for i in completion_tokens(rng, self.probs, self.mean_len))
        fr = FinishReason.LENGTH if rng.random() < 0.02 else FinishReason.STOP
        call = CallResult(text=text, finish_reason=fr, response_model=self.model, system_fingerprint="fp-1",
                          usage=Usage(output_tokens=len(text.split())), latency_s=float(rng.lognormal(0, 0.3)),
                          ttft_s=float(rng.lognormal(-1, 0.3)))
        return Observation(canary, target, "sim", "m", at, call, refusal="full" if refused else "none",
                           id=f"{canary}-{self.t}")


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


SCEN = {"refusal 2%->10%": (0.02, 0.10), "refusal 5%->20%": (0.05, 0.20), "refusal 0%->5%": (0.0, 0.05)}


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


# -- comparison worker (runs under --compare-python; imports only numpy and the peer tools) ------------------
def worker(cfg: dict) -> dict:
    """Measure alibi-detect and model-equality-testing on the same simulated data."""
    res: dict = {}
    try:
        from alibi_detect.cd import CVMDriftOnline, FETDriftOnline
    except Exception as exc:  # noqa: BLE001 - report why the peer is missing
        res["alibi"] = f"not installed: {type(exc).__name__}: {exc}"
    else:
        res["alibi"] = _alibi(cfg, FETDriftOnline, CVMDriftOnline)
    try:
        import torch  # noqa: F401
        from model_equality_testing.distribution import CompletionSample
        from model_equality_testing.tests import mmd_hamming
    except Exception as exc:  # noqa: BLE001
        res["met"] = f"not installed: {type(exc).__name__}: {exc}"
    else:
        res["met"] = _met(cfg, CompletionSample, mmd_hamming)
    return res


def _measure(alarm: Any, reset: Any, changed: Any, nulls: Any, runs: int, cap: int) -> dict:
    """One detector on one reference: mean delay over ``runs`` changes, then alarms over the in-control ``nulls``.

    ``alarm(x)`` feeds one observation and says whether the detector alarms; ``reset()`` restarts it (before each
    change and after each false alarm); ``changed()`` draws one observation after the change; ``nulls()`` draws
    the in-control observations.
    """
    delays = []
    for _ in range(runs):
        reset()
        t = cap
        for t in range(1, cap + 1):
            if alarm(changed()):
                break
        delays.append(t)
    reset()
    alarms = 0
    xs = nulls()
    for x in xs:
        if alarm(x):
            alarms += 1
            reset()
    return {"delay": float(np.mean(delays)), "alarms": alarms, "null": len(xs)}


def _alibi(cfg: dict, fet_cls, cvm_cls) -> dict:  # noqa: ANN001
    """alibi-detect's online detectors, each rate scenario over ``refs`` independently drawn references.

    FETDriftOnline calibrates its thresholds to the reference it is given (its ERT holds for a stream whose
    true rate is the reference's share), so its false alarms on real streams depend on how the reference
    happened to fall: each reference gets its own detector, its mean delay over ``runs`` changes, and its
    false alarms on ``null`` in-control observations (reset after each alarm).
    """
    ert, runs, cap, nref = cfg["ert"], cfg["runs"], cfg["cap"], cfg["nref"]
    out: dict = {}
    for name, (p0, p1) in SCEN.items():
        rng = np.random.default_rng(11)
        per = []
        for _ in range(cfg["refs"]):
            ref = (rng.random(nref) < p0).astype(float)
            try:
                det = fet_cls(ref, ert=ert, window_sizes=[10, 30], n_bootstraps=cfg["boot"], verbose=False)
            except ValueError as exc:
                per.append({"k": int(ref.sum()), "error": str(exc)})
                if p0 == 0:
                    break  # every reference is all-zero: the same error each time
                continue
            res = _measure(lambda x: _drift(det, x), det.reset_state, lambda: float(rng.random() < p1),
                           lambda: (rng.random(cfg["null"]) < p0).astype(float), runs, cap)
            per.append({"k": int(ref.sum()), **res})
        out[name] = per
    rng = np.random.default_rng(12)
    per = []
    for _ in range(cfg["refs_cvm"]):
        det = cvm_cls(rng.normal(math.log(60), 0.3, nref), ert=ert, window_sizes=[10, 30],
                      n_bootstraps=cfg["boot"], verbose=False)
        per.append(_measure(lambda x: _drift(det, x), det.reset_state, lambda: rng.normal(math.log(60 * 1.3), 0.3),
                            lambda: rng.normal(math.log(60), 0.3, cfg["null"]), runs, cap))
    out["length +30%"] = per
    return out


def _drift(det: Any, x: float) -> bool:
    """Feed one observation to an alibi-detect online detector; True when it flags drift."""
    return bool(det.predict(np.array([x]))["data"]["is_drift"])


def _met(cfg: dict, sample_cls, stat) -> dict:  # noqa: ANN001
    out = {}
    rng = np.random.default_rng(7)
    n, trials, L = cfg["n"], cfg["trials"], 30
    cases = {"same model": zipf(), "quantised (a=1.2)": zipf(a=1.2), "swapped": zipf(shift=7)}
    for name, probs in cases.items():
        hits = 0
        for _ in range(trials):
            xs = [completion_tokens(rng, zipf(), 30) for _ in range(n)] + [completion_tokens(rng, probs, 30) for _ in range(n)]
            arr = np.full((2 * n, L), VOCAB, dtype=np.int64)
            for i, x in enumerate(xs):
                arr[i, : min(L, len(x))] = x[:L]
            prompts = np.zeros(2 * n, dtype=np.int64)

            def s(idx: np.ndarray) -> float:
                return float(stat(sample_cls(prompts[idx[:n]], arr[idx[:n]], 1), sample_cls(prompts[idx[n:]], arr[idx[n:]], 1)))

            obs = s(np.arange(2 * n))
            null = [s(rng.permutation(2 * n)) for _ in range(100)]
            hits += (1 + sum(v >= obs for v in null)) / 101 < 0.05
        out[name] = hits / trials
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--compare-python", default="/tmp/cmpvenv/bin/python")
    ap.add_argument("--peers-only", action="store_true", help="only the comparison with peer tools")
    ap.add_argument("--delays-only", action="store_true", help="only the engine's detection delays (no peers)")
    ap.add_argument("--pre", type=int, default=300, help="observations before the change (the history the "
                    "engine has to estimate rates from)")
    ap.add_argument("--budget", type=float, help="the stream's false_alarms_per_10k (default 0.5); e.g. 0.05 for a "
                    "stream of a fleet whose drift.false_alarms_per_day cap shrinks each stream's budget tenfold")
    ap.add_argument("--breakage", action="store_true", help="only the delays when a clean stream starts refusing "
                    "at 100%%, 85%% or 50%% (a canary that starts failing every time)")
    ap.add_argument("--after", help="with --breakage: the refusal rates after the change, e.g. 0.3,0.15")
    ap.add_argument("--cap", type=int, default=400, help="with --breakage: observations watched after the change")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    sys.path.insert(0, str(ROOT))
    if args.breakage:
        breakage(cap=args.cap, rates=tuple(float(r) for r in args.after.split(",")) if args.after else (1.0, 0.85, 0.5))
        return
    q = args.quick
    t0 = time.time()
    if not args.peers_only:
        _engine_sections(q, args.pre, args.delays_only, args.budget)
    if args.delays_only:
        print(f"\ntotal {time.time() - t0:.0f} s")
        return
    cfg = {"ert": 1000, "runs": 10, "refs": 4 if q else 20, "refs_cvm": 3 if q else 10, "null": 5000 if q else 20000, "cap": 2000,
           "nref": 300, "boot": 20000 if q else 50000, "n": 10, "trials": 20 if q else 50}
    try:
        proc = subprocess.run([args.compare_python, __file__, "--worker", json.dumps(cfg)], capture_output=True,
                              text=True, timeout=3600)
        peer = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else {
            "alibi": f"not installed: worker failed: {proc.stderr.strip()[-300:]}", "met": "not installed: worker failed"}
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as exc:
        peer = {"alibi": f"not installed: {exc}", "met": f"not installed: {exc}"}
    print(f"\nPeers at ERT/ARL0 = {cfg['ert']}, reference of {cfg['nref']} in-control samples, run in {args.compare_python}:")
    _print_rate_peers(cfg, peer["alibi"])
    _print_length_peers(cfg, None if isinstance(peer["alibi"], str) else peer["alibi"]["length +30%"])
    if isinstance(peer["met"], str):
        print("  model-equality-testing", peer["met"])
    else:
        for k, v in peer["met"].items():
            print(f"  model-equality-testing MMD-Hamming {k:<20}{v:>6.2f}")
    print(f"\ntotal {time.time() - t0:.0f} s")


def _engine_sections(q: bool, pre: int, delays_only: bool, budget: float | None = None) -> None:
    """False alarms, detection delays and MMD power of the engine."""
    if not delays_only:
        _false_alarm_section(q)
    _delay_section(q, pre, budget)
    if delays_only:
        return
    print("\nWhole-completion MMD, 10 samples per prompt, rejection rate at 5% (same model = size):")
    trials = 40 if q else 100
    for k, v in mmd_power(trials, 10).items():
        print(f"  engine {k:<32}{v:>6.2f}")


def _false_alarm_section(q: bool) -> None:
    streams, length = (10, 1500) if q else (40, 2000)
    ev, evals, by = false_alarms(streams, length)
    rate = ev / evals * 1e4
    from scipy.stats import chi2

    hi = chi2.ppf(0.975, 2 * ev + 2) / 2 / evals * 1e4
    from monitor.drift import DriftSettings

    print(f"False alarms on stationary streams (default settings, budget {DriftSettings().false_alarms_per_10k} "
          f"per 10,000): {ev} in {evals} evaluations = {rate:.2f} per 10,000, 95% upper bound {hi:.2f} "
          f"(target <= 1: {'MET' if rate <= 1 else 'MISSED'}) {by}")
    print("  (per-detector run lengths to false alarm: benchmarks/drift_calibration.py)")


def _delay_section(q: bool, pre: int, budget: float | None = None) -> None:
    runs, cap = (8, 1500) if q else (20, 2000)
    print(f"\nDetection delay after the change (mean over {runs} runs, {pre} observations before it"
          + (f", {budget:g} false alarms per 10,000 per stream" if budget else "") + "):")
    print("oracle = CUSUM that knows both rates (or the length shift) at the ARL0 the engine grants each one-sided")
    print("detector; ref-limited = the engine's own pair of rate charts given an ideal reference (all pre-change "
          "observations).")
    print("ref-limited n=1000/3000: the same chart given a longer history (how much of the gap is the reference).")
    print(f"{'scenario':<18}{'engine':>10}{'misses':>8}{'oracle':>10}{'ratio':>8}{'ARL0':>9}{'ref-limited':>13}"
          f"{'n=1000':>9}{'n=3000':>9}  target <=1.5x oracle")
    rng = np.random.default_rng(3)
    zero = "0%->5%, declared"  # the same change on a canary that declares zero_tolerance: [refused]
    for name in [*SCEN, zero, "length +30%", "model swap"]:
        key = "length" if name.startswith("length") else "swap" if name == "model swap" else name
        d, miss, arl0 = delay("refusal 0%->5%" if name == zero else key, runs, pre, cap, zero=name == zero,
                              budget=budget)
        lim = lim1k = lim3k = float("nan")
        if name == zero:
            orc = float(np.mean([oracle_bernoulli_delay(rng, 0.0, 0.05, arl0, cap) for _ in range(400)]))
        elif name in SCEN:
            p0, p1 = SCEN[name]
            orc = float(np.mean([oracle_bernoulli_delay(rng, p0, p1, arl0, cap) for _ in range(400)]))
            lim, lim1k, lim3k = (float(np.mean([reference_limited_delay(rng, p0, p1, arl0, n, cap) for _ in range(400)]))
                                 for n in (pre, 1000, 3000))
        elif key == "length":
            orc = float(np.mean([oracle_gauss_delay(rng, math.log(1.3), 0.3, arl0, cap) for _ in range(400)]))
        else:
            orc = float("nan")
        ratio = np.mean(d) / orc if orc == orc else float("nan")
        verdict = "" if ratio != ratio else ("MET" if ratio <= 1.5 else "MISSED")
        lim_s = "" if lim != lim else f"{lim:.1f}"
        more = "".join(f"{'' if v != v else f'{v:.1f}':>9}" for v in (lim1k, lim3k))
        print(f"{name:<18}{np.mean(d):>10.1f}{miss:>8}{orc:>10.1f}{ratio:>8.2f}{arl0:>9.0f}{lim_s:>13}{more}  {verdict}")


def _marginal(p0: float, p1: float, arl0: float, n: int) -> tuple[float, float]:
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


def _matched(p0: float, p1: float, rate: float, n: int) -> tuple[float, float, float]:
    """The smallest nominal ARL0 whose real false-alarm rate is at most ``rate``; return (ARL0, rate, delay)."""
    lo, hi = 0.5, 6.0  # log10 ARL0
    best = (10**hi, *_marginal(p0, p1, 10**hi, n))
    for _ in range(14):
        mid = (lo + hi) / 2
        r, d = _marginal(p0, p1, 10**mid, n)
        if r <= rate:
            hi, best = mid, (10**mid, r, d)
        else:
            lo = mid
    return best


def _oracle(p0: float, p1: float, rate: float) -> float:
    """Exact mean delay of the CUSUM that knows both rates, with at most ``rate`` false alarms per observation."""
    from monitor.drift.cusum import known_chart

    if p0 <= 0:
        return 1.0 / p1
    ch = known_chart(p0, p1, 1.0 / rate)
    return ch.arl(p1)


def _print_rate_peers(cfg: dict, alibi: dict | str) -> None:
    """Rate charts next to alibi-detect's FETDriftOnline, compared at the false alarms streams really see."""
    n, ert = cfg["nref"], cfg["ert"]
    print(f"  rate charts: false alarms per 10,000 in-control observations over many streams, each with its own "
          f"reference ({cfg['refs']} references per alibi-detect scenario, engine exact over all)")
    print(f"  {'scenario':<18}{'alibi FA/10k':>13}{'alibi delay':>12}{'engine FA/10k':>14}{'delay':>7}"
          f"{'engine @alibi FA':>17}{'oracle @alibi FA':>17}{'oracle @ERT':>12}")
    for name, (p0, p1) in SCEN.items():
        r1k, d1k = _marginal(p0, p1, ert, n)
        row = f"  {name:<18}"
        peer = None if isinstance(alibi, str) else [v for v in alibi[name] if "error" not in v]
        if peer:
            fa10k, _, _, dl, _ = _pooled(peer)
            fa = fa10k / 1e4
            _, _, dm = _matched(p0, p1, fa, n)
            row += f"{fa10k:>13.1f}{dl:>12.1f}{r1k * 1e4:>14.1f}{d1k:>7.1f}{dm:>17.1f}{_oracle(p0, p1, fa):>17.1f}"
        else:
            why = alibi if isinstance(alibi, str) else alibi[name][0]["error"][:70]
            row += f"{'cannot run':>13}{'':>12}{r1k * 1e4:>14.1f}{d1k:>7.1f}{'':>17}{'':>17}"
            row += f"{_oracle(p0, p1, 1 / ert):>12.1f}  alibi-detect: {why}"
            print(row)
            continue
        print(row + f"{_oracle(p0, p1, 1 / ert):>12.1f}")
        if peer and len(peer) < cfg["refs"]:
            print(f"    ({cfg['refs'] - len(peer)} of {cfg['refs']} alibi-detect references could not run)")
    if not isinstance(alibi, str):
        for name in SCEN:
            peer = [v for v in alibi[name] if "error" not in v]
            if peer:
                ks = sorted((v["k"], round(v["alarms"] / v["null"] * 1e4, 1)) for v in peer)
                print(f"  alibi-detect {name}: {_fa_and_delay(peer)} (95%, over references); "
                      f"(refusals in reference, FA/10k) per reference: {ks}")


def _pooled(per: list[dict]) -> tuple[float, float, float, float, float]:
    """Over references: false alarms per 10,000 pooled (with its 95% interval), mean delay and its 95% half-width."""
    from scipy.stats import chi2

    a, obs = sum(v["alarms"] for v in per), sum(v["null"] for v in per)
    lo, hi = chi2.ppf(0.025, 2 * a) / 2 / obs * 1e4 if a else 0.0, chi2.ppf(0.975, 2 * a + 2) / 2 / obs * 1e4
    d = [v["delay"] for v in per]
    se = float(np.std(d, ddof=1) / math.sqrt(len(d))) if len(d) > 1 else math.nan
    return a / obs * 1e4, lo, hi, float(np.mean(d)), 1.96 * se


def _fa_and_delay(per: list[dict]) -> str:
    """The pooled false alarms and mean delay over references, as one line."""
    fa, lo, hi, d, half = _pooled(per)
    return f"false alarms/10k {fa:5.1f} [{lo:.1f}, {hi:.1f}]  delay {d:5.1f} +-{half:.1f}"


def _length_ours(cfg: dict, ert: float, refs: int) -> list[dict]:
    """The engine's normal-score CUSUM on log length at nominal ``ert``, per reference: delay to +30%, false alarms."""
    from monitor.drift import DriftSettings
    from monitor.drift import rankcusum as rk

    st = DriftSettings()
    rng = np.random.default_rng(12)
    per = []
    h = rk.threshold(st.rank_k, cfg["nref"], st.rate_credibility, 2 * ert)  # two sides share the ERT
    for _ in range(refs):
        ref = sorted(rng.normal(math.log(60), 0.3, cfg["nref"]).tolist())
        c = rk.RankCusum()

        def alarm(x: float, ref: list[float] = ref, c: rk.RankCusum = c) -> bool:
            c.update(rk.normal_score(ref, x), st.rank_k)
            return c.level() >= h

        per.append(_measure(alarm, c.reset, lambda: rng.normal(math.log(60 * 1.3), 0.3),
                            lambda: rng.normal(math.log(60), 0.3, cfg["null"]), cfg["runs"], cfg["cap"]))
    return per


def _print_length_peers(cfg: dict, alibi: list[dict] | None) -> None:
    """Length +30% (log length, sd 0.3): rank CUSUM next to CVMDriftOnline, both at nominal ERT, each measured."""
    refs = 4 * cfg["refs_cvm"]  # the engine's side is cheap: more references, less noise
    print(f"  length +30% (log length, sd 0.3): false alarms over {cfg['null']} in-control observations per reference "
          f"(alibi-detect {cfg['refs_cvm']} references, engine {refs}); the engine also at lower nominal ERTs, to be "
          f"read at alibi-detect's real false-alarm rate")
    print(f"    alibi-detect CVMDriftOnline, nominal ERT {cfg['ert']}: "
          f"{_fa_and_delay(alibi) if alibi else 'not installed'}")
    for ert in (cfg["ert"], cfg["ert"] / 2, cfg["ert"] / 4):
        print(f"    engine rank CUSUM, nominal ERT {ert:>5.0f}: {_fa_and_delay(_length_ours(cfg, ert, refs))}")


if __name__ == "__main__":
    main()

# ruff: noqa: B007, B023
"""The comparison worker of `drift_power.py`: alibi-detect's online detectors and model-equality-testing's
MMD-Hamming on the same simulated data. It runs under `--compare-python` (their pinned dependencies do not fit the
project venv), so it imports only numpy, `drift_sim` and the peer tools."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from drift_sim import SCEN, VOCAB, completion_tokens, zipf


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


def measure(alarm: Any, reset: Any, changed: Any, nulls: Any, runs: int, cap: int) -> dict:
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
            res = measure(lambda x: _drift(det, x), det.reset_state, lambda: float(rng.random() < p1),
                           lambda: (rng.random(cfg["null"]) < p0).astype(float), runs, cap)
            per.append({"k": int(ref.sum()), **res})
        out[name] = per
    rng = np.random.default_rng(12)
    per = []
    for _ in range(cfg["refs_cvm"]):
        det = cvm_cls(rng.normal(math.log(60), 0.3, nref), ert=ert, window_sizes=[10, 30],
                      n_bootstraps=cfg["boot"], verbose=False)
        per.append(measure(lambda x: _drift(det, x), det.reset_state, lambda: rng.normal(math.log(60 * 1.3), 0.3),
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

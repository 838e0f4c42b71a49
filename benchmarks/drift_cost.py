"""Cost of analysing one new observation with 1,000 active canary x target streams.

Run: .venv/bin/python benchmarks/drift_cost.py [--streams 1000] [--rounds 60] [--false-alarms-per-10k 0.5]
(a budget below the default stands for a large fleet under ``drift.false_alarms_per_day``: e.g. 0.0041 for 28 pairs
observing once a second at the default 1 a day, which sets the whole-completion test's level to 1.9e-6).
Prints the mean time per observation of DriftEngine.observe (signals included) next to computing the
signals only, after every stream has a ready baseline and full windows (steady state).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drift_sim import Sim  # noqa: E402

from monitor.drift import DriftEngine, compute_signals  # noqa: E402
from monitor.drift.settings import DriftSettings  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=130, help="observations per stream before timing")
    ap.add_argument("--rounds", type=int, default=60, help="timed observations per stream")
    ap.add_argument("--false-alarms-per-10k", type=float, default=None, help="the per-stream budget (default: 0.5)")
    args = ap.parse_args()
    eng = DriftEngine(DriftSettings() if args.false_alarms_per_10k is None
                      else DriftSettings(false_alarms_per_10k=args.false_alarms_per_10k))
    sims = [Sim(i) for i in range(args.streams)]
    names = [f"canary-{i}" for i in range(args.streams)]
    t0 = time.perf_counter()
    for _ in range(args.warmup):
        for name, sim in zip(names, sims, strict=True):
            eng.observe(sim.next(name, "target"))
    print(f"warm-up: {args.streams} streams x {args.warmup} observations in {time.perf_counter() - t0:.0f} s")
    obs = [[sim.next(name, "target") for name, sim in zip(names, sims, strict=True)] for _ in range(args.rounds)]
    t0 = time.perf_counter()
    for batch in obs:
        for o in batch:
            compute_signals(o, eng.baseline(o.canary, o.target))
    signals_only = (time.perf_counter() - t0) / (args.rounds * args.streams)
    gcs: list[int] = []
    gc.callbacks.append(lambda phase, info: gcs.append(info["generation"]) if phase == "start" else None)
    t0, cpu0 = time.perf_counter(), time.process_time()
    worst, worst_no_gc, worst_gc = 0.0, 0.0, []
    for batch in obs:
        for o in batch:
            seen = len(gcs)
            t1 = time.perf_counter()
            eng.observe(o)
            dt = time.perf_counter() - t1
            if dt > worst:
                worst, worst_gc = dt, gcs[seen:]
            if len(gcs) == seen:
                worst_no_gc = max(worst_no_gc, dt)
    full = (time.perf_counter() - t0) / (args.rounds * args.streams)
    cpu = (time.process_time() - cpu0) / (args.rounds * args.streams)
    print(f"{'what':<44}{'mean ms/observation':>22}")
    print(f"{'baseline: compute_signals only':<44}{signals_only * 1e3:>22.3f}")
    print(f"{'DriftEngine.observe (signals + all tests)':<44}{full * 1e3:>22.3f}")
    print(f"{'  of which tests (difference)':<44}{(full - signals_only) * 1e3:>22.3f}")
    print(f"{'DriftEngine.observe, process CPU time':<44}{cpu * 1e3:>22.3f}  (a shared machine's wall time is not)")
    print(f"worst single observation: {worst * 1e3:.1f} ms (Python GC collections during it: generations "
          f"{worst_gc or 'none'}); worst with no GC collection during it: {worst_no_gc * 1e3:.1f} ms")
    print(f"target < 5 ms: {'MET' if full < 0.005 else 'MISSED'}")


if __name__ == "__main__":
    main()

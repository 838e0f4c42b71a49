"""How late the event loop wakes while a whole-completion certification runs, with NumPy's BLAS on every core or one.

Run: .venv/bin/python benchmarks/loop_lateness.py [--sleeps 1000] [--repeat 2]

The event loop times the calls in flight (TTFT, latency): a wake-up that comes late is a latency measured long.
Each configuration runs in a process of its own (a BLAS thread count is per process), alternated `--repeat` times:
an asyncio loop sleeps 5 ms `--sleeps` times and records how late each wake-up came, beside a thread doing pure
Python work (the analysis thread) and, but in the first, a thread running the exact permutation test of a real
certification over and over (100 reference and 30 current simulated completions, a model swapped between them):
with NumPy's BLAS on every core (before), on one thread, and on one thread with the certifying thread's priority
lowered (the daemon: monitor.cpu_share).
Prints p50 and p99 lateness per configuration, and the certification's relabellings per second.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKER = r"""
import asyncio, json, sys, threading, time
sys.path[:0] = [ROOT, ROOT + "/benchmarks"]
import numpy as np
from drift_sim import Sim, zipf
from monitor.cpu_share import lower_this_thread, one_blas_thread
from monitor.drift import mmd

mode, sleeps = sys.argv[1], int(sys.argv[2])
if mode.startswith("one BLAS thread"):
    one_blas_thread()
sim = Sim(1, refusal=0.0)
ref = [mmd.features(sim.next().text or "") for _ in range(100)]
sim.probs = zipf(7)
cur = [mmd.features(sim.next().text or "") for _ in range(30)]
k = mmd.gram(ref + cur, "spectrum")
w = np.concatenate([np.full(100, 1 / 100), np.full(30, -1 / 30)])
stop, drawn = threading.Event(), [0]

def certify():
    if mode.endswith("lowered"):
        lower_this_thread()
    rng = np.random.default_rng(0)
    while not stop.is_set():  # level 1e-4: 20,000 relabellings a test, none as extreme (a clear change)
        drawn[0] += mmd._exact(k, w, float(w @ k @ w), 1e-4, rng)[1]

def analysis():  # pure Python, as the analysis thread's signals and charts
    while not stop.is_set():
        sum(i * i for i in range(20000))

async def measure():
    late = []
    for _ in range(sleeps):
        t = time.perf_counter()
        await asyncio.sleep(0.005)
        late.append(time.perf_counter() - t - 0.005)
    return late

sys.setswitchinterval(0.001)  # as the daemon (monitor.app)
threads = [threading.Thread(target=analysis, daemon=True)]
if mode != "no certification":
    threads.append(threading.Thread(target=certify, daemon=True))
for t in threads:
    t.start()
time.sleep(0.5)
t0 = time.perf_counter()
late = asyncio.run(measure())
rate = drawn[0] / (time.perf_counter() - t0 + 0.5)
stop.set()
print(json.dumps({"p50": float(np.percentile(late, 50)) * 1000, "p99": float(np.percentile(late, 99)) * 1000,
                  "rate": rate}))
"""

MODES = ("no certification", "BLAS on every core", "one BLAS thread",
         "one BLAS thread, certifying thread lowered")  # the last: the daemon (monitor.cpu_share)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sleeps", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    code = f"ROOT = {str(ROOT)!r}\n" + WORKER
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
    for _ in range(args.repeat):
        for mode in MODES:
            out = subprocess.run([sys.executable, "-c", code, mode, str(args.sleeps)], capture_output=True, text=True,
                                 check=True, env=env)
            runs[mode].append(json.loads(out.stdout))
    print("| configuration | event loop lateness p50 | p99 | relabellings / s |")
    print("|---|---|---|---|")
    for mode, rs in runs.items():
        rate = ", ".join(f"{r['rate'] / 1000:.0f}k" for r in rs) if mode != "no certification" else ""
        p50 = " / ".join(f"{r['p50']:.2f}" for r in rs)
        p99 = " / ".join(f"{r['p99']:.2f}" for r in rs)
        print(f"| {mode} | {p50} ms | {p99} ms | {rate} |")
    worst = {m: max(r["p99"] for r in rs) for m, rs in runs.items()}
    print(f"\nworst p99, before (BLAS on every core) / the daemon: {worst[MODES[1]] / worst[MODES[3]]:.2f}x")


if __name__ == "__main__":
    main()

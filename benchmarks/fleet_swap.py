"""A provider-wide model swap at a large fleet's false-alarm level: how long the other streams' analyses wait.

Run: .venv/bin/python benchmarks/fleet_swap.py [--swapped 6] [--steady 6] [--after 60]

At a fleet's level (``drift.false_alarms_per_day`` over many pairs: 1.9e-6 per whole-completion test here, the level
of tests/test_drift_mmd_level.py) each opening of a whole-completion event is certified by an exact permutation test
of about a million relabellings: seconds of CPU. A provider that swaps the model behind every canary at once opens
one per stream. The real ``Analysis`` (SQLite store in a temporary folder) is fed, after a warm-up that readies every
baseline, the observations that follow the swap, round-robin over `--swapped` streams whose vocabulary changed and
`--steady` streams that did not, `--rate` a second (``on_observation`` holds a run up once analysis lags 5 s).
Twice, side by side in one process: certifying inline on the analysis thread (as before), and on its own thread.
Printed per run: how long runs were held up handing their observations over, the latency of each observation from
hand-over to analysed (steady streams: their analysis only waits), when the last event opened, and the events opened
(both runs must open the same ones with the same p-values: the decision does not depend on where it is made).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from drift_sim import Sim, zipf  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402

from monitor.analysis import Analysis  # noqa: E402
from monitor.drift import budget  # noqa: E402
from monitor.drift.relabellings import exact_relabellings  # noqa: E402
from monitor.drift.settings import DriftSettings  # noqa: E402
from monitor.store import Store  # noqa: E402
from monitor.telemetry.metrics import Metrics  # noqa: E402

FLEET = DriftSettings(false_alarms_per_10k=0.00413)  # 28 pairs once a second under 1 false alarm a day
WARMUP = 120


class Timed(Analysis):
    """The daemon's analysis, noting when each observation's analysis ended (perf_counter)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ended: dict[str, float] = {}

    def _analyse(self, obs: Any) -> Any:
        out = super()._analyse(obs)
        self.ended[obs.id] = time.perf_counter()
        return out


async def one_run(deferred: bool, swapped: int, steady: int, after: int, rate: float, folder: Path) -> dict[str, Any]:
    store = Store(f"sqlite:///{folder / ('deferred.db' if deferred else 'inline.db')}")
    store.migrate()
    opened: list[tuple[float, tuple[str, str, float | None]]] = []  # as told: later rounds update the event
    analysis = Timed(store, Metrics(CollectorRegistry()), FLEET,
                     listeners=[lambda u: opened.append((time.perf_counter(), (u.event.canary, u.event.signal, u.event.p_value)))
                                if u.action == "opened" else None])
    analysis.engine.defer_certification = deferred  # read when a stream is made (the first observation's)
    sims = {f"swap-{i}": Sim(100 + i, refusal=0.0) for i in range(swapped)}
    sims |= {f"steady-{i}": Sim(200 + i, refusal=0.0) for i in range(steady)}
    for _ in range(WARMUP):  # every baseline ready and every window full before the swap
        for name, sim in sims.items():
            analysis.engine.observe(sim.next(name, "t"))
    for name, sim in sims.items():
        if name.startswith("swap-"):
            sim.probs = zipf(7)  # another model's vocabulary: the completions change
    handed: dict[str, float] = {}
    t0 = time.perf_counter()
    n, held = 0, []  # how long each run waited for the analysis to take its observation
    for _ in range(after):
        for name, sim in sims.items():
            obs = sim.next(name, "t")
            await asyncio.sleep(max(0.0, t0 + n / rate - time.perf_counter()))  # runs finish `rate` a second
            n += 1
            store.save_observation(obs)
            handed[obs.id] = t1 = time.perf_counter()
            await analysis.on_observation(obs)
            held.append(time.perf_counter() - t1)
    await analysis.drain()
    done = time.perf_counter() - t0
    analysis.close()
    store.close()
    lat = {k: analysis.ended[k] - t for k, t in handed.items() if k in analysis.ended}
    steady_lat = np.array([v for k, v in lat.items() if k.startswith("steady-")])
    events = sorted((e for _, e in opened), key=str)
    last = max((t for t, e in opened if e[1] == "completion"), default=t0) - t0
    return {"held": sum(held), "held_max": max(held), "done": done, "p50": float(np.median(steady_lat)), "max": float(steady_lat.max()),
            "completion": sum(1 for e in events if e[1] == "completion"), "events": events, "last": last}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--swapped", type=int, default=6, help="streams whose model is swapped")
    ap.add_argument("--steady", type=int, default=6, help="streams that do not change (their latency is shown)")
    ap.add_argument("--after", type=int, default=60, help="observations per stream after the swap")
    ap.add_argument("--rate", type=float, default=100.0, help="observations finishing per second, all streams")
    args = ap.parse_args()
    logging.disable(logging.WARNING)  # each opening's log line
    alpha = budget.mmd_alpha(FLEET)
    print(f"whole-completion level {alpha:.2g}: its exact test draws up to {exact_relabellings(alpha):,} "
          f"relabellings; {args.swapped} swapped + {args.steady} steady streams, {args.after} observations each "
          f"after the swap, {args.rate:g} a second")
    with tempfile.TemporaryDirectory() as tmp:
        runs = {mode: asyncio.run(one_run(mode == "own thread", args.swapped, args.steady, args.after,
                                             args.rate, Path(tmp)))
                for mode in ("inline", "own thread")}
    print()
    print("| certified | runs held up: total / longest | steady streams' analysis latency p50 / max | last "
          "completion event | completion events | all done |")
    print("|---|---|---|---|---|---|")
    for mode, r in runs.items():
        print(f"| {mode} | {r['held']:.1f} s / {r['held_max']:.1f} s | {r['p50'] * 1000:.0f} ms / {r['max'] * 1000:.0f} ms | "
              f"{r['last']:.1f} s | {r['completion']} | {r['done']:.1f} s |")
    a, b = runs["inline"], runs["own thread"]
    print(f"\nratio inline / own thread: steady streams' latency p50 {a['p50'] / b['p50']:.0f}x, max "
          f"{a['max'] / b['max']:.0f}x")
    same = a["events"] == b["events"]
    print(f"same events opened, same p-values: {same}")
    if not same:
        for mode, r in runs.items():
            print(mode, [e for e in r["events"] if e not in runs["inline" if mode != "inline" else "own thread"]["events"]])
        sys.exit(1)


if __name__ == "__main__":
    main()

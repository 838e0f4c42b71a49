"""Simulated drift streams for tests: the benchmark's stream simulator and a helper that feeds an engine."""

from __future__ import annotations

import sys
from pathlib import Path

from monitor.drift import DriftEngine

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from drift_sim import Sim, zipf  # noqa: E402

__all__ = ["Sim", "feed", "zipf"]


def feed(eng: DriftEngine, sim: Sim, n: int) -> list:
    """Feed ``n`` simulated observations to the engine; return every event update."""
    out = []
    for _ in range(n):
        out += eng.observe(sim.next())
    return out

"""Drift detection: per-observation signals, baselines, sequential and window tests, events, replay."""

from monitor.drift import _lean_scipy  # noqa: F401  (first: SciPy without NumPy's unused submodules)
from monitor.drift.baseline import Baseline
from monitor.drift.dump import DumpError, load_dump
from monitor.drift.engine import DriftEngine
from monitor.drift.events import DriftEvent, EventUpdate
from monitor.drift.replay import replay, replay_observations
from monitor.drift.settings import DriftSettings
from monitor.drift.signals import compute_signals

__all__ = [
    "Baseline",
    "DriftEngine",
    "DriftEvent",
    "DriftSettings",
    "DumpError",
    "EventUpdate",
    "compute_signals",
    "load_dump",
    "replay",
    "replay_observations",
]

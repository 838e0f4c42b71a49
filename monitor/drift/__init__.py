"""Drift detection: per-observation signals, baselines, sequential and window tests, events, replay.

The names below load with their modules on first use (`monitor.lazy`): the configuration reads only
`drift.settings`, and SciPy loads with the first test that needs it (through `drift._lean_scipy`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from monitor.lazy import lazy_exports

if TYPE_CHECKING:
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

__getattr__, __dir__ = lazy_exports(__name__, {
    "Baseline": "monitor.drift.baseline",
    "DriftEngine": "monitor.drift.engine",
    "DriftEvent": "monitor.drift.events",
    "DriftSettings": "monitor.drift.settings",
    "DumpError": "monitor.drift.dump",
    "EventUpdate": "monitor.drift.events",
    "compute_signals": "monitor.drift.signals",
    "load_dump": "monitor.drift.dump",
    "replay": "monitor.drift.replay",
    "replay_observations": "monitor.drift.replay",
})

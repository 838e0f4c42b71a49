"""The operator's say in a baseline (`llm-monitor baseline accept|pin|reset`), applied through the analysis.

The CLI has no live stream: it builds an Analysis on the store (restored for the pair), chooses stored
observations, and these write the new baseline and what becomes of the pair's open events, with their
notifications in the same transactions. A running daemon installs the baseline at its next refresh
(`Analysis.refresh_baselines`).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from monitor.domain import Observation
from monitor.drift import EventUpdate

if TYPE_CHECKING:
    from monitor.analysis import Analysis

MIN_BASELINE_OBSERVATIONS = 5  # successful observations an operator-chosen baseline (pin, accept) needs at least


def _enough(observations: list[Observation]) -> None:
    ok = sum(1 for o in observations if o.ok)
    if ok < MIN_BASELINE_OBSERVATIONS:
        raise ValueError(f"a baseline needs at least {MIN_BASELINE_OBSERVATIONS} successful observations, got {ok}")


def accept_observations(analysis: Analysis, canary: str, target: str, observations: list[Observation],
                        note: str) -> list[EventUpdate]:
    """Accept current behaviour from stored observations (the CLI has no live stream to take it from)."""
    _enough(observations)
    now = analysis.now()
    updates = []
    for e in analysis.engine.events(canary=canary, target=target, state="open"):
        e.state, e.accepted_at, e.note = "accepted", now.isoformat(), note
        updates.append(EventUpdate("accepted", e))
    b = analysis.engine.pin_baseline(canary, target, observations, note=note, now=now)
    b.source = "accepted"
    updates = analysis.persist(updates)
    analysis.repo.save_baseline(canary, target, b.to_json(), source="accepted", note=note)
    return updates


def pin(analysis: Analysis, canary: str, target: str, observations: list[Observation],
        note: str) -> list[EventUpdate]:
    """Make a pinned time range (its stored observations) the baseline, judging the pair's open events against
    it: those whose change the range holds are accepted, the others stay open against it (they resolve once
    behaviour is back at the pinned range). Resolving them all told receivers all was well while a change
    went on, and the new baseline opened them again hours later.

    An event's latest window is the pair's latest observations since its change (`DriftEngine.pin`)."""
    _enough(observations)
    now = analysis.now()
    engine = analysis.engine
    change = min((e.first_obs_at for e in engine.events(canary=canary, target=target, state="open")
                  if e.first_obs_at), default=None)
    recent = [] if change is None else analysis.store.observations(
        canary=canary, target=target, since=datetime.fromisoformat(change), limit=engine.settings.window * 2)
    updates = engine.pin(canary, target, observations, list(reversed(recent)), note=note, now=now)
    updates = analysis.persist(updates)
    analysis.baselines.save(canary, target, engine.baseline(canary, target), "pinned", note)
    return updates


def reset(analysis: Analysis, canary: str, target: str, note: str) -> list[EventUpdate]:
    """Forget the pair's baseline: its open events resolve, and the next observations form a new one."""
    updates = analysis.persist(analysis.engine.reset(canary, target, note=note))
    analysis.repo.save_baseline(canary, target, analysis.engine.baseline(canary, target).to_json(), source="reset",
                                note=note)
    analysis.baselines.ready.discard((canary, target))
    return updates

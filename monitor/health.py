"""Canary health: turn runs into canary.down / canary.recovered and budget.exceeded alert events."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from monitor.alerts import AlertEvent
from monitor.domain import Observation, utcnow

if TYPE_CHECKING:
    from monitor.store import FailingStreak

DOWN_AFTER_RUNS = 3  # consecutive runs in which every call failed
# consecutive runs with an answer before a down canary is recovered: with one, a canary failing most (not all) of
# its calls flapped down / recovered every few runs (a 40-minute soak with error bursts sent 256 of each in 6 min)
UP_AFTER_RUNS = 3
# The signal of canary.down / canary.recovered. Not "error": the drift engine's error-rate events of the same canary
# x target are alerts of their own, and sharing (canary, target, signal) made the alert outbox and the cooldown take
# one for the other (a canary.down dropped as a repeat of drift.opened, its recovery ending the drift alert).
HEALTH_SIGNAL = "health"


@dataclass
class HealthWatch:
    """Remembers consecutive failed runs per canary x target and which targets are paused by their cap.

    A canary is down after `down_after` runs in a row in which every call failed, and recovered after `up_after`
    runs in a row with an answer."""

    down_after: int = DOWN_AFTER_RUNS
    up_after: int = UP_AFTER_RUNS
    now: Callable[[], datetime] = utcnow
    _failed_runs: dict[tuple[str, str], int] = field(default_factory=dict)
    _good_runs: dict[tuple[str, str], int] = field(default_factory=dict)
    _down: set[tuple[str, str]] = field(default_factory=set)
    # The failure types of each pair's failed calls in its runs that failed every call, since its last answered run
    # (before it is down) or since it went down (until it recovers); at a start, those of the streak in the store
    _errors: dict[tuple[str, str], Counter[str]] = field(default_factory=dict)
    _paused: set[str] = field(default_factory=set)

    def seed_down(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Remember canary x target pairs already reported down (read from the outbox at start-up).

        Without this a restart forgets them, and the canary.recovered that ends their alert is never sent.
        """
        self._down.update(pairs)

    def seed_streaks(self, streaks: Mapping[tuple[str, str], FailingStreak]) -> None:
        """Take the failed runs and failure types each pair's current streak has (read from the store at start-up,
        take-over, and for the pairs a reload adds).

        Without this a restart starts them at zero: a canary down across it paged `down_after` runs later, or never
        if restarts came more often than that, and its page named only the failures since the restart.
        """
        for key, streak in streaks.items():
            self._failed_runs[key] = streak.runs
            self._errors[key] = Counter(streak.errors)

    def is_down(self, canary: str, target: str) -> bool:
        """Whether the pair is reported down (its canary.down sent, its canary.recovered not yet)."""
        return (canary, target) in self._down

    def down_events(self, tags: Callable[[str], tuple[str, ...]]) -> list[AlertEvent]:
        """Return a canary.down event for each pair reported down, for the sinks a reload or restart routes it to
        that were never told (`Alerting.ensure_firing`)."""
        return [AlertEvent(kind="canary.down", canary=c, target=t, signal=HEALTH_SIGNAL, severity="critical",
                           tags=tags(c), opened_at=self.now(), summary=f"{c}@{t}: every call fails",
                           evidence=self._evidence((c, t))) for c, t in sorted(self._down)]

    def _evidence(self, key: tuple[str, str]) -> dict[str, object]:
        """The health evidence of a pair: its signal and, where this process saw or read back its failed runs, the
        failure types of its outage (sorted) and how many failed calls each had."""
        seen = self._errors.get(key)
        if not seen:
            return {"signal": HEALTH_SIGNAL}
        return {"signal": HEALTH_SIGNAL, "error_types": sorted(seen), "error_counts": dict(sorted(seen.items()))}

    def forget(self, keep: set[tuple[str, str]]) -> None:
        """Forget pairs no longer configured (their down alerts were resolved when they went): if one comes
        back and still fails, it is reported down again."""
        self._down &= keep
        self._failed_runs = {k: n for k, n in self._failed_runs.items() if k in keep}
        self._good_runs = {k: n for k, n in self._good_runs.items() if k in keep}
        self._errors = {k: n for k, n in self._errors.items() if k in keep}

    def run_finished(self, canary: str, target: str, observations: list[Observation],
                     tags: tuple[str, ...] = ()) -> list[AlertEvent]:
        """Return the events one finished run causes (none for most runs)."""
        if not observations:
            return []
        key = (canary, target)
        if all(not o.ok for o in observations):
            self._good_runs[key] = 0
            self._failed_runs[key] = self._failed_runs.get(key, 0) + 1
            self._errors.setdefault(key, Counter()).update(
                o.call.error_type.value for o in observations if o.call.error_type)
            if self._failed_runs[key] >= self.down_after and key not in self._down:
                self._down.add(key)
                evidence = self._evidence(key)
                return [AlertEvent(kind="canary.down", canary=canary, target=target, signal=HEALTH_SIGNAL,
                                   severity="critical", tags=tags, opened_at=self.now(),
                                   summary=f"{canary}@{target}: every call failed in {self._failed_runs[key]} "
                                           f"consecutive runs ({_mix(evidence)})",
                                   evidence={**evidence, "consecutive_failed_runs": self._failed_runs[key],
                                             "last_error": observations[-1].call.error_message})]
            return []
        self._failed_runs[key] = 0
        if key not in self._down:
            self._errors.pop(key, None)
            return []
        self._good_runs[key] = good = self._good_runs.get(key, 0) + 1
        if good < self.up_after:
            return []
        self._down.discard(key)
        del self._good_runs[key]
        evidence = self._evidence(key)
        self._errors.pop(key, None)
        outage = f"; the outage's failures: {_mix(evidence)}" if "error_types" in evidence else ""
        return [AlertEvent(kind="canary.recovered", canary=canary, target=target, signal=HEALTH_SIGNAL,
                           severity="critical", tags=tags, resolved_at=self.now(),
                           summary=f"{canary}@{target}: calls succeed again ({good} runs in a row){outage}",
                           evidence=evidence)]

    def paused(self, target: str, is_paused: bool, spent: float, cap: float | None) -> list[AlertEvent]:
        """Return a budget.exceeded event when a target newly hits its daily spend cap."""
        if is_paused and target not in self._paused:
            self._paused.add(target)
            return [AlertEvent(kind="budget.exceeded", canary="*", target=target, signal="spend",
                               severity="warning", opened_at=self.now(),
                               summary=f"{target}: daily spend cap ${cap} reached (spent ${spent:.4f}); "
                                       "paused until 00:00 UTC",
                               evidence={"signal": "spend", "current_value": spent, "baseline_value": cap})]
        if not is_paused:
            self._paused.discard(target)
        return []


def _mix(evidence: Mapping[str, object]) -> str:
    """The failure types of a health evidence with their failed calls, as a summary says them ("timeout x4,
    server_error x2")."""
    counts = evidence.get("error_counts")
    return ", ".join(f"{t} x{n}" for t, n in counts.items()) if isinstance(counts, dict) else ""

"""Spend per target per UTC day and the daily spend cap.

Today's spend is read from the store at start-up (so it survives restarts; other replicas spend too) and on a
new UTC day, then counted up as each call's cost is stored. Costs of calls that finished but are not stored yet
count towards the cap already, so a sample waiting its turn is not sent once the calls before it reached it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from monitor.config.models import Target
from monitor.domain import Observation, utcnow
from monitor.store import Store
from monitor.telemetry.metrics import Metrics

log = logging.getLogger("monitor.spend")

CapListener = Callable[[str, bool, float, float | None], None]  # (target, paused, spent, cap)


def midnight(t: datetime) -> datetime:
    """Return 00:00 UTC of `t`'s UTC day: spend and its cap count per UTC day."""
    return t.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


@dataclass
class Spend:
    """Counts each target's spend today and pauses a target (gauge, log, listeners) once it reaches its cap."""

    store: Store
    metrics: Metrics
    now: Callable[[], datetime] = utcnow
    listeners: list[CapListener] = field(default_factory=list)
    _paused: set[str] = field(default_factory=set)
    # target -> (00:00 UTC of the day, USD since). A target's lock keeps a store read and a save + count from
    # interleaving (no cost counted twice or lost).
    _spent: dict[str, tuple[datetime, float]] = field(default_factory=dict)
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _uncounted: dict[str, dict[str, float]] = field(default_factory=dict)  # target -> obs id -> USD

    async def over_cap(self, target: Target) -> bool:
        """Whether the target has reached its cap today, read from the store (this replica's count while the
        store is down); shows the state. Without a cap, reads today's spend on a new UTC day."""
        day = midnight(self.now())
        if target.daily_spend_cap_usd is None:
            if self._spent.get(target.id, (None, 0.0))[0] != day:  # a new UTC day (or not read at start-up)
                with contextlib.suppress(SQLAlchemyError):  # the store is down: read it on a later run
                    await asyncio.to_thread(self._read, target.id, day)
            return False
        try:
            spent = await asyncio.to_thread(self._read, target.id, day)  # other replicas spend too
        except SQLAlchemyError:  # the store is down: go by what this replica counted today
            counted_day, counted = self._spent.get(target.id, (None, 0.0))
            spent = counted if counted_day == day else 0.0
        return self._show(target, spent, day)

    def over_cap_now(self, target: Target) -> bool:
        """Whether the target's spend counted today (with costs not stored yet) has reached its cap; no store
        read."""
        if target.daily_spend_cap_usd is None:
            return False
        day, spent = self._spent.get(target.id, (None, 0.0))
        pending = sum(self._uncounted.get(target.id, {}).copy().values())  # a worker thread may pop meanwhile
        return (spent if day == midnight(self.now()) else 0.0) + pending >= target.daily_spend_cap_usd

    def expect(self, target: Target, obs: Observation) -> None:
        """Count a finished call's cost towards the cap before it is stored (call before the next await)."""
        if obs.cost_usd and target.daily_spend_cap_usd is not None:
            self._uncounted.setdefault(target.id, {})[obs.id] = obs.cost_usd

    def check_now(self, target: Target, obs: Observation) -> None:
        """Pause the target (gauge, log, listeners) as soon as the costs that reach its cap are counted."""
        if obs.cost_usd and target.daily_spend_cap_usd is not None and target.id not in self._paused \
                and self.over_cap_now(target):
            self._show(target, self._spent[target.id][1], self._spent[target.id][0])

    def read_today(self, targets: list[Target]) -> None:
        """Show every target's spend today from the store at once, and whether its cap pauses it (at start-up or
        a take-over, before its first run)."""
        day = midnight(self.now())
        for target in targets:
            self._read(target.id, day)
        self.show_caps(targets)

    def show_caps(self, targets: list[Target]) -> None:
        """Set each capped target's paused gauge from the spend counted today (no store read, no log or listener:
        its next run does those): a reload or take-over declares the series anew, and a target its cap pauses
        must not read as probed meanwhile (the rules' spend-cap gates read the gauge)."""
        for target in targets:
            if target.daily_spend_cap_usd is not None:
                self.metrics.paused.set(target.id, value=1 if self.over_cap_now(target) else 0)

    def save(self, obs: Observation) -> None:
        """Store an observation and count its cost in its target's spend today (in a worker thread)."""
        if not obs.cost_usd:
            self.store.save_observation(obs)
            return
        day = midnight(obs.started_at)
        with self._locks.setdefault(obs.target, threading.Lock()):
            self.store.save_observation(obs)
            self._uncounted.get(obs.target, {}).pop(obs.id, None)  # counted below (or read from the store)
            counted_day, spent = self._spent.get(obs.target, (None, 0.0))
            if counted_day == day:
                self._spent[obs.target] = (day, spent + obs.cost_usd)
                self.metrics.spend_today.set(obs.target, value=spent + obs.cost_usd)
                return
        if counted_day is None or counted_day < day:  # the first cost of a new day: the store has all of it
            self._read(obs.target, day)
        # else: a call started yesterday, finished today; it counts for yesterday (as the cap counts it)

    def _read(self, target_id: str, day: datetime) -> float:
        """Read a target's spend since `day` from the store and show it (in a worker thread)."""
        with self._locks.setdefault(target_id, threading.Lock()):
            spent = self.store.spend_since(target_id, day)
            self._spent[target_id] = (day, spent)
            self.metrics.spend_today.set(target_id, value=spent)
        return spent

    def _show(self, target: Target, spent: float, day: datetime) -> bool:
        """Show whether `spent` today reaches the target's cap (gauge, log, listeners); return it."""
        assert target.daily_spend_cap_usd is not None
        over = spent >= target.daily_spend_cap_usd
        self.metrics.paused.set(target.id, value=1 if over else 0)
        if over and target.id not in self._paused:
            log.warning("target %s paused: spent $%g today, daily cap $%g; resumes at %s", target.id, spent,
                        target.daily_spend_cap_usd, (day + timedelta(days=1)).isoformat())
        elif not over and target.id in self._paused:
            log.info("target %s resumed: under its daily spend cap", target.id)
        (self._paused.add if over else self._paused.discard)(target.id)
        for hook in self.listeners:
            hook(target.id, over, spent, target.daily_spend_cap_usd)
        return over


__all__ = ["CapListener", "Spend", "midnight"]

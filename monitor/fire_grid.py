"""A job's fire times without jitter: the grid its runs keep to, and how many of them a late scheduler passed over.

APScheduler 3 runs a coalesced job once when it reaches it late (the event loop blocked, the process frozen, the
host suspended) and says nothing of the other run times that fell due meanwhile. `PassedRuns` counts them from the
schedule itself: each run the scheduler reaches (run, overrun or missed) stands for one fire time of the grid, and
the grid's fire times between it and the previous one reached are the runs passed over. A run's jitter only delays
it within its own slot (`every` takes a jitter shorter than itself, `cron` one shorter than its shortest gap), so it
neither makes up nor hides one.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Protocol

from apscheduler.triggers.interval import IntervalTrigger

from monitor.config.models import Schedule
from monitor.config.timing import every_s, fire_times

_TICK = timedelta(microseconds=1)
_SLACK_S = 1e-5  # APScheduler adds intervals to float timestamps: a grid time may come back a microsecond early


def slot(start: datetime, period_s: float, at: datetime) -> int:
    """Return k for the grid time start + k * period at or before `at` (`at` may be up to a period after it)."""
    return math.floor(((at - start).total_seconds() + _SLACK_S) / period_s)


class SteadyInterval(IntervalTrigger):
    """An interval trigger whose jitter does not add up: run k falls due at start + k * interval plus its own jitter.

    APScheduler 3's IntervalTrigger adds the next interval to the previous run's jittered time, so every jitter
    carried over into all later runs: `every: 4s, jitter: 3s` ran every 5.5 s on average, not every 4 s."""

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime | None:
        if previous_fire_time is not None:
            k = slot(self.start_date, self.interval_length, previous_fire_time)
            previous_fire_time = self.start_date + k * self.interval
        return super().get_next_fire_time(previous_fire_time, now)


Passed = tuple[int, datetime | None]  # how many fire times a reached run left behind, and the first of them


class _Grid(Protocol):
    def reach(self, at: datetime) -> Passed: ...


class _Every:
    def __init__(self, start: datetime, period_s: float):
        self.start, self.period_s = start, period_s
        self.next = 0  # the first slot not reached yet (0: `start`, the job's first run)

    def reach(self, at: datetime) -> Passed:
        k = slot(self.start, self.period_s, at)
        if k < self.next:  # reached already (the run it was submitted for, missed) or from before the job
            return 0, None
        first = self.start + timedelta(seconds=self.next * self.period_s)
        passed, self.next = k - self.next, k + 1
        return passed, first if passed else None


class _Cron:
    def __init__(self, cron: str, since: datetime):
        self.cron, self.since = cron, since  # the first fire time at or after `since` is not reached yet

    def reach(self, at: datetime) -> Passed:
        # a fire time per step, as many as APScheduler itself stepped through to find the run times it dropped
        due = list(fire_times(self.cron, self.since, at + _TICK))
        if not due:  # reached already, or from before the job
            return 0, None
        self.since = due[-1] + _TICK
        return len(due) - 1, due[0] if len(due) > 1 else None


class PassedRuns:
    """Per job, the fire times of its schedule not reached yet; `reach` returns how many a reached run left behind."""

    def __init__(self) -> None:
        self._jobs: dict[str, _Grid] = {}

    def track(self, jid: str, schedule: Schedule, start: datetime) -> None:
        """Follow a new job (or a replaced one: its schedule changed) from `start`: an `every` job's first run, or
        when a cron job was added (its first fire time at or after it)."""
        self._jobs[jid] = _Every(start, every_s(schedule)) if schedule.cron is None else _Cron(schedule.cron, start)

    def keep(self, jids: set[str]) -> None:
        """Forget the jobs not in `jids` (removed)."""
        self._jobs = {jid: grid for jid, grid in self._jobs.items() if jid in jids}

    def reach(self, jid: str, at: datetime) -> Passed:
        """Mark the run scheduled at `at` (jitter included) reached; return how many fire times before it were
        neither reached nor counted (0 for a job not followed), and the first of them."""
        grid = self._jobs.get(jid)
        return grid.reach(at) if grid is not None else (0, None)

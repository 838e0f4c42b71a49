"""A job's fire times without jitter: the grid its runs keep to."""

from __future__ import annotations

import math
from datetime import datetime

from apscheduler.triggers.interval import IntervalTrigger

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

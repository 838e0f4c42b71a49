"""APScheduler 3's clock, moved by a test: the schedule stands still until the test moves it, as it does while the
event loop is blocked or the process stopped, and moving it a minute takes no minute."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import apscheduler.executors.base
import apscheduler.schedulers.base
import pytest


class SchedulerClock:
    """APScheduler 3 reads the time only as `datetime.now` in its scheduler and executor modules (due run times,
    misfire grace): both are pointed at this clock; pass it as the Scheduler's `now` too."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, at: datetime) -> None:
        self.t = at
        clock = self

        class _Now(datetime):
            @classmethod
            def now(cls, tz: object = None) -> datetime:  # type: ignore[override]
                return clock.t.astimezone(tz)  # type: ignore[arg-type]

        for module in (apscheduler.schedulers.base, apscheduler.executors.base):
            monkeypatch.setattr(module, "datetime", _Now)

    def __call__(self) -> datetime:
        return self.t

    def to(self, at: datetime) -> None:
        assert at >= self.t, f"the clock only goes forward: {at} < {self.t}"
        self.t = at

    def advance(self, seconds: float) -> None:
        self.to(self.t + timedelta(seconds=seconds))


async def settle(steps: int = 10) -> None:
    """Let the loop run what is ready: the scheduler's wake-up, the jobs it starts and their ends."""
    for _ in range(steps):
        await asyncio.sleep(0)

"""A jittered `every` schedule keeps to its period: each run is late by its own jitter, which does not carry over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.scheduler import Scheduler
from tests.conftest import write_config
from tests.support.sched_clock import SchedulerClock, settle

TARGET = "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}"
T0 = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)


async def test_a_jittered_every_runs_once_per_period(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Found reading APScheduler 3: its IntervalTrigger adds the interval to the previous run's jittered time, so
    # each jitter carried over into all later runs: `every: 10s, jitter: 9s` ran every 14.5 s on average.
    probes = "canaries:\n  - id: c\n    messages: [{role: user, content: hi}]\n    schedule: {every: 10s, jitter: 9s}\n"
    cfg = write_config(tmp_path, TARGET, probes, extra="daemon: {max_start_delay: 0}\n")
    clock = SchedulerClock(monkeypatch, T0)
    runs: list[datetime] = []

    async def run(*_: object) -> None:
        runs.append(clock())

    sched = Scheduler(run, now=clock)
    sched.apply(load_config(cfg, environ={}))
    sched.start()
    await settle()
    try:
        for k in range(1, 31):  # each run when it falls due, as a loop that is never late would
            nxt = sched.next_runs()["c@t"]
            assert nxt is not None
            clock.to(nxt)
            sched._sched.wakeup()
            await settle()
            assert len(runs) == k + 1
            assert T0 + timedelta(seconds=10 * k) <= runs[-1] < T0 + timedelta(seconds=10 * k + 9)
    finally:
        sched.shutdown()

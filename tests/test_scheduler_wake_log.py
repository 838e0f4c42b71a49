"""The runs a pause passed over are logged as one line per wake-up, however many pairs it touched: how many pairs,
how many run times, how long the pause was at least and a few of the pairs; each pair's own line is at debug level.

APScheduler's own clock is moved by the test (tests.support.sched_clock): a pause of any length, then a wake-up."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.scheduler import Scheduler
from tests.conftest import write_config
from tests.support.sched_clock import SchedulerClock, settle

T0 = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
TARGETS = ("  - {id: a, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}\n"
           "  - {id: b, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}")


def probes(n: int) -> str:
    return "canaries:\n" + "".join(f"  - id: c{i:02}\n    messages: [{{role: user, content: hi}}]\n"
                                   "    schedule: {every: 4s}\n" for i in range(n))


def scheduler_warnings(caplog: pytest.LogCaptureFixture) -> Callable[[], list[logging.LogRecord]]:
    """Capture the scheduler's lines from debug up; return a function listing its warnings so far."""
    caplog.set_level(logging.DEBUG, logger="monitor.scheduler")
    return lambda: [r for r in caplog.records if r.name == "monitor.scheduler" and r.levelno >= logging.WARNING]


async def test_a_pause_over_many_pairs_logs_one_warning_naming_the_count(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # Found by SRE users: 1,000 pairs frozen for a while logged 1,000 warnings on waking, one per pair.
    clock = SchedulerClock(monkeypatch, T0)
    cfg = write_config(tmp_path, TARGETS, probes(40), extra="daemon: {max_start_delay: 0}\n")
    runs: Counter[str] = Counter()
    skipped: Counter[tuple[str, str, str]] = Counter()

    async def run(canary: object, target: object) -> None:
        runs[f"{canary.id}@{target.id}"] += 1  # type: ignore[attr-defined]

    def skip(c: str, t: str, reason: str, n: int) -> None:
        skipped[(c, t, reason)] += n

    sched = Scheduler(run, now=clock, on_skip=skip)
    warnings = scheduler_warnings(caplog)

    sched.apply(load_config(cfg, environ={}))
    sched.start()
    try:
        await settle()
        assert len(runs) == 80 and sum(runs.values()) == 80 and not skipped  # every pair's first run, at T0
        clock.advance(40)  # 4 s ... 40 s fell due for each of the 80 pairs while the loop was blocked: ten each
        sched._sched.wakeup()
        await settle()
        assert sum(runs.values()) == 160  # each pair once on waking
        assert skipped == {(f"c{i:02}", t, "missed"): 9 for i in range(40) for t in "ab"}  # the counter as it was
        lines = warnings()
        assert len(lines) == 1, f"{len(lines)} warnings"  # one line for the wake-up, not one per pair
        line = lines[0]
        text = line.getMessage()
        assert "after a pause of at least 36s: 80 pairs, 720 run times in all (c00@a, " in text, text
        assert ", ...); the daemon was blocked" in text and "each pair runs once" in text
        assert (line.reason, line.pairs, line.runs, line.pause_s) == ("missed", 80, 720, 36)  # type: ignore[attr-defined]
        assert len(line.examples) == 3  # type: ignore[attr-defined]
        detail = [r for r in caplog.records if r.name == "monitor.scheduler" and r.levelno == logging.DEBUG]
        assert sorted((r.canary, r.target, r.runs) for r in detail) == \
            sorted((f"c{i:02}", t, 9) for i in range(40) for t in "ab")  # type: ignore[attr-defined]

        clock.advance(20)  # within the hour: every pair warned of already, nothing more at warning level
        sched._sched.wakeup()
        await settle()
        assert len(warnings()) == 1 and sum(skipped.values()) == 720 + 80 * 4
        clock.advance(3600)  # an hour on: warned of again, in one line
        sched._sched.wakeup()
        await settle()
        assert len(warnings()) == 2 and "at least 59m56s: 80 pairs, 71,920 run times in all" in \
            warnings()[1].getMessage()
    finally:
        sched.shutdown()


async def test_the_pause_named_is_no_longer_than_it_was_with_jitter(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # The first run time passed over fell due with its jitter: the loop had to be blocked only from then on. Named
    # from its time without jitter, a pause of 33.1 s at most was logged as "at least 36s" (with a 50 min jitter on
    # an hourly canary, a 12 min pause as "at least 1h1m").
    clock = SchedulerClock(monkeypatch, T0)
    monkeypatch.setattr("apscheduler.triggers.interval.random.uniform", lambda lo, hi: 2.9)  # every run 2.9 s late
    cfg = write_config(tmp_path, TARGETS.splitlines()[0],
                       "canaries:\n  - id: c\n    messages: [{role: user, content: hi}]\n"
                       "    schedule: {every: 4s, jitter: 3s}\n", extra="daemon: {max_start_delay: 0}\n")

    async def run(*_: object) -> None:
        pass

    sched = Scheduler(run, now=clock)
    caplog.set_level(logging.WARNING, logger="monitor.scheduler")
    sched.apply(load_config(cfg, environ={}))
    sched.start()
    try:
        await settle()
        assert sched.next_runs()["c@a"] == T0 + timedelta(seconds=6.9)
        clock.advance(40)  # the loop was blocked from 6.9 s (the next run's time) at the latest: 33.1 s at least
        sched._sched.wakeup()
        await settle()
        [line] = [r for r in caplog.records if r.name == "monitor.scheduler"]
        assert line.runs == 8 and line.pause_s <= 33.1, line.getMessage()  # type: ignore[attr-defined]
        assert "after a pause of at least 33s:" in line.getMessage()
    finally:
        sched.shutdown()


async def test_many_pairs_overrunning_at_once_log_one_warning_naming_the_count(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # A pause that catches many runs in flight: on waking every pair's run was still going, and 1,000 pairs logged
    # 1,000 overrun warnings, one per pair.
    clock = SchedulerClock(monkeypatch, T0)
    cfg = write_config(tmp_path, TARGETS, probes(40), extra="daemon: {max_start_delay: 0}\n")
    release = asyncio.Event()
    skipped: Counter[tuple[str, str, str]] = Counter()

    async def run(*_: object) -> None:
        await release.wait()  # every run still going at the next run time

    def skip(c: str, t: str, reason: str, n: int) -> None:
        skipped[(c, t, reason)] += n

    sched = Scheduler(run, now=clock, on_skip=skip)
    warnings = scheduler_warnings(caplog)

    sched.apply(load_config(cfg, environ={}))
    sched.start()
    try:
        await settle()
        clock.advance(4)  # the next run time of all 80 pairs, their first runs still going
        sched._sched.wakeup()
        await settle()
        assert skipped == {(f"c{i:02}", t, "overrun"): 1 for i in range(40) for t in "ab"}  # the counter as it was
        lines = warnings()
        assert len(lines) == 1, f"{len(lines)} warnings"  # one line for the pass, not one per pair
        text = lines[0].getMessage()
        assert text.startswith("scheduled runs skipped: 80 pairs (c00@a, "), text
        assert ", ...); the previous run of each was still going: lengthen schedule.every" in text, text
        line = lines[0]
        assert (line.reason, line.pairs, len(line.examples)) == ("overrun", 80, 3)  # type: ignore[attr-defined]
        detail = [r for r in caplog.records if r.name == "monitor.scheduler" and r.levelno == logging.DEBUG]
        assert sorted((r.canary, r.target, r.reason) for r in detail) == \
            sorted((f"c{i:02}", t, "overrun") for i in range(40) for t in "ab")  # type: ignore[attr-defined]

        clock.advance(4)  # within the hour: every pair warned of already
        sched._sched.wakeup()
        await settle()
        assert len(warnings()) == 1 and sum(skipped.values()) == 160
        clock.advance(3600)  # an hour on: warned of again, in one line (the hour's run times passed over: missed)
        sched._sched.wakeup()
        await settle()
        assert [r.reason for r in warnings()] == ["overrun", "overrun", "missed"]  # type: ignore[attr-defined]
    finally:
        release.set()
        await settle()
        sched.shutdown()


async def test_a_reload_forgets_the_warnings_of_the_pairs_it_removed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each pair's last warning was kept for good: pairs renamed over reloads were a slow leak.
    clock = SchedulerClock(monkeypatch, T0)

    async def run(*_: object) -> None:
        pass

    sched = Scheduler(run, now=clock)
    sched.apply(load_config(write_config(tmp_path, TARGETS, probes(3), extra="daemon: {max_start_delay: 0}\n"),
                            environ={}))
    sched.start()
    try:
        await settle()
        clock.advance(40)  # every pair misses runs: each warned of
        sched._sched.wakeup()
        await settle()
        assert {jid for jid, _ in sched._skip_log._last_warned} == {f"c{i:02}@{t}" for i in range(3) for t in "ab"}
        (tmp_path / "renamed").mkdir()
        cfg = write_config(tmp_path / "renamed", TARGETS.splitlines()[0], probes(2),
                           extra="daemon: {max_start_delay: 0}\n")
        sched.apply(load_config(cfg, environ={}), run_now=False)
        assert {jid for jid, _ in sched._skip_log._last_warned} == {"c00@a", "c01@a"}
    finally:
        sched.shutdown()

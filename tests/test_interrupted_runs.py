"""Runs a process left `running` when it died are closed as `interrupted` by the replica that takes the lead."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.commands.run import serve
from monitor.domain import utcnow
from monitor.errors import StoreError
from monitor.interrupted import close_interrupted
from monitor.sim import SimServer, load_scenario
from monitor.store import Run, Store
from tests.test_leadership import _app, _attempts, _terminate_lock_holder, _until, url  # noqa: F401 (fixture)
from tests.test_leadership_fence import SCENARIO
from tests.test_leadership_fence import _app as _slow_app


async def test_a_leader_closes_the_runs_a_dead_process_left_running(
        tmp_path: Path, url: str, steady_sim: SimServer, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    """Found by review: a leader killed with `kill -9` mid-run (or a SQLite daemon that crashed) left its runs
    `running` in the store for ever; the next leader (or the restarted daemon) now closes them."""
    store = Store(url)
    store.migrate()
    then = utcnow() - timedelta(minutes=3)
    store.save_run(Run(id="orphan", canary="c1", target="t", started_at=then, replica="dead:1", samples=1))
    store.save_run(Run(id="ended", canary="c1", target="t", started_at=then, replica="dead:1", samples=1,
                       finished_at=then + timedelta(seconds=2), status="done"))
    store.close()
    a, registry = _app(tmp_path, url, steady_sim, "a")
    a.interrupted_after_s = 0.5
    with caplog.at_level(logging.INFO, logger="monitor.interrupted"):
        await a.start()
        try:
            await _until(lambda: any(r.id == "orphan" and r.status != "running" for r in a.store.runs()))
            await _until(lambda: _attempts(registry) >= 2 and not a.runner.in_flight)
            runs = {r.id: r for r in a.store.runs(limit=1000)}
        finally:
            await a.stop()
    assert (runs["orphan"].status, runs["orphan"].finished_at) == ("interrupted", None)  # when it ended is unknown
    assert runs["ended"].status == "done"
    own = [r for r in runs.values() if r.id not in ("orphan", "ended")]
    assert own and all(r.status != "interrupted" for r in own)  # its own runs, started after it took the lead
    [line] = [r for r in caplog.records if r.name == "monitor.interrupted"]
    assert line.runs == 1 and "interrupted" in line.getMessage()  # type: ignore[attr-defined]


async def test_a_run_the_old_leader_still_finishes_ends_as_it_ended(tmp_path: Path, pg_url: str) -> None:
    """On PostgreSQL the old leader may outlive its lock by a few seconds and finish its runs in flight. Even a new
    leader that closed them at once (the default waits until the old one must have stopped) loses nothing: the
    old leader's last write of the run replaces `interrupted`."""
    scenario_file = tmp_path / "slow.yaml"
    scenario_file.write_text(SCENARIO)
    with SimServer(load_scenario(scenario_file)) as sim:
        a, b = _slow_app(tmp_path, pg_url, sim, "a"), _slow_app(tmp_path, pg_url, sim, "b")
        b.interrupted_after_s = 0.0
        stop_a = asyncio.Event()
        daemon_a = asyncio.create_task(serve(a, stop_a))
        await _until(lambda: a.leading)
        await b.start()
        try:
            mark = utcnow()  # a run that starts from now on has its 2.5 s call in flight when the lock goes
            await _until(lambda: any(r.started_at > mark and r.status == "running" for r in a.store.runs()))
            [in_flight] = [r for r in a.store.runs() if r.status == "running"]
            _terminate_lock_holder(pg_url)
            await _until(lambda: b.leading)
            await _until(lambda: b.succession.interrupted_task is not None and b.succession.interrupted_task.done())
            assert b.succession.interrupted_task is not None and b.succession.interrupted_task.result() == 1
            assert await asyncio.wait_for(daemon_a, 30) == 1
            [after] = [r for r in b.store.runs(limit=1000) if r.id == in_flight.id]
            assert after.status == "done" and after.finished_at is not None
        finally:
            stop_a.set()
            await b.stop()


async def test_a_run_left_by_a_replica_whose_clock_runs_ahead_is_closed_too(
        tmp_path: Path, url: str, steady_sim: SimServer) -> None:  # noqa: F811
    """Found by review: which runs were another process's was told by their start time against this replica's clock
    at take-over; an old leader on a host whose clock ran ahead of the new leader's (NTP off on one VM) stamped its
    last runs later than the take-over, and those it left running stayed `running` for good. A run another replica
    started is closed whatever its clock said; this one's own runs are still never touched."""
    store = Store(url)
    store.migrate()
    ahead = utcnow() + timedelta(minutes=2)
    store.save_run(Run(id="skewed", canary="c1", target="t", started_at=ahead, replica="other-host:1", samples=1))
    store.close()
    a, registry = _app(tmp_path, url, steady_sim, "a")
    a.interrupted_after_s = 0.5
    await a.start()
    try:
        await _until(lambda: _attempts(registry) >= 1)
        await _until(lambda: a.succession.interrupted_task is not None and a.succession.interrupted_task.done())
        runs = {r.id: r for r in a.store.runs(limit=1000)}
    finally:
        await a.stop()
    assert runs["skewed"].status == "interrupted"
    assert all(r.status != "interrupted" for r in runs.values() if r.id != "skewed")


async def test_a_leader_waking_from_a_freeze_closes_none_of_the_new_leaders_runs(
        tmp_path: Path, pg_url: str, steady_sim: SimServer) -> None:
    """A leader frozen (SIGSTOP, a paused VM) before it closed the runs left running, while a standby took over:
    waking, its wait is over at once, before its watch has looked. It closes nothing on a lock it has not confirmed
    (else the new leader's runs in flight, another replica's, would read `interrupted` until they end)."""
    a, registry = _app(tmp_path, pg_url, steady_sim, "a")
    a.leader_check_s = 30.0  # the watch looks at start, then not again during the test: as if the process slept
    a.interrupted_after_s = 1.5
    await a.start()
    try:
        a.scheduler.pause()  # no run falls due as it wakes (an hourly canary): none asks the store before the close
        _terminate_lock_holder(pg_url)  # the server gave the frozen leader's lock up...
        a.leadership._confirmed = (time.monotonic() - 61, time.time() - 61)  # ...its last confirmation long ago
        a.store.save_run(Run(id="new-leaders", canary="c1", target="t", started_at=utcnow(), replica="b:2",
                             samples=1))  # the replica that took over has a run in flight
        await _until(lambda: a.succession.interrupted_task is not None and a.succession.interrupted_task.done())
        assert a.succession.interrupted_task is not None and a.succession.interrupted_task.result() == 0
        [run] = [r for r in a.store.runs(limit=1000) if r.id == "new-leaders"]
        assert run.status == "running"
        assert a.leadership_lost.is_set()
    finally:
        await a.stop()


class _LockedRuns:
    """A store whose runs table is locked (a `LOCK TABLE`, a `VACUUM FULL`) for its first `failures` updates."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.tries = 0

    def close_interrupted(self, before: object, replica: str | None = None) -> int:
        self.tries += 1
        if self.tries <= self.failures:
            raise StoreError("closing interrupted runs failed: LockNotAvailable: canceling statement due to lock "
                             "timeout")
        return 3


async def test_runs_left_running_are_closed_once_a_store_that_failed_the_update_answers(
        caplog: pytest.LogCaptureFixture) -> None:
    """Found by the chaos run: a `LOCK TABLE runs` held past lock_timeout at the moment the new leader closed the
    runs left running (47 s after it took the lead) left them `running` until the next take-over; it now asks again,
    while it leads, and says once that it will."""
    store = _LockedRuns(failures=2)

    async def leading() -> bool:
        return True

    with caplog.at_level(logging.INFO, logger="monitor.interrupted"):
        closed = await close_interrupted(store, utcnow(), 0.0, leading, "me:1",  # type: ignore[arg-type]
                                         retry_s=0.01)
    assert (closed, store.tries) == (3, 3)
    assert [r.levelname for r in caplog.records] == ["ERROR", "WARNING"]  # one error for the outage, then the close


async def test_a_replica_that_no_longer_leads_stops_asking() -> None:
    store = _LockedRuns(failures=10)
    answers = iter([True, True, False])

    async def leading() -> bool:
        return next(answers)

    assert await close_interrupted(store, utcnow(), 0.0, leading, retry_s=0.01) == 0  # type: ignore[arg-type]
    assert store.tries == 2

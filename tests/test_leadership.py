"""Replicas on one store: one leads (probes, analyses, alerts), the others stand by and take over."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.app import App
from monitor.commands.run import serve
from monitor.config import load_config
from monitor.sim import SimServer
from monitor.store import Store
from monitor.store.leader import Leadership
from tests.conftest import PG_ADMIN, write_config


@pytest.fixture
def url(store_url: str) -> str:  # SQLite and PostgreSQL (conftest)
    return store_url


def _terminate_lock_holder(url: str) -> None:
    """Kill the PostgreSQL session holding the leader lock, as a broken connection would."""
    import psycopg

    dsn = PG_ADMIN.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        killed = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                              "AND objid = 7166002 AND granted AND database = "
                              "(SELECT oid FROM pg_database WHERE datname = %s)", (url.rsplit("/", 1)[1],)).fetchall()
    assert killed == [(True,)]


@contextlib.contextmanager
def _two_replicas(url: str) -> Iterator[tuple[Leadership, Leadership]]:
    """Two replicas' leader locks on one store (the first replica's store migrated), released at the end."""
    stores = [Store(url), Store(url)]
    stores[0].migrate()
    first, second = (Leadership(s.engine) for s in stores)
    try:
        yield first, second
    finally:
        first.release()
        second.release()
        for s in stores:
            s.close()


def test_one_holder_at_a_time_and_release_hands_over(url: str) -> None:
    with _two_replicas(url) as (first, second):
        assert first.try_acquire() and first.still_held()
        assert not second.try_acquire() and not second.still_held()
        assert first.try_acquire()  # idempotent for the holder
        first.release()
        assert not first.held and second.try_acquire()
        assert not first.try_acquire()


def test_a_broken_postgresql_session_loses_the_lock_and_frees_it(pg_url: str) -> None:
    with _two_replicas(pg_url) as (leader, standby):
        assert leader.try_acquire()
        _terminate_lock_holder(pg_url)
        assert not leader.still_held() and not leader.held
        assert standby.try_acquire()


def test_a_standby_tries_through_one_engine(pg_url: str) -> None:
    # Found by the PostgreSQL soak: a standby built a new SQLAlchemy engine at every try (every 5 s), each leaving
    # a little in SQLAlchemy's event registry for as long as the standby waits
    with _two_replicas(pg_url) as (leader, standby):
        assert leader.try_acquire()
        assert not standby.try_acquire()
        first = standby._lock_engine
        assert first is not None and not standby.try_acquire() and standby._lock_engine is first
        leader.release()
        assert standby.try_acquire() and standby._lock_engine is first


def _app(tmp_path: Path, url: str, sim: SimServer, name: str, model: str = "m",
         more: str = "") -> tuple[App, CollectorRegistry]:
    folder = tmp_path / name
    folder.mkdir()
    cfg = write_config(folder, f"  - {{id: t, provider: openai, base_url: '{sim.openai_base_url}', model: {model}}}",
                       "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n    samples: 1\n"
                       "    schedule: {every: 1s}\n" + more, extra="daemon: {max_start_delay: 0}\n")
    cfg.write_text(cfg.read_text().replace(f"sqlite:///{folder / 'm.db'}", url))
    registry = CollectorRegistry()
    app = App(load_config(cfg, environ={}), registry=registry, environ={}, serve_http=False, leader_poll_s=0.1,
              leader_check_s=0.1)
    return app, registry


def _attempts(registry: CollectorRegistry) -> float:
    return registry.get_sample_value("llm_monitor_probe_attempts_total", {"canary": "c1", "target": "t"}) or 0.0


async def _until(condition, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_two_daemons_on_one_store_probe_once_and_the_standby_takes_over(
        tmp_path: Path, url: str, steady_sim: SimServer) -> None:
    (a, reg_a), (b, reg_b) = _app(tmp_path, url, steady_sim, "a"), _app(tmp_path, url, steady_sim, "b")
    await a.start()
    await b.start()
    try:
        assert (a.leading, b.leading) == (True, False)
        assert (reg_a.get_sample_value("llm_monitor_leader"), reg_b.get_sample_value("llm_monitor_leader")) == (1, 0)
        assert b.ready() == (True, {"store": True, "scheduler": True, "leader": False, "draining": False})  # a standby is ready
        await _until(lambda: _attempts(reg_a) >= 3)
        assert _attempts(reg_b) == 0 and not b.scheduler.running
        await a.stop()
        await _until(lambda: b.leading and _attempts(reg_b) >= 2)
        assert b.scheduler.running and reg_b.get_sample_value("llm_monitor_leader") == 1
    finally:
        await b.stop()
        if a.scheduler.running:
            await a.stop()


async def test_a_standby_that_takes_over_keeps_the_schedule_of_a_canary_the_old_leader_just_ran(
        tmp_path: Path, url: str, steady_sim: SimServer) -> None:
    """Found by review: the replica that took the lead started every `every` schedule afresh, its first run within
    `daemon.max_start_delay` (30 s): a canary run every 30m or hourly that the old leader had just run ran again at
    each take-over (twice in a rolling update; a 60 s canary 20 s after its last run, measured), and at each restart.
    Its next run now comes one interval after the last stored one."""
    hourly = "  - id: hourly\n    messages: [{role: user, content: hi}]\n    samples: 1\n    schedule: {every: 1h}\n"
    (a, reg_a), (b, reg_b) = (_app(tmp_path, url, steady_sim, name, more=hourly) for name in "ab")

    def hourly_attempts(registry: CollectorRegistry) -> float:
        return registry.get_sample_value("llm_monitor_probe_attempts_total", {"canary": "hourly", "target": "t"}) or 0

    await a.start()
    await b.start()
    try:
        await _until(lambda: hourly_attempts(reg_a) == 1 and _attempts(reg_a) >= 2)
        await a.stop()
        # b leads, and its schedule has run the 1 s canary twice since: the hourly one, run 1 s or so ago, waits
        await _until(lambda: b.leading and _attempts(reg_b) >= 2)
        assert hourly_attempts(reg_b) == 0
        assert len(b.store.runs(canary="hourly")) == 1
    finally:
        await b.stop()
        if a.scheduler.running:
            await a.stop()


async def test_a_standby_that_takes_over_goes_on_with_the_leaders_failing_streak(
        tmp_path: Path, url: str, faults_sim: SimServer) -> None:
    """LLMMonitorCanaryFailing reads how long the pair has failed: the new leader's gauge starts where the old
    leader's streak started (read from the store), not at its own first failed run."""
    (a, reg_a), (b, reg_b) = (_app(tmp_path, url, faults_sim, name, "fault-server-error") for name in "ab")
    labels = {"canary": "c1", "target": "t"}
    await a.start()
    await b.start()
    try:
        await _until(lambda: _attempts(reg_a) >= 2)
        began = reg_a.get_sample_value("llm_monitor_failing_since_timestamp_seconds", labels)
        assert began is not None and reg_b.get_sample_value("llm_monitor_failing_since_timestamp_seconds",
                                                            labels) is None  # a standby exports no pair series
        await a.stop()
        await _until(lambda: b.leading and _attempts(reg_b) >= 2)
        assert reg_b.get_sample_value("llm_monitor_failing_since_timestamp_seconds", labels) == began
    finally:
        await b.stop()
        if a.scheduler.running:
            await a.stop()


async def test_a_leader_that_loses_the_lock_stops_acting_and_the_daemon_exits_1(
        tmp_path: Path, pg_url: str, steady_sim: SimServer) -> None:
    (a, reg_a), (b, reg_b) = _app(tmp_path, pg_url, steady_sim, "a"), _app(tmp_path, pg_url, steady_sim, "b")
    stop_a = asyncio.Event()
    daemon_a = asyncio.create_task(serve(a, stop_a))  # as `llm-monitor run` runs it
    await _until(lambda: a.leading)
    await b.start()
    try:
        await _until(lambda: _attempts(reg_a) >= 1)
        _terminate_lock_holder(pg_url)
        assert await asyncio.wait_for(daemon_a, 30) == 1  # its supervisor restarts it, as a standby
        assert a.leadership_lost.is_set() and not a.leading and reg_a.get_sample_value("llm_monitor_leader") == 0
        await _until(lambda: b.leading and _attempts(reg_b) >= 1)
    finally:
        stop_a.set()
        await b.stop()


def test_an_unreachable_store_is_not_leadership_and_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    down = Leadership(Store("postgresql+psycopg://postgres:hunter2pw@127.0.0.1:5999/nope").engine)
    with caplog.at_level("WARNING", logger="monitor.leader"):
        assert not down.try_acquire() and not down.try_acquire() and not down.held
    [message] = [r.getMessage() for r in caplog.records]  # once, saying why, without the password
    assert message.startswith("cannot reach the store to try for leadership (retrying): OperationalError: ")
    assert "5999" in message and "hunter2pw" not in message
    # the driver's error on its own, as every other store error is logged (found by QA: SQLAlchemy's wrapper
    # repeated the class name and ended with its help link)
    assert "sqlalche.me" not in message and "(psycopg.OperationalError)" not in message


@pytest.mark.parametrize("lock_lost", [True, False])
async def test_a_leader_waking_from_a_freeze_confirms_the_lock_before_it_probes(
        tmp_path: Path, pg_url: str, steady_sim: SimServer, lock_lost: bool) -> None:
    """Found by QA with real processes: a leader SIGSTOPped (a frozen VM) while the server dropped its session, so
    that the standby took over, ran every canary at once on SIGCONT, beside the new leader, before its watch saw
    the lock was gone. A run now starts only on a lock confirmed within two checks' time, or confirms it first;
    a leader that still holds it goes on probing."""
    a, reg_a = _app(tmp_path, pg_url, steady_sim, "a")
    a.leader_check_s = 30.0  # the watch looks at start, then not again during the test: as if the process slept
    await a.start()
    try:
        await _until(lambda: _attempts(reg_a) >= 1 and not a.runner.in_flight)
        if lock_lost:
            _terminate_lock_holder(pg_url)  # the server gave the frozen leader's lock up...
        frozen = time.monotonic() - 61, time.time() - 61  # ...and its last confirmation is a minute old
        a.leadership._confirmed = frozen
        before = _attempts(reg_a)
        await asyncio.sleep(2.5)  # the 1 s canary fell due: on waking, it fires at once
        if lock_lost:
            assert _attempts(reg_a) == before, "the old leader probed after it lost the lock"
            assert a.leadership_lost.is_set() and not a.leading
            assert reg_a.get_sample_value("llm_monitor_leader") == 0
        else:
            assert _attempts(reg_a) > before and a.leading and not a.leadership_lost.is_set()
            assert a.leadership._confirmed > frozen  # the store confirmed it again
    finally:
        await a.stop()


async def test_after_the_server_ends_the_leaders_session_the_two_never_start_runs_together(
        tmp_path: Path, pg_url: str, steady_sim: SimServer) -> None:
    """Found by QA with real processes: after pg_terminate_backend of the leader's lock session, the standby led
    within 0.2 s and the old leader, until its next check of the lock (every 5 s), still started 2-3 runs after
    the new leader's first. The leader now checks every second and starts a run only on a lock confirmed within
    two checks; a standby that takes a session's lock waits two checks before it probes."""
    (a, reg_a), (b, reg_b) = _app(tmp_path, pg_url, steady_sim, "a"), _app(tmp_path, pg_url, steady_sim, "b")
    a.leader_check_s = b.leader_check_s = 1.0
    b.leader_poll_s = 0.02  # the standby takes the freed lock at once: the worst case
    a.runner.replica, b.runner.replica = "a", "b"  # one process here: name each run's replica
    await a.start()
    await b.start()
    try:
        await _until(lambda: _attempts(reg_a) >= 2)
        _terminate_lock_holder(pg_url)
        await _until(lambda: b.leadership.held)
        took = time.monotonic()
        await _until(lambda: b.leading)
        assert time.monotonic() - took >= 1.9  # two of its checks: the old leader's confirmations have run out
        await _until(lambda: a.leadership_lost.is_set() and _attempts(reg_b) >= 2)
        runs = a.store.runs(limit=1000)
        old = [r.started_at for r in runs if r.replica == "a"]
        new = [r.started_at for r in runs if r.replica == "b"]
        assert old and new and max(old) < min(new), (max(old), min(new))
    finally:
        await b.stop()
        if a.scheduler.running:
            await a.stop()

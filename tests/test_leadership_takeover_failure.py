"""A standby whose take-over fails on a store error gives the lock back, rather than holding it and leading nothing."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from monitor.commands.run import serve
from monitor.sim import SimServer
from monitor.store import Store
from monitor.store.leader import Leadership
from tests.conftest import PG_ADMIN
from tests.test_leadership import _app, _until


async def test_a_take_over_that_a_store_error_breaks_exits_and_frees_the_lock(
        tmp_path: Path, pg_url: str, steady_sim: SimServer) -> None:
    """Found by review: a store error in the take-over that is not the store's own StoreError (the alert outbox's
    reads raise SQLAlchemy's: a lock timeout behind a `VACUUM FULL` or a migration, a fail-over) ended the standby's
    wait for the lock with an exception no one read. The replica kept the lock, confirmed by its watch, with
    llm_monitor_leader 1 and no schedule: no replica probed, analysed or alerted until someone restarted it."""
    import psycopg

    name = pg_url.rsplit("/", 1)[1]
    dsn = PG_ADMIN.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0] + "/" + name
    Store(pg_url).migrate()
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" SET lock_timeout = 300')  # the DBA's setting for every session
    (a, _), (b, reg_b) = _app(tmp_path, pg_url, steady_sim, "a"), _app(tmp_path, pg_url, steady_sim, "b")
    b.leader_poll_s = 0.5
    await a.start()
    stop_b = asyncio.Event()
    daemon_b = asyncio.create_task(serve(b, stop_b))
    await _until(lambda: b.succession.standing_by)
    with psycopg.connect(dsn) as blocker:
        try:
            await a.stop()  # the leader leaves; the outbox is locked (a VACUUM FULL) as the standby takes over
            blocker.execute("LOCK TABLE notifications IN ACCESS EXCLUSIVE MODE")
            # without the fix: b holds the lock, says it leads, schedules nothing, and never exits
            assert await asyncio.wait_for(daemon_b, 20) == 1  # its supervisor restarts it, as a standby
            assert not b.leading and reg_b.get_sample_value("llm_monitor_leader") == 0
        finally:
            blocker.rollback()
            stop_b.set()
            if not daemon_b.done():
                await daemon_b
    other = Leadership(Store(pg_url).engine)
    try:
        assert other.try_acquire()  # the lock is free for the next replica
    finally:
        other.release()


async def test_a_store_error_as_the_first_leader_starts_is_a_clear_start_error(
        tmp_path: Path, pg_url: str, steady_sim: SimServer, caplog: pytest.LogCaptureFixture) -> None:
    """Found by review: the first replica to start takes the lock and leads at once; a store error in that take-over
    (the outbox's reads behind a `VACUUM FULL` past the DBA's lock_timeout, a fail-over) crashed out of serve() with
    a traceback, where a store that fails at the schema check a moment earlier is one line, "cannot start: ...",
    naming the store and the driver's message, exit 2. Its lock stays free for another replica."""
    import psycopg

    name = pg_url.rsplit("/", 1)[1]
    dsn = PG_ADMIN.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0] + "/" + name
    Store(pg_url).migrate()
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" SET lock_timeout = 300')
    app, registry = _app(tmp_path, pg_url, steady_sim, "a")
    with psycopg.connect(dsn) as blocker, caplog.at_level(logging.ERROR, logger="monitor.run"):
        try:
            blocker.execute("LOCK TABLE notifications IN ACCESS EXCLUSIVE MODE")
            code = await asyncio.wait_for(serve(app, asyncio.Event()), 20)
        finally:
            blocker.rollback()
    assert code == 2
    [record] = [r for r in caplog.records if r.name == "monitor.run"]
    message = record.getMessage()
    assert message.startswith(f"cannot start: reading the store at {app.store.shown} to take the lead failed: ")
    assert "LockNotAvailable: canceling statement due to lock timeout" in message and record.exc_info is None
    assert not app.leading and registry.get_sample_value("llm_monitor_leader") == 0
    other = Leadership(Store(pg_url).engine)
    try:
        assert other.try_acquire()  # given up: the next replica to start (this one restarted) leads
    finally:
        other.release()
        await asyncio.to_thread(app.store.close)

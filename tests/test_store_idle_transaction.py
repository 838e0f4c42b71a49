"""A daemon session frozen inside a transaction does not hold its locks for good (PostgreSQL, a real server).

A client that stops mid-transaction (SIGSTOP, a paused VM, a thread blocked between two statements) leaves its
session idle in the transaction, and every lock it took stays held: the other replicas' writes behind it failed at
their lock_timeout, over and over, for as long as it stayed so. The daemon's sessions carry the server's
idle_in_transaction_session_timeout (storage.statement_timeout's value), which ends such a session.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from monitor.store import Store
from monitor.store.engine import Timeouts, unbounded

HANGS = 60.0  # a wait still going after this long waits for good (the bound under test is 1 s)


def _dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def test_a_session_frozen_inside_a_transaction_is_ended_and_its_locks_go(pg_url: str) -> None:
    daemon = Store(pg_url, timeouts=Timeouts(idle_s=1))
    daemon.migrate()
    frozen = daemon.engine.connect()
    frozen.begin()
    frozen.execute(text("LOCK TABLE observations IN ACCESS EXCLUSIVE MODE"))  # then its client stops
    done = threading.Event()

    def other_replica() -> None:  # no lock_timeout: it waits for the lock as long as it is held
        with psycopg.connect(_dsn(pg_url)) as conn:
            conn.execute("SELECT count(*) FROM observations")
        done.set()

    try:
        threading.Thread(target=other_replica, daemon=True).start()  # left behind if it hangs: the test says so
        assert done.wait(HANGS), "a daemon session idle inside a transaction held its lock for good"
        try:  # the server ended the session: its client hears so at its next statement
            frozen.execute(text("SELECT 1"))
            raise AssertionError("the frozen session was not ended")
        except DBAPIError as e:  # a store error (held and retried), the connection replaced by the pool
            assert "idle-in-transaction timeout" in str(e) and e.connection_invalidated
    finally:
        frozen.invalidate()
        daemon.close()


def test_a_migration_or_prune_may_sit_idle_in_its_transaction(pg_url: str) -> None:
    store = Store(pg_url, timeouts=Timeouts(idle_s=1))
    try:
        with store.engine.begin() as conn:
            unbounded(conn)  # as a migration or the prune past retention: lifted for this transaction
            time.sleep(2)  # past the bound: Python work between two of its statements
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
        with store.engine.connect() as conn:  # lifted for that transaction only
            assert conn.execute(text("SELECT current_setting('idle_in_transaction_session_timeout')")).scalar_one() \
                == "1s"
    finally:
        store.close()


def test_a_stricter_idle_timeout_the_dba_set_is_kept_a_looser_one_bounded(pg_url: str) -> None:
    name = make_url(pg_url).database
    seen: dict[str, Any] = {}
    for dba, daemon, key in ((300, 2, "stricter"), (600_000, 2, "looser")):
        with psycopg.connect(_dsn(pg_url), autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" SET idle_in_transaction_session_timeout = {dba}')
        store = Store(pg_url, timeouts=Timeouts(idle_s=daemon))
        try:
            with store.engine.connect() as conn:
                seen[key] = conn.execute(text("SELECT current_setting('idle_in_transaction_session_timeout')")) \
                    .scalar_one()
        finally:
            store.close()
    assert seen == {"stricter": "300ms", "looser": "2s"}

"""PostgreSQL sessions say whose they are: `application_name` names llm-monitor, the replica and the leader lock."""

from __future__ import annotations

import os
import socket

from sqlalchemy import text

from monitor.store import Store
from monitor.store.leader import Leadership

REPLICA = f"{socket.gethostname()}:{os.getpid()}"  # as the runs table's `replica` names this process


def _names(store: Store) -> set[str]:
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT application_name FROM pg_stat_activity WHERE datname = current_database()"))
        return {r[0] for r in rows}


def test_the_pool_and_the_leader_lock_sessions_name_the_replica(pg_url: str) -> None:
    # Found taking the store away from two replicas: pg_stat_activity showed a dozen nameless sessions, so which
    # replica held the leader lock (or whose sessions to end) could not be told without pg_locks and guesswork.
    store = Store(pg_url)
    lock = Leadership(store.engine)
    try:
        assert lock.try_acquire()
        names = _names(store)
        assert f"llm-monitor {REPLICA}" in names
        assert f"llm-monitor leader lock {REPLICA}" in names
        with store.engine.connect() as conn:
            holder = conn.execute(text(
                "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                "WHERE l.locktype = 'advisory' AND l.objid = 7166002 AND l.granted AND l.database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database())")).scalar_one()
        assert holder == f"llm-monitor leader lock {REPLICA}"
    finally:
        lock.release()
        store.close()


def test_an_application_name_in_the_url_is_kept(pg_url: str) -> None:
    store = Store(pg_url + "?application_name=ours")
    lock = Leadership(store.engine)
    try:
        assert lock.try_acquire()
        assert _names(store) == {"ours"}
    finally:
        lock.release()
        store.close()

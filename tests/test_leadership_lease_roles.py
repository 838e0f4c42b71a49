"""A standby ends a frozen leader's lock session only if PostgreSQL lets it see and end that session: the same role,
or pg_read_all_stats (to see another role's session state) and pg_signal_backend (to end it), and never a
superuser's as a non-superuser. When it may not, it says so once, plainly, not as a store it cannot reach."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from sqlalchemy.engine import make_url

from monitor.store import Store
from monitor.store.leader import Leadership

LEASE_S = 1.0
Connect = Callable[..., Store]


@pytest.fixture
def as_role(pg_url: str) -> Iterator[Connect]:
    """Stores on the test database connecting as new login roles (granted `grants`), dropped afterwards."""
    admin = make_url(pg_url)
    dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    made: list[tuple[str, Store]] = []

    def connect(*grants: str) -> Store:
        role = f"llm_monitor_t_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{role}'")  # a server may want one
            for grant in grants:
                conn.execute(f'GRANT {grant} TO "{role}"')
        store = Store(admin.set(username=role, password=role).render_as_string(hide_password=False))
        made.append((role, store))
        return store

    yield connect
    for role, store in made:
        store.close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def _freeze_then_try(frozen: Leadership, standby: Leadership) -> bool:
    assert frozen.try_acquire()
    time.sleep(LEASE_S + 0.5)  # the frozen leader checks nothing
    return standby.try_acquire() or standby.try_acquire()


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name == "monitor.leader"]


def test_a_standby_that_may_not_see_another_roles_session_says_so_once(
        pg_url: str, as_role: Connect, caplog: pytest.LogCaptureFixture) -> None:
    leader_store, standby_store = as_role(), as_role("pg_signal_backend")  # no pg_read_all_stats
    frozen, standby = Leadership(leader_store.engine), Leadership(standby_store.engine, lease_s=LEASE_S)
    try:
        assert not _freeze_then_try(frozen, standby)  # a lease it could not see the end of
        assert frozen.still_held()
        said = _warnings(caplog)
        assert len(said) == 1 and "cannot take over from a frozen leader" in said[0] and "pg_read_all_stats" in said[0]
    finally:
        frozen.release()
        standby.release()


def test_a_standby_that_may_not_end_a_superusers_session_says_so_not_that_the_store_is_away(
        pg_url: str, as_role: Connect, caplog: pytest.LogCaptureFixture) -> None:
    leader_store, standby_store = Store(pg_url), as_role("pg_read_all_stats", "pg_signal_backend")
    frozen, standby = Leadership(leader_store.engine), Leadership(standby_store.engine, lease_s=LEASE_S)
    try:
        assert not _freeze_then_try(frozen, standby)
        assert frozen.still_held()
        said = _warnings(caplog)
        assert len(said) == 1 and "superuser" in said[0], said  # was: "cannot reach the store ... (retrying)"
        assert not any("cannot reach the store" in m for m in said)
    finally:
        frozen.release()
        standby.release()
        leader_store.close()


def test_a_standby_of_another_role_with_both_grants_takes_over(as_role: Connect) -> None:
    leader_store, standby_store = as_role(), as_role("pg_read_all_stats", "pg_signal_backend")
    frozen, standby = Leadership(leader_store.engine), Leadership(standby_store.engine, lease_s=LEASE_S)
    try:
        assert frozen.try_acquire()
        time.sleep(LEASE_S + 0.5)
        deadline = time.monotonic() + 20
        while not standby.try_acquire():
            assert time.monotonic() < deadline, "the standby never took the lock over"
            time.sleep(0.2)
        assert not frozen.still_held()
    finally:
        frozen.release()
        standby.release()

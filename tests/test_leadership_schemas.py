"""Deployments in one PostgreSQL database but different schemas (search_path) each have a leader of their own, and
during a rolling update from a version that took one lock for the whole database, an old replica and a new one never
both lead."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import create_engine

from monitor.store.leader import LEADER_LOCK_ID, Leadership


@pytest.fixture
def schemas(pg_url: str) -> Iterator[tuple[str, str]]:
    """The URLs of two deployments in one database, each in a schema of its own (search_path in the URL)."""
    with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute("CREATE SCHEMA tenant_a")
        conn.execute("CREATE SCHEMA tenant_b")
    yield (f"{pg_url}?options=-csearch_path%3Dtenant_a", f"{pg_url}?options=-csearch_path%3Dtenant_b")


def _old_version(pg_url: str) -> psycopg.Connection:
    """A session standing for a replica of the version before: it took the one key for the whole database."""
    return psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


def _locks(*urls: str) -> list[Leadership]:
    return [Leadership(create_engine(u)) for u in urls]


def test_deployments_in_two_schemas_of_one_database_each_lead(schemas: tuple[str, str]) -> None:
    a, b = schemas
    lead_a, lead_b, standby_a = _locks(a, b, a)
    try:
        assert lead_a.try_acquire()
        assert lead_b.try_acquire()  # another schema: another deployment, with a leader of its own
        assert not standby_a.try_acquire()  # one leader per schema still
        assert lead_a.still_held() and lead_b.still_held()
        lead_a.release()
        assert standby_a.try_acquire() and lead_b.still_held()
    finally:
        for lock in (lead_a, lead_b, standby_a):
            lock.release()


def test_an_old_version_leader_keeps_a_new_replica_standing_by(pg_url: str, schemas: tuple[str, str]) -> None:
    old = _old_version(pg_url)
    [new] = _locks(schemas[0])
    try:
        assert old.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK_ID,)).fetchone() == (True,)
        assert not new.try_acquire()  # an old leader may run in this schema: it does not lead beside it
        old.execute("SELECT pg_advisory_unlock(%s)", (LEADER_LOCK_ID,))
        assert new.try_acquire()
    finally:
        new.release()
        old.close()


def test_a_new_leader_keeps_an_old_version_replica_standing_by(pg_url: str, schemas: tuple[str, str]) -> None:
    old = _old_version(pg_url)
    [new] = _locks(schemas[0])
    try:
        assert new.try_acquire()
        assert old.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK_ID,)).fetchone() == (False,)
        assert new.still_held()
    finally:
        new.release()
        old.close()


def test_a_leader_without_the_old_key_stops_when_an_old_version_replica_takes_it(
        pg_url: str, schemas: tuple[str, str]) -> None:
    """The second schema's leader leads without the old key (the first schema's leader holds it); once that one
    stops, the old key is taken at the next check, and an old replica that took it first makes the new one stop."""
    old = _old_version(pg_url)
    lead_a, lead_b, lead_c = _locks(schemas[0], schemas[1], schemas[1])
    try:
        assert lead_a.try_acquire() and lead_b.try_acquire()
        lead_a.release()
        assert lead_b.still_held()  # takes the old key now
        assert old.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK_ID,)).fetchone() == (False,)
        lead_b.release()
        assert lead_a.try_acquire() and lead_c.try_acquire()
        lead_a.release()
        assert old.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK_ID,)).fetchone() == (True,)
        assert not lead_c.still_held()  # an old replica (of its schema, perhaps) may lead: it stops
    finally:
        for lock in (lead_a, lead_b, lead_c):
            lock.release()
        old.close()

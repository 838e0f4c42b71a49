"""Deployments in one PostgreSQL database but different schemas (search_path) migrate each at its own pace: one
schema's migration (which may rightly take long) keeps no other schema's waiting, while two replicas of one schema
still migrate one at a time, and a migration of a version before (which locked the whole database) keeps every
migration of this version waiting, as it did."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import Engine, create_engine

from monitor.store.lock_keys import MIGRATION_LOCK_ID
from monitor.store.schema import HEAD, current_revision, migrate, migration_lock


@pytest.fixture
def schemas(pg_url: str) -> Iterator[tuple[str, str]]:
    """The URLs of two deployments in one database, each in a schema of its own (search_path in the URL)."""
    with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute("CREATE SCHEMA tenant_a")
        conn.execute("CREATE SCHEMA tenant_b")
    yield (f"{pg_url}?options=-csearch_path%3Dtenant_a", f"{pg_url}?options=-csearch_path%3Dtenant_b")


def _waits_or_ends(engine: Engine, admin: psycopg.Connection) -> bool:
    """Migrate through `engine` on a thread; return True once it is done, False once it waits for an advisory lock
    (the test holds one, so it would wait for as long as the test holds it)."""
    done = threading.Event()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            migrate(engine)
        except BaseException as exc:  # noqa: BLE001 - reported by the asserting thread
            failed.append(exc)
            raise
        done.set()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    while not done.wait(0.05):
        waiting = admin.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")
        if waiting.fetchone() != (0,):
            return False
        assert not failed, f"the migration failed: {failed[0]!r}"
    return True


def _session(url: str) -> psycopg.Connection:
    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


def test_a_migration_in_one_schema_keeps_another_schemas_waiting_no_more(
        pg_url: str, schemas: tuple[str, str]) -> None:
    """Found by review: the migration lock was one key for the whole database, so a long migration of one
    deployment's schema held every other deployment's start in that database."""
    a, b = (create_engine(u) for u in schemas)
    admin = _session(pg_url)
    try:
        with a.begin() as conn:
            migration_lock(conn)  # a migration of tenant_a under way
            assert _waits_or_ends(b, admin)
        assert current_revision(b) == HEAD
    finally:
        admin.close()
        a.dispose()
        b.dispose()


def test_two_migrations_of_one_schema_still_take_turns(pg_url: str, schemas: tuple[str, str]) -> None:
    a, a2 = (create_engine(schemas[0]) for _ in range(2))
    admin = _session(pg_url)
    try:
        with a.begin() as conn:
            migration_lock(conn)
            assert not _waits_or_ends(a2, admin)
        deadline = time.monotonic() + 60
        while current_revision(a2) != HEAD:  # the waiting one goes on once the lock is free
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        admin.close()
        a.dispose()
        a2.dispose()


def test_an_old_version_migrating_keeps_this_versions_migrations_waiting(
        pg_url: str, schemas: tuple[str, str]) -> None:
    """Versions before locked the whole database to migrate (pg_advisory_xact_lock of the one key): during a rolling
    update one may be migrating any schema, this one perhaps, and a migration of this version waits for it."""
    b = create_engine(schemas[1])
    old = _session(pg_url)
    admin = _session(pg_url)
    try:
        with old.transaction():
            old.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_ID,))
            assert not _waits_or_ends(b, admin)
        deadline = time.monotonic() + 60
        while current_revision(b) != HEAD:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        admin.close()
        old.close()
        b.dispose()

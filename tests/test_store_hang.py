"""A PostgreSQL store that hangs rather than refusing is bounded: a connection's opening, a statement, a lock wait.

A server that takes the TCP connection and never answers (stopped, a paused VM, a proxy whose backend hangs), or
a lock another session holds and never lets go, held the thread that wanted the store for good, and with it the
write, the readiness check, the reload or the shutdown waiting on it. Each is made real here: a socket that never
answers, a real lock on a real server. The bounds asserted are generous: they tell "finishes" from "hangs".
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from monitor.app import store_timeouts
from monitor.config.loader import load_config, restart_only
from monitor.domain import CallResult, Observation, utcnow
from monitor.store import Store
from monitor.store.engine import Timeouts
from monitor.store.leader import Leadership
from monitor.store.lock_keys import MIGRATION_LOCK_ID as MIGRATION_LOCK
from monitor.store.schema import HEAD
from monitor.upkeep import prune_past_retention
from tests.support.frozen import FrozenRelay

HANGS = 60.0  # a call still going after this long waits for good


def finishes(call: Callable[[], Any], within: float = HANGS) -> tuple[bool, Any]:
    """Run `call` on a daemon thread; return whether it ended within `within` seconds, and its result or error."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(call())
        except Exception as e:
            out.append(e)

    t = threading.Thread(target=run, daemon=True)  # left behind if it hangs: the test says so and goes on
    t.start()
    t.join(within)
    return not t.is_alive(), out[0] if out else None


def _at(url: str, port: int) -> str:
    return make_url(url).set(host="127.0.0.1", port=port).render_as_string(hide_password=False)


def test_a_server_that_never_answers_fails_the_connection_instead_of_holding_it(pg_url: str) -> None:
    with FrozenRelay(None) as silent:
        store = Store(_at(pg_url, silent.port), timeouts=Timeouts(connect_s=2))
        try:
            done, answer = finishes(store.ping)
            assert done, "the readiness check waited for good on a server that never answers"
            assert answer is False
        finally:
            store.close()


def test_a_standby_whose_server_never_answers_fails_its_try_for_the_lock(pg_url: str) -> None:
    with FrozenRelay(None) as silent:
        store = Store(_at(pg_url, silent.port), timeouts=Timeouts(connect_s=2))
        lock = Leadership(store.engine, connect_timeout_s=2)
        try:
            done, took = finishes(lock.try_acquire)
            assert done, "the try for the leader lock waited for good on a server that never answers"
            assert took is False
        finally:
            store.close()


def test_a_reload_keeps_the_store_timeouts_the_engine_was_made_with(tmp_path: Path) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_text("targets: [{id: t, provider: openai, base_url: 'http://127.0.0.1:1/v1', model: m}]\nprobes: []\n")
    running = load_config(path, environ={})
    path.write_text(path.read_text() + "storage: {connect_timeout: 3s}\n")
    loaded = load_config(path, environ={})
    assert loaded.storage.connect_timeout == 3
    kept, changed = restart_only(running, loaded)
    assert changed == ["storage.connect_timeout"]
    assert kept.storage.connect_timeout == running.storage.connect_timeout == 10


def _dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _obs(i: int) -> Observation:
    return Observation(canary="c", target="t", provider="openai", request_model="m", started_at=utcnow(),
                       call=CallResult(text=f"answer {i}"), id=f"o{i}")


@pytest.fixture
def bounded(pg_url: str) -> Iterator[Store]:
    """A migrated store with the daemon's session timeouts, short: 2 s a statement, 1 s a lock wait."""
    store = Store(pg_url, timeouts=Timeouts(statement_s=2, lock_s=1))
    store.migrate()
    yield store
    store.close()


def test_a_write_waiting_for_a_lock_held_for_good_fails_and_is_held_for_a_retry(bounded: Store, pg_url: str) -> None:
    with psycopg.connect(_dsn(pg_url)) as locker:  # a transaction open: ACCESS EXCLUSIVE until it ends
        locker.execute("LOCK TABLE observations IN ACCESS EXCLUSIVE MODE")
        done, answer = finishes(lambda: bounded.save_observation(_obs(1)))
        assert done, "the write waited for good behind another session's lock"
        assert isinstance(answer, OperationalError) and "lock timeout" in str(answer)
        locker.rollback()
    bounded.save_observation(_obs(2))  # the lock gone, the same pooled session writes
    assert [o.id for o in bounded.observations()] == ["o2"]


def test_a_statement_the_server_does_not_end_fails_after_the_statement_timeout(bounded: Store) -> None:
    def sleep() -> None:
        with bounded.engine.connect() as conn:
            conn.execute(text("SELECT pg_sleep(600)"))

    done, answer = finishes(sleep)
    assert done, "a statement of the daemon's ran on past statement_timeout"
    assert isinstance(answer, OperationalError) and "statement timeout" in str(answer)


def _held(pg_url: str, sql: str, seconds: float) -> threading.Thread:
    """Hold what `sql` locks from another session for `seconds`, from now; return the thread holding it."""
    taken = threading.Event()

    def hold() -> None:
        with psycopg.connect(_dsn(pg_url)) as conn:
            conn.execute(sql)
            taken.set()
            time.sleep(seconds)

    t = threading.Thread(target=hold, daemon=True)
    t.start()
    assert taken.wait(30)
    return t


def test_the_prune_waits_its_turn_past_the_lock_timeout(bounded: Store, pg_url: str) -> None:
    old = _obs(1)
    bounded.save_observation(replace(old, started_at=old.started_at - timedelta(days=100)))
    holder = _held(pg_url, "LOCK TABLE observations IN ACCESS EXCLUSIVE MODE", 4)  # past 2 s and 1 s
    done, removed = finishes(lambda: bounded.prune(utcnow() - timedelta(days=90)))
    holder.join()
    assert done and removed == 1


def test_a_migration_waits_for_another_replicas_past_the_lock_timeout(pg_url: str) -> None:
    store = Store(pg_url, timeouts=Timeouts(statement_s=2, lock_s=1))
    try:
        holder = _held(pg_url, f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})", 4)  # another replica migrating
        done, revision = finishes(store.migrate)
        holder.join()
        assert done and revision == HEAD
    finally:
        store.close()


def test_the_daemon_builds_its_store_with_the_configured_timeouts(tmp_path: Path) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_text("targets: [{id: t, provider: openai, base_url: 'http://127.0.0.1:1/v1', model: m}]\nprobes: []\n"
                    "storage: {connect_timeout: 5s, statement_timeout: 2m, lock_timeout: 0}\n")
    assert store_timeouts(load_config(path, environ={})) == Timeouts(connect_s=5, statement_s=120, lock_s=0,
                                                                                   idle_s=120)


async def test_the_hourly_prune_goes_on_after_the_outbox_s_prune_fails(sqlite_store: Store,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # a lock timeout (or a store away) from the outbox's prune ended the loop for good: nothing was pruned again
    monkeypatch.setattr("monitor.upkeep.PRUNE_INTERVAL_S", 0.01)
    calls: list[object] = []

    def prune(cutoff: object) -> int:
        calls.append(cutoff)
        if len(calls) == 1:
            raise OperationalError("DELETE", {}, Exception("canceling statement due to lock timeout"))
        return 0

    alerting: Any = SimpleNamespace(outbox=SimpleNamespace(prune=prune))
    task = asyncio.create_task(prune_past_retention(sqlite_store, alerting, lambda: 90, utcnow))
    for _ in range(6000):
        if len(calls) >= 2 or task.done():
            break
        await asyncio.sleep(0.01)
    assert not task.done(), task.exception()
    assert len(calls) >= 2
    task.cancel()


def test_readiness_checks_on_a_server_that_stopped_answering_hold_one_thread_not_one_each(pg_url: str) -> None:
    u = make_url(pg_url)
    with FrozenRelay((u.host or "127.0.0.1", u.port or 5432)) as relay:
        store = Store(_at(pg_url, relay.port), timeouts=Timeouts(connect_s=2))
        try:
            held = [store.engine.connect() for _ in range(5)]  # five sessions in the pool, as a busy daemon has
            for conn in held:
                conn.close()
            assert store.ping()
            relay.freeze()
            first = threading.Thread(target=store.ping, daemon=True)  # waits for good: no timeout ends it
            first.start()
            time.sleep(0.5)
            for _ in range(3):  # the next checks (a kubelet's, every 10 s) answer, and hold no thread
                done, answer = finishes(lambda: store.ping(wait_s=1))
                assert done, "a readiness check waited for good behind the one already waiting"
                assert answer is False
            assert first.is_alive()
        finally:
            store.close()


def test_a_pooled_connection_idle_on_a_server_that_stopped_answering_is_replaced_not_waited_on(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("monitor.store.engine.PING_IDLE_S", 0.2)
    u = make_url(pg_url)
    with FrozenRelay((u.host or "127.0.0.1", u.port or 5432)) as relay:
        store = Store(_at(pg_url, relay.port), timeouts=Timeouts(connect_s=2))
        try:
            store.reach()
            time.sleep(0.5)  # idle past PING_IDLE_S: pinged at its next checkout
            relay.freeze()
            done, answer = finishes(store.reach)
            assert done, "the idle connection's ping waited for good on a server that stopped answering"
            assert isinstance(answer, OperationalError)  # a fresh connection, not answered within connect_timeout
        finally:
            store.close()


def test_the_outbox_s_prune_waits_its_turn_past_the_lock_timeout(bounded: Store, pg_url: str) -> None:
    # the hourly prune's other half (README: neither limited): a lock timeout failed it, and nothing was pruned
    # from the outbox for as long as another session's lock outlived storage.lock_timeout at each hour
    from monitor.alerts.outbox import Outbox

    holder = _held(pg_url, "LOCK TABLE notifications IN ACCESS EXCLUSIVE MODE", 4)  # past 2 s and 1 s
    done, removed = finishes(lambda: Outbox(bounded.engine).prune(utcnow() - timedelta(days=90)))
    holder.join()
    assert done and removed == 0, removed


def test_a_stricter_timeout_the_dba_set_on_the_database_is_kept_a_looser_one_bounded(pg_url: str) -> None:
    # the daemon's 10 s lock_timeout replaced a DBA's 300 ms (ALTER DATABASE ... SET): a take-over behind a
    # VACUUM FULL waited 10 s a statement where the DBA wanted it failed at once
    with psycopg.connect(_dsn(pg_url), autocommit=True) as admin:
        name = make_url(pg_url).database
        admin.execute(f'ALTER DATABASE "{name}" SET lock_timeout = 300')
        admin.execute(f'ALTER DATABASE "{name}" SET statement_timeout = 600000')
    store = Store(pg_url, timeouts=Timeouts(statement_s=2, lock_s=1))
    try:
        with store.engine.connect() as conn:
            got = conn.execute(text("SELECT current_setting('lock_timeout'), current_setting('statement_timeout')"))
            assert tuple(got.one()) == ("300ms", "2s")
    finally:
        store.close()

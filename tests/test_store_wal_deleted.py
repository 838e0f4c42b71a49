"""A SQLite store's write-ahead log (`llm-monitor.db-wal`) deleted under a running daemon.

What SQLite does (3.40, checked here on real files): the connections that opened the log write on into the deleted
inode, and what they commit is readable to them alone; a connection opened afterwards creates an empty log at the
path, and its reads fail (`disk I/O error`, SQLITE_IOERR_SHORT_READ) while the shared index names frames of the
deleted one. What was committed since the last checkpoint, before the deletion and after, is then in the deleted
inode only: a crash (kill -9, OOM, power loss) loses all of it, and so does a clean stop whose last connection to
close is one that opened the new log (its checkpoint copies an empty log). It reaches the store file only when the
last connection that holds the deleted log closes (its checkpoint reads it through that descriptor).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError

from monitor.app import App
from monitor.config import load_config
from monitor.sim import SimServer
from monitor.store import Store
from tests.conftest import write_config
from tests.test_store_file_deleted import _obs
from tests.test_store_outage import PROBES, value


def _count(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return int(conn.execute("SELECT count(*) FROM observations").fetchone()[0])


def _crashed(db: Path, tmp_path: Path) -> int:
    """The observations a crash now would leave: the store file alone (the deleted log's inode dies with the
    process; a -wal at the path is the empty one a later connection made, or none)."""
    copy = tmp_path / "after-crash.db"
    shutil.copy(db, copy)
    return _count(copy)


def test_sqlite_itself_loses_what_a_deleted_log_held_when_a_later_connection_closes_last(tmp_path: Path) -> None:
    """The finding, on sqlite3 alone: no error for the writer, a disk I/O error for a reader opened after the
    deletion, and every row since the last checkpoint gone once that reader is the last to close."""
    db = tmp_path / "m.db"
    old = sqlite3.connect(db, isolation_level=None)
    old.execute("PRAGMA journal_mode=WAL")
    old.execute("CREATE TABLE t (i INTEGER PRIMARY KEY)")
    old.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    old.execute("INSERT INTO t VALUES (1)")
    Path(f"{db}-wal").unlink()
    old.execute("INSERT INTO t VALUES (2)")  # no error: written into the deleted log
    assert old.execute("SELECT count(*) FROM t").fetchone() == (2,)
    new = sqlite3.connect(db, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        new.execute("SELECT count(*) FROM t").fetchone()
    old.close()  # not the last: no checkpoint
    new.close()  # the last: checkpoints its own, empty, log and deletes it
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)


def test_a_deleted_log_is_written_into_the_store_file_at_the_next_write_and_a_new_log_started(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Found by asking: `rm llm-monitor.db-wal` alone was silent, every write after it went into the deleted log, and
    a crash (or a CLI command's connection closing last) then lost every observation since the last checkpoint."""
    db = tmp_path / "m.db"
    store = Store(f"sqlite:///{db}")
    store.migrate()
    with store.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    store.save_observation(_obs(1))
    assert _crashed(db, tmp_path) == 0  # in the log only
    Path(f"{db}-wal").unlink()
    store.save_observation(_obs(2))  # the connection holding the deleted log closed first: its checkpoint wrote it in
    assert _crashed(db, tmp_path) == 1
    assert Path(f"{db}-wal").exists()  # o2 went into a new log at the path
    assert "write-ahead log" in caplog.text and "was deleted or replaced" in caplog.text
    assert store.ping()
    assert {o.id for o in store.observations(limit=10)} == {"o1", "o2"}
    store.close()
    assert _count(db) == 2


def test_a_new_connection_is_not_opened_on_a_fresh_log_while_one_holds_the_deleted_log(tmp_path: Path) -> None:
    """Another connection of the pool still holding the deleted log (checked out by another thread): a connection
    opened meanwhile would make an empty log beside it, read errors, and lose the deleted log if it closed last."""
    db = tmp_path / "m.db"
    store = Store(f"sqlite:///{db}")
    store.migrate()
    store.save_observation(_obs(1))
    with store.engine.connect() as held:
        held.exec_driver_sql("SELECT 1")
        Path(f"{db}-wal").unlink()
        for i in (2, 3):  # the pool's other connection, then a new one: both refused
            with pytest.raises(SQLAlchemyError, match="write-ahead log"):
                store.save_observation(_obs(i))
        assert not Path(f"{db}-wal").exists()
    store.save_observation(_obs(2))  # the holder handed back, closed at its checkout: a new log
    assert {o.id for o in store.observations(limit=10)} == {"o1", "o2"}
    store.close()
    assert _count(db) == 2


HANG_S = 60.0  # a bound on the waits below, against a hang: each is met at once unless something is broken


def test_no_connection_opens_on_a_fresh_log_until_the_holder_of_the_deleted_one_has_closed(tmp_path: Path) -> None:
    """Found under load (four test workers on two cores): the pool fires its "close" event before it closes, and the
    deleted log's holder was forgotten there. A connection opened meanwhile, on a fresh log, was still open when the
    holder closed: not the last close, so the deleted log went unwritten, the schema with it (the daemon holds a
    connection while a child process migrates: nothing is checkpointed), and every write after it failed, "no such
    table: observations", the daemon's held writes never stored. The holder's close is held here, in its thread,
    while another thread writes; a connection that opened meanwhile and closes lets the holder close first."""
    db = tmp_path / "m.db"
    store = Store(f"sqlite:///{db}")
    armed, closing, go, closed = threading.Event(), threading.Event(), threading.Event(), threading.Event()

    class Held(sqlite3.Connection):
        def close(self) -> None:
            if armed.is_set() and not closing.is_set():  # the holder of the deleted log
                closing.set()
                go.wait(HANG_S)
                super().close()
                closed.set()
                return
            if closing.is_set() and not closed.is_set():  # opened beside the holder: its close comes after the holder's
                go.set()
                closed.wait(HANG_S)
            super().close()

    @event.listens_for(store.engine, "do_connect")
    def _held(_dialect: Any, _record: Any, _args: Any, params: dict[str, Any]) -> None:
        params["factory"] = Held

    store.migrate(in_child=True)  # as the daemon does: the schema is in the log only
    store.save_observation(_obs(1))
    assert store.engine.pool.checkedin() == 1  # type: ignore[attr-defined]
    Path(f"{db}-wal").unlink()
    armed.set()
    holder = threading.Thread(target=lambda: store.save_observation(_obs(2)))  # closes the holder, then writes o2
    holder.start()
    assert closing.wait(HANG_S)
    with pytest.raises(SQLAlchemyError, match="write-ahead log"):  # no connection beside the holder still open
        store.save_observation(_obs(3))
    assert not Path(f"{db}-wal").exists()
    go.set()
    holder.join()
    assert _crashed(db, tmp_path) == 1  # the deleted log is in the store file
    store.save_observation(_obs(3))  # the held write, retried
    assert {o.id for o in store.observations(limit=10)} == {"o1", "o2", "o3"}
    store.close()
    assert _count(db) == 3


def test_a_log_deleted_as_a_connection_opens_it_leaves_no_connection_unwatched_on_it(tmp_path: Path) -> None:
    """The log deleted after a new connection opened it, before the watcher learnt which log that was: the
    connection holds the deleted log unknown to the watcher (it saw none at the path), is never closed for it, and
    the other holders' close is then not the last. It is closed at once, its write held."""
    db = tmp_path / "m.db"
    store = Store(f"sqlite:///{db}")
    armed = threading.Event()

    class Deleting(sqlite3.Cursor):
        def execute(self, sql: str, *args: Any) -> Any:
            done = super().execute(sql, *args)
            if armed.is_set() and sql.startswith("PRAGMA cache_size"):  # the last of make_engine's connect pragmas
                armed.clear()
                Path(f"{db}-wal").unlink()
            return done

    class Opening(sqlite3.Connection):
        def cursor(self, factory: Any = Deleting) -> Any:
            return super().cursor(factory)

    @event.listens_for(store.engine, "do_connect")
    def _opening(_dialect: Any, _record: Any, _args: Any, params: dict[str, Any]) -> None:
        params["factory"] = Opening

    store.migrate(in_child=True)  # the schema in the log only, as in the daemon
    store.save_observation(_obs(1))
    with contextlib.ExitStack() as stack:
        for _ in range(store.engine.pool.size()):  # type: ignore[attr-defined]  # every pooled one out: a new one next
            stack.enter_context(store.engine.connect()).exec_driver_sql("SELECT 1")
        armed.set()
        with pytest.raises(SQLAlchemyError, match="write-ahead log"):
            store.save_observation(_obs(2))
        assert not armed.is_set()
    with pytest.raises(SQLAlchemyError, match="write-ahead log"):  # one holder closed, the other still in the pool
        store.save_observation(_obs(2))
    store.save_observation(_obs(2))  # the last holder closed (it wrote the deleted log in), then a new log
    assert _crashed(db, tmp_path) >= 1
    assert {o.id for o in store.observations(limit=10)} == {"o1", "o2"}
    store.close()
    assert _count(db) == 2


def test_a_connection_refused_as_it_opens_a_fresh_log_is_closed_by_the_watcher_itself(tmp_path: Path) -> None:
    """The refusal above relied on the pool closing a connection whose connect event raised, which SQLAlchemy does
    only since its fix of sqlalchemy#13548 (`sqlalchemy>=2.0` allows the releases before it, which kept it open, held
    by the error): open on the fresh log, it made the deleted log's holders' close not the last. The engine's
    connect listeners are run here on a connection of our own, as the pool runs them (the log deleted after the
    pragmas, as above), to see the watcher close it whatever the pool does."""
    db = tmp_path / "m.db"
    store = Store(f"sqlite:///{db}")

    class Deleting(sqlite3.Cursor):
        def execute(self, sql: str, *args: Any) -> Any:
            done = super().execute(sql, *args)
            if sql.startswith("PRAGMA cache_size"):  # the last of make_engine's connect pragmas
                Path(f"{db}-wal").unlink()
            return done

    store.migrate(in_child=True)
    store.save_observation(_obs(1))
    assert store.engine.pool.checkedin() == 1  # type: ignore[attr-defined]  # it holds the log
    class Opening(sqlite3.Connection):
        def cursor(self, factory: Any = Deleting) -> Any:
            return super().cursor(factory)

    fresh = sqlite3.connect(db, factory=Opening, check_same_thread=False)
    try:
        with pytest.raises(sqlite3.OperationalError, match="write-ahead log"):
            store.engine.pool.dispatch.connect(fresh, SimpleNamespace(info={}))
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            fresh.execute("SELECT 1")
    finally:
        fresh.close()
    store.close()  # the holder closes last: the deleted log is in the store file
    assert _count(db) == 1


def test_sqlite_deleting_its_own_log_at_the_last_close_is_no_alarm(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    store = Store(f"sqlite:///{db}")
    store.migrate()
    store.save_observation(_obs(1))
    store.close()  # every connection closed: SQLite checkpoints and deletes the log itself
    assert not Path(f"{db}-wal").exists()
    store.save_observation(_obs(2))
    assert {o.id for o in store.observations(limit=10)} == {"o1", "o2"}
    store.close()


def test_a_connection_opening_as_the_last_one_closes_and_deletes_its_own_log_is_no_alarm(tmp_path: Path) -> None:
    """The last connection's close deletes the log (SQLite does at every last close), and it counted as a holder
    until that close returned (for a log deleted under it, see above): a connection opened in between saw its log
    gone from the path and was refused as if the log had been deleted under the daemon, its write failed."""
    db = tmp_path / "m.db"
    store = Store(f"sqlite:///{db}")
    unlinked, go = threading.Event(), threading.Event()

    class Slow(sqlite3.Connection):
        def close(self) -> None:
            super().close()
            if not unlinked.is_set():  # the first close, the last connection's: its log is gone, it has not returned
                unlinked.set()
                go.wait(HANG_S)

    @event.listens_for(store.engine, "do_connect")
    def _slow(_dialect: Any, _record: Any, _args: Any, params: dict[str, Any]) -> None:
        params["factory"] = Slow

    store.migrate()
    store.save_observation(_obs(1))
    assert store.engine.pool.checkedin() == 1  # type: ignore[attr-defined]
    closing = threading.Thread(target=store.close)
    closing.start()
    try:
        assert unlinked.wait(HANG_S)
        assert not Path(f"{db}-wal").exists()
        store.save_observation(_obs(2))  # a new connection, a new log
    finally:
        go.set()
        closing.join()
    assert {o.id for o in store.observations(limit=10)} == {"o1", "o2"}
    store.close()
    assert _count(db) == 2


async def test_a_daemon_whose_log_is_deleted_loses_nothing(steady_sim: SimServer, tmp_path: Path) -> None:
    target = f"  - {{id: gpt, provider: openai, base_url: '{steady_sim.openai_base_url}', model: sim-gpt}}"
    config = load_config(write_config(tmp_path, target, PROBES), environ={})
    canary, tgt = config.pairs()[0]
    registry = CollectorRegistry()
    app = App(config, registry=registry, environ={}, serve_http=False)
    db = tmp_path / "m.db"
    await app.start(schedule=False)
    made: list[str] = []
    try:
        made += [o.id for o in await app.runner.run(canary, tgt)]
        Path(f"{db}-wal").unlink()
        for _ in range(3):
            made += [o.id for o in await app.runner.run(canary, tgt)]
        deadline = time.monotonic() + 30
        while value(registry, "llm_monitor_store_pending_writes") and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert value(registry, "llm_monitor_store_pending_writes") == 0
        assert _crashed(db, tmp_path) >= 2  # what came before the deletion is in the store file: a crash keeps it
    finally:
        await app.stop()
    assert value(registry, "llm_monitor_store_dropped_writes_total") == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = {r[0] for r in conn.execute("SELECT id FROM observations")}
    assert set(made) <= stored and len(made) == 8

"""A SQLite store file deleted or replaced under a running daemon: its writes fail, rather than vanish.

SQLite keeps writing to a file it has open after the file was deleted (`rm llm-monitor.db*`, a cleanup job, a volume
swapped under the container): the inode lives on while a connection holds it, every write succeeds, and nothing of it
is ever seen again; the daemon reported itself ready, no write failed, and it stopped with exit 0, every observation
since the deletion lost. So each pooled connection remembers which file it opened, and one whose path now names no
file or another file is dropped at its checkout; a new connection is not opened on a path whose file has gone (SQLite
would create an empty one there, without the schema). Writes then fail as for a store away: held in memory and
retried, the readiness check fails, and a file put back (a backup restored in its place, `store copy` back from
PostgreSQL) takes them.

Its write-ahead log (`-wal`) deleted alone is as bad, and SQLite is as silent: the connections that opened the log write
on into the deleted inode, a connection opened afterwards makes an empty log at the path (its reads fail, "disk I/O
error"), and everything committed since the last checkpoint is in the deleted inode only: a crash loses it, and so
does a stop whose last connection to close is one on the new log. So each connection remembers its log too; one whose
log is gone is closed at its checkout (the write fails as for a store away, held and retried), and no new connection
is opened while one still holds the deleted log. The last of them to close checkpoints the deleted log into the store
file through its descriptor, as SQLite does at every last close, and the next connection starts a new log: the held
writes go in, nothing lost (unless another process, a CLI command, keeps a connection open meanwhile). A holder of
the deleted log counts as one until its close has returned (the pool's "close" event comes before its close: one opened in between, on a
fresh log, made that close not the last, and the deleted log, the schema too where a migration's log was never
checkpointed, was lost: "no such table"), and one that opened its log just as it was deleted is closed at once.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from typing import Any

from sqlalchemy import Engine, event, exc

Identity = tuple[int, int]  # (st_dev, st_ino)
log = logging.getLogger("monitor.store")


def _identity(path: str) -> Identity | OSError:
    """The file at `path`, or why there is none to be seen: gone, or past looking at (its folder made unreadable,
    NFS's ESTALE), which raised out of the pool, not as a store error (the write lost, the retries ended)."""
    try:
        st = os.stat(path)
    except OSError as e:
        return e
    return st.st_dev, st.st_ino


def _gone(path: str, now: Identity | OSError) -> str:
    if isinstance(now, OSError) and not isinstance(now, FileNotFoundError):
        what = f"cannot be looked at ({now.strerror})"
    else:
        what = "was deleted or replaced while the daemon ran"
    return (f"the store file {path} {what}: writes wait in memory until a store is back at that path (restore it, "
            "or restart to start a new one)")


def _log_gone(wal: str) -> str:
    return (f"the store's write-ahead log {wal} was deleted or replaced while the daemon ran: writes wait in memory "
            "until the connections holding the deleted log have closed (the last one writes it into the store file)")


def watch_file(engine: Engine, database: str) -> None:
    """Refuse connections to `database` once its file is no longer the one this engine opened (see module doc)."""
    path = os.path.abspath(database)
    wal = f"{path}-wal"
    opened = False  # whether a connection has opened the file: from then on it must exist
    logs: dict[int, Identity] = {}  # id of each open connection -> the log it opened
    lock = threading.Lock()

    def _deleted_log_held() -> None:
        """Refuse a connection while another holds a log that is no longer the one at the path: it would make (or
        use) an empty log beside the deleted one, and the holder's close would then not be the last."""
        now_log = _identity(wal)
        with lock:
            if any(held != now_log for held in logs.values()):
                raise sqlite3.OperationalError(_log_gone(wal))

    @event.listens_for(engine, "do_connect")
    def _no_new_file(*_args: Any) -> None:
        now = _identity(path)
        if opened and isinstance(now, OSError):  # sqlite3.connect would create an empty file there
            raise sqlite3.OperationalError(_gone(path, now))
        _deleted_log_held()

    @event.listens_for(engine, "connect")
    def _remember(dbapi_conn: Any, record: Any) -> None:
        nonlocal opened
        now = _identity(path)
        record.info["sqlite_file"] = None if isinstance(now, OSError) else now
        record.info["sqlite_wal"] = None
        # Again now that it is open (the WAL pragma, a listener before this one, opened the log): a log deleted
        # since `_no_new_file` looked leaves this one on a fresh log. Closed here, not left to the pool: SQLAlchemy
        # closes a connection whose connect event raised only since its fix of sqlalchemy#13548 (2.0 before it kept
        # it open, held by the error, until collected), and open it makes the holders' close not the last
        try:
            _deleted_log_held()
        except sqlite3.OperationalError:
            dbapi_conn.close()
            raise
        _learn_log(dbapi_conn, record)
        opened = True

    @event.listens_for(engine, "checkin")
    def _learn_log(dbapi_conn: Any, record: Any) -> None:
        """Remember the log this connection has open: at its opening, or, on a new store (no log until the first
        write), once it has used the store."""
        if dbapi_conn is None or record.info.get("sqlite_wal") is not None:
            return
        now_log = _identity(wal)
        if not isinstance(now_log, OSError):
            record.info["sqlite_wal"] = now_log
            with lock:
                logs[id(dbapi_conn)] = now_log

    @event.listens_for(engine, "close")
    def _forget(dbapi_conn: Any, _record: Any) -> None:
        """Forget the connection's log; a holder of a deleted log is closed first: the pool fires this before its
        own close (a no-op after this one), and a connection forgotten before its close returned let another open on
        a fresh log meanwhile. One whose log is the one at the path is forgotten at once, as its close may delete
        that log (SQLite does at every last close): counted until then, a connection opening meanwhile was refused
        as if the log had been deleted under the daemon."""
        with lock:
            held = logs.get(id(dbapi_conn))
        try:
            if held is not None and held != _identity(wal) and dbapi_conn is not None:
                dbapi_conn.close()  # the last holder of a deleted log writes it into the store file here
        except sqlite3.Error:
            pass  # the pool's own close, next, tries again and logs why
        finally:
            with lock:
                logs.pop(id(dbapi_conn), None)

    @event.listens_for(engine, "checkout")
    def _same_file(_dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        now = _identity(path)
        if isinstance(now, OSError) or now != record.info.get("sqlite_file"):
            raise exc.DisconnectionError(_gone(path, now))
        held = record.info.get("sqlite_wal")
        if held is not None and _identity(wal) != held:
            log.warning("the store's write-ahead log %s was deleted or replaced while the daemon ran: closing the "
                        "connections that hold the deleted one (the last to close writes it into the store file), "
                        "then starting a new one", wal)
            raise exc.DisconnectionError(_log_gone(wal))

"""A SQLite store file deleted or replaced under a running daemon: its writes fail, rather than vanish.

SQLite keeps writing to a file it has open after the file was deleted (`rm llm-monitor.db*`, a cleanup job, a volume
swapped under the container): the inode lives on while a connection holds it, every write succeeds, and nothing of it
is ever seen again; the daemon reported itself ready, no write failed, and it stopped with exit 0, every observation
since the deletion lost. So each pooled connection remembers which file it opened, and one whose path now names no
file or another file is dropped at its checkout; a new connection is not opened on a path whose file has gone (SQLite
would create an empty one there, without the schema). Writes then fail as for a store away: held in memory and
retried, the readiness check fails, and a file put back (a backup restored in its place, `store copy` back from
PostgreSQL) takes them.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from sqlalchemy import Engine, event, exc

Identity = tuple[int, int]  # (st_dev, st_ino)


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


def watch_file(engine: Engine, database: str) -> None:
    """Refuse connections to `database` once its file is no longer the one this engine opened (see module doc)."""
    path = os.path.abspath(database)
    opened = False  # whether a connection has opened the file: from then on it must exist

    @event.listens_for(engine, "do_connect")
    def _no_new_file(*_args: Any) -> None:
        now = _identity(path)
        if opened and isinstance(now, OSError):  # sqlite3.connect would create an empty file there
            raise sqlite3.OperationalError(_gone(path, now))

    @event.listens_for(engine, "connect")
    def _remember(_dbapi_conn: Any, record: Any) -> None:
        nonlocal opened
        now = _identity(path)
        record.info["sqlite_file"] = None if isinstance(now, OSError) else now
        opened = True

    @event.listens_for(engine, "checkout")
    def _same_file(_dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        now = _identity(path)
        if isinstance(now, OSError) or now != record.info.get("sqlite_file"):
            raise exc.DisconnectionError(_gone(path, now))

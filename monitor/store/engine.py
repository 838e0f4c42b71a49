"""Engines for the two supported stores: SQLite (embedded default, WAL) and PostgreSQL (several replicas)."""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import ExceptionContext, make_url

SQLITE_CACHE_KIB = 1024
SQLITE_READONLY = 8  # primary result code; the extended ones (READONLY_DBMOVED, ...) share its low byte
# Threads that use the store at once: the event loop's default executor (asyncio.to_thread: min(32, cores + 4)
# workers), the drift analysis thread and one to spare. A PostgreSQL pool this size keeps every connection it
# opens; a smaller one closed each connection handed back past its size and opened another at the next peak
# (found by the PostgreSQL soak: ~30 new sessions a minute, each a server process forked and torn down).
PG_POOL_SIZE = min(32, (os.cpu_count() or 1) + 4) + 2


def read_only_connection(ctx: ExceptionContext) -> None:
    """Treat SQLite's "attempt to write a readonly database" as a lost connection, so the pool replaces it.

    SQLite opens a file it cannot write read-only, and that connection stays read-only for good: kept in the pool,
    it would fail every write after the file is writable again (a restore with the wrong owner, then fixed)."""
    orig = ctx.original_exception
    if isinstance(orig, sqlite3.OperationalError) and getattr(orig, "sqlite_errorcode", 0) & 0xFF == SQLITE_READONLY:
        ctx.is_disconnect = True


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and foreign keys, PostgreSQL a pre-ping pool."""
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        # SQLite runs one writer at a time: two pooled connections serve the steady state (overflow ones close on
        # return), each with its page cache capped at 1 MiB (the default is 2 MiB per connection).
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=2,
                               max_overflow=10)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            if u.database not in (None, "", ":memory:"):
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
            cur.close()

        event.listen(engine, "handle_error", read_only_connection)
        return engine
    if u.drivername == "postgresql":
        u = u.set(drivername="postgresql+psycopg")
    return create_engine(u, pool_pre_ping=True, pool_size=PG_POOL_SIZE, max_overflow=10)

"""Engines for the two supported stores: SQLite (embedded default, WAL) and PostgreSQL (several replicas)."""

from __future__ import annotations

import functools
import math
import os
import select
import socket
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, exc, text
from sqlalchemy.engine import URL, ExceptionContext, make_url

from monitor.store.sqlite_file import watch_file

SQLITE_CACHE_KIB = 1024
SQLITE_READONLY = 8  # primary result code; the extended ones (READONLY_DBMOVED, ...) share its low byte
# Threads that use the store at once: the event loop's default executor (asyncio.to_thread: min(32, cores + 4)
# workers), the drift analysis thread and one to spare. A PostgreSQL pool this size keeps every connection it
# opens; a smaller one closed each connection handed back past its size and opened another at the next peak
# (found by the PostgreSQL soak: ~30 new sessions a minute, each a server process forked and torn down).
PG_POOL_SIZE = min(32, (os.cpu_count() or 1) + 4) + 2
# A pooled PostgreSQL connection idle longer than this is pinged when checked out (a server restart, an idle timeout
# or a firewall may have ended it meanwhile); one handed back within it is used as it is. SQLAlchemy's pool_pre_ping
# pinged at every checkout: a round trip per transaction, about half of the daemon's with single-statement writes.
# A connection that turns out dead is a disconnect error: the pool then replaces every connection older than it,
# and the writes a daemon must not lose retry once on it (`retry_disconnect`).
PING_IDLE_S = 5.0
# How long opening a PostgreSQL connection may take (libpq's connect_timeout): a server that takes the TCP connection
# and never answers (stopped, a paused VM, a proxy whose backend hangs) held a connection's thread for good, and with
# it the write, the readiness check or the reload that wanted one.
CONNECT_TIMEOUT_S = 10.0
# How long a PostgreSQL connection whose path went silent (a partition, a dropped NAT or firewall entry, a paused VM or
# a host gone: nothing acknowledged any more, and no reset) takes to fail: libpq's TCP keepalives (idle 10 s, then a
# probe every 5 s) and tcp_user_timeout (what was sent, unacknowledged this long, or probes unanswered). A statement
# already sent on such a path otherwise waited for good, and the write thread with it; statement_timeout is the
# server's, which never hears of it. Not the bound of a long statement on a live server: its kernel answers the probes.
DEAD_PEER_S = 25.0
P = ParamSpec("P")
R = TypeVar("R")


def read_only_connection(ctx: ExceptionContext) -> None:
    """Treat SQLite's "attempt to write a readonly database" as a lost connection, so the pool replaces it.

    SQLite opens a file it cannot write read-only, and that connection stays read-only for good: kept in the pool,
    it would fail every write after the file is writable again (a restore with the wrong owner, then fixed)."""
    orig = ctx.original_exception
    if isinstance(orig, sqlite3.OperationalError) and getattr(orig, "sqlite_errorcode", 0) & 0xFF == SQLITE_READONLY:
        ctx.is_disconnect = True


def session_name(role: str = "") -> str:
    """The PostgreSQL `application_name` of this process's sessions: llm-monitor, the role (the leader lock) and the
    replica as the runs table names it (host:pid), so `pg_stat_activity` tells whose a session is (the server cuts
    it at 63 bytes)."""
    return " ".join(p for p in ("llm-monitor", role, f"{socket.gethostname()}:{os.getpid()}") if p)


def named(u: URL, role: str = "") -> dict[str, str]:
    """connect_args naming the session (`session_name`), unless the URL chose an application_name itself."""
    return {} if "application_name" in u.query else {"application_name": session_name(role)}


@dataclass(frozen=True)
class Timeouts:
    """How long the store may keep a caller waiting on PostgreSQL (0: no limit). `connect_s` bounds opening a
    connection (libpq's connect_timeout); the next three, set on the daemon's own sessions only, bound one statement,
    its wait for a lock (the server's statement_timeout and lock_timeout) and how long a session may sit idle inside
    a transaction (idle_in_transaction_session_timeout: the server ends one whose client froze mid-transaction, and
    the locks it held go with it)."""

    connect_s: float = CONNECT_TIMEOUT_S
    statement_s: float = 0.0
    lock_s: float = 0.0
    idle_s: float = 0.0
    dead_peer_s: float = DEAD_PEER_S  # a connection whose path went silent fails within this (`keepalive`)


DEFAULT_TIMEOUTS = Timeouts()  # commands on the store: a connection's opening bounded, statements not


def connect_timeout(u: URL, seconds: float) -> dict[str, int]:
    """connect_args bounding the connection's opening, unless the URL set connect_timeout itself (libpq counts
    whole seconds, 2 at least)."""
    if "connect_timeout" in u.query or seconds <= 0:
        return {}
    return {"connect_timeout": max(2, math.ceil(seconds))}


def keepalive(u: URL, seconds: float) -> dict[str, int]:
    """connect_args failing a connection whose path went silent within about `seconds` (0: none): libpq's TCP
    keepalives and its tcp_user_timeout, each unless the URL set it itself (libpq counts the keepalives' times in
    whole seconds, tcp_user_timeout in milliseconds)."""
    if seconds <= 0:
        return {}
    args = {"keepalives": 1, "keepalives_idle": max(1, round(seconds * 0.4)),
            "keepalives_interval": max(1, round(seconds * 0.2)), "keepalives_count": 3,
            "tcp_user_timeout": round(seconds * 1000)}
    return {k: v for k, v in args.items() if k not in u.query}


def make_engine(url: str, timeouts: Timeouts = DEFAULT_TIMEOUTS) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and foreign keys, PostgreSQL a pool that pings a
    connection idle over PING_IDLE_S, TCP keepalives (`keepalive`), and `timeouts`."""
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
        if u.database not in (None, "", ":memory:") and not u.database.startswith("file:"):
            watch_file(engine, u.database)
        return engine
    if u.drivername == "postgresql":
        u = u.set(drivername="postgresql+psycopg")
    engine = create_engine(u, pool_size=PG_POOL_SIZE, max_overflow=10,
                           connect_args={**named(u), **connect_timeout(u, timeouts.connect_s),
                                         **keepalive(u, timeouts.dead_peer_s)})
    settings = {name: round(s * 1000) for name, s in (("statement_timeout", timeouts.statement_s),
                                                     ("lock_timeout", timeouts.lock_s),
                                                     ("idle_in_transaction_session_timeout", timeouts.idle_s)) if s > 0}
    if settings:
        event.listen(engine, "connect", functools.partial(_set_session, settings))
    event.listen(engine, "checkin", _checked_in)
    event.listen(engine, "checkout", functools.partial(_ping_if_idle, timeouts.connect_s))
    return engine


def _set_session(settings: dict[str, int], dbapi_conn: Any, _record: Any) -> None:
    """Set the session's timeouts (milliseconds) on a new connection, each only where the server's own (a DBA's
    `ALTER DATABASE`/`ALTER ROLE ... SET`) is none or longer: the daemon's bound, not a loosening of a stricter one
    (a statement once; not in the URL's `options`, which PgBouncer refuses)."""
    autocommit = dbapi_conn.autocommit
    dbapi_conn.autocommit = True
    dbapi_conn.execute("SELECT set_config(s.name, v.ms || 'ms', false) FROM pg_settings s JOIN (VALUES "
                       + ", ".join("(%s, %s::bigint)" for _ in settings) + ") AS v(name, ms) ON s.name = v.name "
                       "WHERE s.setting::bigint = 0 OR s.setting::bigint > v.ms",
                       [v for item in settings.items() for v in item])
    dbapi_conn.autocommit = autocommit


def unbounded(conn: Connection) -> None:
    """Lift the session's statement, lock and idle-in-transaction timeouts for the rest of `conn`'s transaction
    (PostgreSQL): for the work that may rightly take long or wait its turn (a migration, the prune past retention)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT set_config('statement_timeout', '0', true), set_config('lock_timeout', '0', true), "
                          "set_config('idle_in_transaction_session_timeout', '0', true)"))


def _checked_in(_dbapi_conn: Any, record: Any) -> None:
    record.info["checked_in"] = time.monotonic()


def _ping_if_idle(timeout_s: float, dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    """Ping a connection that sat in the pool past PING_IDLE_S; a dead one, or one with no answer within
    `timeout_s` (0: no limit), makes the pool connect afresh."""
    if time.monotonic() - record.info.get("checked_in", time.monotonic()) <= PING_IDLE_S:
        return
    autocommit = dbapi_conn.autocommit
    try:
        dbapi_conn.autocommit = True  # no BEGIN: one round trip, and no transaction left open by the ping
        if timeout_s > 0:
            _select_1_within(dbapi_conn.pgconn, timeout_s)
        else:
            dbapi_conn.execute("SELECT 1")
        dbapi_conn.autocommit = autocommit
    except Exception as e:
        raise exc.DisconnectionError(f"pooled connection dead after {PING_IDLE_S:g} s idle: {e}") from e


def _select_1_within(pgconn: Any, timeout_s: float) -> None:
    """`SELECT 1` through libpq's asynchronous calls, waiting at most `timeout_s` for the answer: a server that
    stopped answering on an open connection (a stopped process; its kernel still takes what is sent) is ended by no
    timeout of its own, and psycopg waits for an answer for good."""
    from psycopg import pq

    deadline = time.monotonic() + timeout_s
    pgconn.send_query(b"SELECT 1")
    while pgconn.flush():  # what the socket did not take at once (a blocking connection: none, in practice)
        if not select.select([], [pgconn.socket], [], max(0.0, deadline - time.monotonic()))[1]:
            raise TimeoutError(f"no answer within {timeout_s:g} s")
    # Every get_result waits for the socket first, the last (None) too: libpq has it once the server's
    # ReadyForQuery came, and asked before, PQgetResult blocks for it, unbounded and holding the GIL (psycopg's C
    # build), every thread of the process stopped while a server that stopped after the result sends nothing more.
    while True:
        while pgconn.is_busy():
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([pgconn.socket], [], [], left)[0]:
                raise TimeoutError(f"no answer within {timeout_s:g} s")
            pgconn.consume_input()
        if (result := pgconn.get_result()) is None:
            return
        if result.status != pq.ExecStatus.TUPLES_OK:
            raise exc.DBAPIError("SELECT 1", None, Exception(result.error_message.decode(errors="replace")))


def retry_disconnect(fn: Callable[P, R]) -> Callable[P, R]:
    """Run a store write again, once, when its connection turned out dead (the pool then connects afresh).

    Only for writes that may run twice: an insert whose repeat is a key conflict, an upsert, an update by key. The
    first try may have been done before its answer was lost with the connection."""
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except exc.DBAPIError as e:
            if not e.connection_invalidated:
                raise
            return fn(*args, **kwargs)

    return wrapper

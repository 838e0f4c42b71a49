"""Leadership: of the replicas sharing a store, only one probes, analyses and alerts.

Several replicas on one PostgreSQL store give a standby that takes over, not twice the calls, spend, baselines
and pages. The leader is the replica holding a lock the store itself keeps, so a leader that dies (process,
host or connection) frees it without anyone's clock deciding:

- PostgreSQL: a session advisory lock on a dedicated connection, one per schema (see LEADER_LOCK_ID). The server's TCP keepalives on that session
  are set short, so a vanished host's lock is released in about half a minute, not hours.
- SQLite: an exclusive ``flock`` on ``<database>.leader`` beside the database file (one host by nature).
- In-memory SQLite: always the leader (nothing can share it).

Behind a pooler in transaction mode (PgBouncer's pool_mode=transaction) a session lock cannot be kept: the server
session holding it is lent to other clients. The daemon refuses to start there (:meth:`Leadership.refuse_shared_sessions`);
the lock's own checks (TRY_LOCK, HOLDS_LOCK) are the backstop for a pooler that escapes that test.

A replica that loses the lock (its PostgreSQL connection broke) must stop acting at once: the daemon then
shuts down and exits 1 for its supervisor to restart it, as a standby (the way Kubernetes controllers treat a
lost lease). In a network partition both sides time the connection out with the same keepalives (libpq's
and the server's, ~25 s), so the old leader's check fails about when the server frees the lock. The leader
checks its lock every second and starts a run only on a lock confirmed within two checks (else it asks first,
and a check that hangs holds the run back); a standby that takes a lock a session held waits two checks before
it probes. So an old leader whose session the server ended (`pg_terminate_backend`, a partition) has started its
last run before the new one starts its first; only runs already in flight can overlap. Nothing would be lost by
an overlap (runs and observations are independent rows); the calls and their spend would be doubled.

A frozen leader (SIGSTOP, a stalled process, a paused VM) keeps its session, so the lock, but its checks stop: a
standby ends a daemon's lock session idle longer than the lease (its `application_name` says whose it is; a
`store copy`'s lock is never ended) and takes the lock at its next try. The old leader wakes with its jobs due
at once, before its watch has looked: the daemon starts a run (and writes an event) only on a lock confirmed
within two checks' time (:meth:`confirmed_within`), else it asks the store first, finds the lock gone and stops.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from monitor.config.validate import redact_url
from monitor.errors import StoreError
from monitor.store.engine import CONNECT_TIMEOUT_S, DEAD_PEER_S, connect_timeout, keepalive, named
from monitor.store.lock_keys import LEADER_LOCK_ID, schema_key
from monitor.store.repository import driver_message

log = logging.getLogger("monitor.leader")
__all__ = ["LEADER_LOCK_ID", "Leadership", "schema_key"]
# The lock is pg_advisory_lock(LEADER_LOCK_ID, <a key of the schema's name>): deployments in one database but different
# schemas (search_path) each have a leader. Versions before took pg_advisory_lock(LEADER_LOCK_ID) alone, one lock for
# the whole database (the "old key"); during a rolling update an old replica leads on it alone. So a leader also takes
# the old key when it is free, and leads without it only when another schema's leader of this version holds it (a
# session holding an old key and no schema key is an old version's, perhaps of this very schema: it does not lead
# beside one). A leader without the old key takes it at its next check once it frees, and stops if an old replica got
# there first.
# The server's side of the keepalives; libpq's side is `keepalive` (the main pool's too): the leader's own check of
# its connection fails within ~25 s of a partition too
KEEPALIVE = ("SET tcp_keepalives_idle = 10", "SET tcp_keepalives_interval = 5", "SET tcp_keepalives_count = 3")
# The schema lock in pg_locks (the two-key form shows its keys as classid, objid, with objsubid 2); `:k2` is
# `schema_key`'s, never negative, so it compares with the oid column as it is
_SCHEMA_LOCK = "locktype = 'advisory' AND classid = :k AND objid = :k2 AND objsubid = 2"
_OLD_LOCK = "locktype = 'advisory' AND classid = 0 AND objid = :k AND objsubid = 1"


# Take the lock unless this very session holds it already (NULL then): a pooler in transaction mode (PgBouncer's
# pool_mode=transaction) hands every replica's statements to the same server sessions, where the lock is re-entrant,
# so each replica would be told it took it. With the session's pid, which every check compares.
TRY_LOCK = text(
    f"SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_locks WHERE {_SCHEMA_LOCK} AND pid = pg_backend_pid() AND granted) "
    "THEN NULL ELSE pg_try_advisory_lock(CAST(:k AS integer), CAST(:k2 AS integer)) END, pg_backend_pid()")
# The old key, taken by this session (true), or held by another session: one of this version (a leader of another
# schema, which holds a schema lock too: false) or of a version before (NULL)
TRY_OLD_LOCK = text(
    f"SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_locks WHERE {_OLD_LOCK} AND pid = pg_backend_pid() AND granted) "
    "THEN true WHEN pg_try_advisory_lock(:k) THEN true WHEN EXISTS (SELECT 1 FROM pg_locks o JOIN pg_locks n ON n.pid = o.pid "
    "WHERE o.locktype = 'advisory' AND o.classid = 0 AND o.objid = :k AND o.objsubid = 1 AND o.granted "
    "AND o.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND n.locktype = 'advisory' AND n.classid = :k AND n.objsubid = 2 AND n.granted) THEN false END")
UNLOCK = text("SELECT pg_advisory_unlock(CAST(:k AS integer), CAST(:k2 AS integer))")  # the schema lock
# Whether the lock is still held by the session that took it: not only that a connection answers (behind a pooler
# the server session holding it may be gone, or another than the one answering)
HOLDS_LOCK = text(
    f"SELECT pg_backend_pid(), EXISTS (SELECT 1 FROM pg_locks WHERE {_SCHEMA_LOCK} AND pid = :pid AND granted)")
OLD_VERSION_LEADS = ("a replica of an older llm-monitor version holds the database-wide leader lock those versions "
                     "took (%s): this replica does not lead beside it; once every replica runs this version, each "
                     "schema has a leader of its own")
SHARED_SESSION = ("the leader lock's database session is not this replica's own: a pooler in transaction mode "
                  "(PgBouncer's pool_mode=transaction) shares its server sessions between the replicas, and each "
                  "would lead; connect the daemons to PostgreSQL directly or through a pool in session mode")
# A leader's check answered by another server session than the one that took the lock: only a pooler in transaction
# mode moves a connection between sessions. The lock stays with that session, which no replica can release.
SESSION_MOVED = ("the leader lock's check was answered by database session %s, not by session %s that took the lock: a "
                 "pooler in transaction mode (PgBouncer's pool_mode=transaction) moves connections between server "
                 "sessions; session %s keeps the lock until the pooler closes it, and no replica leads meanwhile; "
                 "connect the daemons to PostgreSQL directly or through a pool in session mode")


TRANSACTION_POOLER = ("the store's connections share their database sessions ({shared}): a pooler in transaction "
                      "mode (PgBouncer's pool_mode=transaction) or statement mode lends each transaction whichever "
                      "session is free, and the leader lock, a session advisory lock, would stay with a session no "
                      "replica controls (lost, and held by none that leads); connect the daemons to PostgreSQL "
                      "directly or through a pool in session mode (PgBouncer's pool_mode=session)")


# The session holding the leader lock when it is a daemon's: its state and how long it has been in it (both NULL
# to a role that may not see another role's sessions: neither a member of the holder's role nor of pg_read_all_stats)
LOCK_HOLDER = text(
    "SELECT a.pid, a.application_name, a.state, EXTRACT(EPOCH FROM clock_timestamp() - a.state_change) "
    "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.classid = :k "
    "AND l.objid = :k2 AND l.objsubid = 2 AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE "
    "datname = current_database()) AND a.application_name LIKE :name")


class Leadership:
    """Try, keep and release the store's leader lock (blocking calls: run them off the event loop)."""

    def __init__(self, engine: Engine, *, role: str = "leader lock", lease_s: float | None = None,
                 connect_timeout_s: float = CONNECT_TIMEOUT_S):
        self.url = engine.url
        self.connect_timeout_s = connect_timeout_s  # a server that never answers: a standby's try fails, and is tried again
        self.role = role  # names the lock's session (application_name); only a daemon's is taken over
        self.lease_s = lease_s  # a holder whose session answered no check for this long is ended (None: never)
        self.dialect = engine.dialect.name
        self.held = False
        self._conn: Any = None
        self._lock_engine: Engine | None = None  # made once: a standby connects through it at every try
        self._file: int | None = None
        self._unreachable = False
        self._confirmed = (0.0, 0.0)  # (monotonic, wall) time the store last confirmed the lock is ours
        self._cannot_end: str | None = None  # why this standby could not end a holder's session (warned once)
        self._pid: int | None = None  # the server session (pg_backend_pid) that took the lock
        self._keys: dict[str, int] = {}  # the lock's keys, `k` and the schema's `k2` (PostgreSQL)
        self._old_version_warned = False
        self._old_key = False  # holding the old versions' database-wide key too (see OLD_VERSION_LEADS)
        self._shared_warned = False

    def try_acquire(self) -> bool:
        """Take the lock if it is free; return whether this replica now leads."""
        if self.held:
            return True
        try:
            self.held = self._try_pg() if self.dialect == "postgresql" else self._try_file()
        except Exception as e:  # a store that is down: not the leader, try again later
            if not self._unreachable:  # once per outage, not at every try
                why = driver_message(e) if isinstance(e, SQLAlchemyError) else f"{type(e).__name__}: {e}"
                log.warning("cannot reach the store to try for leadership (retrying): %s",
                            redact_url(" ".join(why.split()))[:300].rstrip(": "))  # without a password the URL may carry
            self._unreachable = True
            self._close()
            self.held = False
            return False
        if self._unreachable:
            log.info("the store answers again")
            self._unreachable = False
        if self.held:
            self._confirmed = (time.monotonic(), time.time())
        return self.held

    def still_held(self) -> bool:
        """Tell whether the lock is still ours (for PostgreSQL: whether its connection is alive)."""
        if not self.held:
            return False
        if self._conn is None:
            return self._file_still_ours()  # a file lock lasts as long as the process, on the file it locked
        try:
            pid, held = self._conn.execute(HOLDS_LOCK, {**self._keys, "pid": self._pid}).one()
            old_version = held and not self._old_key and not self._take_old_key()
        except Exception:
            pid, held, old_version = None, False, False
        ours = pid == self._pid and bool(held) and not old_version
        if not ours:
            if pid is not None and pid != self._pid:  # the connection answers, from another session: a pooler's
                log.error(SESSION_MOVED, pid, self._pid, self._pid)
            self.held = False
            self._close()
            return False
        self._confirmed = (time.monotonic(), time.time())
        return True

    def refuse_shared_sessions(self) -> None:
        """Raise a StoreError when the store's connections share their server sessions (PostgreSQL behind a pooler in
        transaction or statement mode), where a session advisory lock cannot be kept: the lock stays with the server
        session that took it, which the pooler hands to other clients, and is lost and orphaned there (see
        SESSION_MOVED). Asked at start, before the first try for the lock. A store that does not answer is not
        refused here: the try for the lock says so, and is tried again."""
        if self.dialect != "postgresql":
            return
        try:
            shared = _sessions_shared(self._engine())
        except SQLAlchemyError:
            return
        if shared is not None:
            raise StoreError(TRANSACTION_POOLER.format(shared=shared))

    @property
    def session_bound(self) -> bool:
        """Whether the lock lives in a database session the server can end while its holder runs on (PostgreSQL),
        unlike a file lock, which lasts as long as the process."""
        return self._conn is not None

    def confirmed_within(self, seconds: float) -> bool:
        """Tell whether the lock is held and was confirmed by the store within the last `seconds` (a file lock,
        which lasts as long as the process, always is). By both clocks: a process that was stopped or frozen
        (SIGSTOP, a paused VM) wakes up with its jobs due before it has looked, and the server may have given the
        lock to another replica meanwhile."""
        if not self.held:
            return False
        if self._conn is None:
            return True
        mono, wall = self._confirmed
        return time.monotonic() - mono <= seconds and time.time() - wall <= seconds

    def release(self) -> None:
        """Give the lock up (at shutdown, so a standby takes over at once)."""
        if self.held and self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.execute(UNLOCK, self._keys)
                if self._old_key:
                    self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LEADER_LOCK_ID})
        self.held = False
        self._close()

    # -- backends --------------------------------------------------------------------------------------------
    def _engine(self) -> Engine:
        if self._lock_engine is None:
            args = {**keepalive(self.url, DEAD_PEER_S), **named(self.url, self.role),
                    **connect_timeout(self.url, self.connect_timeout_s)}
            self._lock_engine = create_engine(self.url, poolclass=NullPool, connect_args=args)
        return self._lock_engine

    def _try_pg(self) -> bool:
        if self._conn is None:
            self._conn = self._engine().connect().execution_options(isolation_level="AUTOCOMMIT")
            for statement in KEEPALIVE:
                self._conn.execute(text(statement))
            schema = self._conn.execute(text("SELECT current_schema()")).scalar_one_or_none() or ""
            self._keys = {"k": LEADER_LOCK_ID, "k2": schema_key(schema)}
        taken, self._pid = self._conn.execute(TRY_LOCK, self._keys).one()
        if taken is None and not self._shared_warned:
            log.error(SHARED_SESSION)
            self._shared_warned = True
        got = bool(taken)
        if got and not self._take_old_key():  # an old version's replica may lead in this schema
            self._conn.execute(UNLOCK, self._keys)
            got = False
        if not got:
            if self.lease_s is not None:
                self._end_stalled_holder(self._conn, self.lease_s)
            self._close()  # a standby holds no connection while it waits
        return got

    def _take_old_key(self) -> bool:
        """Take the old versions' database-wide key too when it is free; tell whether this replica may lead: it
        holds that key, or a leader of this version (another schema's) does. A session of an older version holding it
        may be of this schema, and leading: not beside it."""
        got = self._conn.execute(TRY_OLD_LOCK, {"k": LEADER_LOCK_ID}).scalar_one()
        self._old_key = got is True
        if got is None and not self._old_version_warned:  # once while it holds it, not at every try
            log.error(OLD_VERSION_LEADS, f"pg_advisory_lock({LEADER_LOCK_ID})")
        self._old_version_warned = got is None
        return got is not None

    def _end_stalled_holder(self, conn: Any, lease_s: float) -> None:
        """End the session of a daemon's leader lock that answered no check for `lease_s` (a frozen or stalled
        process keeps its session, so the lock, for as long as it is frozen: nothing would probe). The lock frees
        as the server ends it; the old leader, waking, confirms its lock before any run or write, finds it gone
        and stops. A lock `store copy` holds (another role) or one whose session a URL named is never ended."""
        if "application_name" in self.url.query:
            return  # every session has the URL's name: a daemon's lock cannot be told from `store copy`'s
        row = conn.execute(LOCK_HOLDER, {**self._keys, "name": "llm-monitor leader lock %"}).first()
        if row is None:
            return
        pid, name, state, idle = row
        if state is None:  # another role's session, which this one may not see
            self._cannot_end_holder(name, pid, "its session belongs to another PostgreSQL role, whose sessions' "
                                    "state this role may not read")
            return
        if state != "idle" or idle is None or idle <= lease_s:
            return
        try:
            ended = conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
        except DBAPIError as e:  # a superuser's session, or another role's without pg_signal_backend
            self._cannot_end_holder(name, pid, " ".join(driver_message(e).split())[:300])
            return
        log.warning("the leader's lock session answered no check for %.0f s (a frozen or stalled process): %s it so "
                    "this replica can take over", idle, "ended" if ended else "could not end",
                    extra={"holder": name, "pid": pid})

    def _cannot_end_holder(self, name: str, pid: int, why: str) -> None:
        if self._cannot_end != why:  # once, not at every try
            log.warning("cannot take over from a frozen leader: %s; connect every replica as one role, or grant "
                        "the standbys' role pg_read_all_stats and pg_signal_backend (a superuser's session only a "
                        "superuser can end)", why, extra={"holder": name, "pid": pid})
        self._cannot_end = why

    def _try_file(self) -> bool:
        path = self.url.database
        if not path or path == ":memory:":
            return True
        fd = os.open(f"{path}.leader", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._file = fd
        return True

    def _file_still_ours(self) -> bool:
        """Whether `<database>.leader` still names the file this replica locked. One deleted or replaced (a cleanup
        of what looks like an empty stray file, `rm llm-monitor.db*`) kept no other daemon from creating and locking a
        new one there, and both then led: both probed, spent and paged. The path is locked again; if another process
        got there first, the lock is lost (the daemon stops, exit 1), as it is when the path cannot be looked at. An
        error of the check's own (NFS's ESTALE) ended the leader's watch of its lock, which then led on unchecked."""
        if self._file is None:  # in-memory SQLite: nothing can share it
            return True
        path = f"{self.url.database}.leader"
        try:
            now: tuple[int, int] | None = _identity(os.stat(path))
        except FileNotFoundError:
            now = None
        except OSError as e:  # its folder made unreadable, a stale NFS folder: unconfirmed, as a lock session gone
            self._close()
            self.held = False
            log.error("the leader lock file %s cannot be looked at (%s): this replica no longer leads", path, e)
            return False
        with contextlib.suppress(OSError):  # ESTALE: deleted on the NFS server (by another host) while held open here
            if now == _identity(os.fstat(self._file)):
                return True
        old, self._file = self._file, None
        try:
            taken = self._try_file()
        except OSError:  # the folder itself went, or cannot be written
            taken = False
        with contextlib.suppress(OSError):
            fcntl.flock(old, fcntl.LOCK_UN)
            os.close(old)
        if taken:
            log.warning("the leader lock file %s was deleted or replaced: locked again (it must stay beside the "
                        "store while a daemon runs)", path)
            return True
        self.held = False
        log.error("the leader lock file %s was deleted or replaced, and another process locked the new one: this "
                  "replica no longer leads", path)
        return False

    def _close(self) -> None:
        self._old_key = False  # session locks go with their session
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
        if self._file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file, fcntl.LOCK_UN)
                os.close(self._file)
            self._file = None


def _sessions_shared(engine: Engine) -> str | None:
    """How the server sessions of two connections of `engine` were seen shared, or None if they were not. Over a
    direct connection or a pool in session mode, a connected client keeps its server session: another connection
    never runs on it, and its own statements always do. A pooler in transaction mode lends a session per transaction:
    the next one to ask gets the session just released (PgBouncer's default is last in, first out), and a client
    whose session another holds runs its next statement on another."""
    backend = text("SELECT pg_backend_pid()")
    with engine.connect() as first, engine.connect() as second:
        first = first.execution_options(isolation_level="AUTOCOMMIT")
        pid = first.execute(backend).scalar_one()
        with second.begin():  # held open: a pooler cannot lend its session to `first` meanwhile
            other = second.execute(backend).scalar_one()
            if other == pid:
                return f"database session {pid} answered two connections of this replica's at once"
            again = first.execute(backend).scalar_one()
        if again != pid:
            return f"one connection was answered by database session {pid}, then by session {again}"
    return None


def _identity(st: os.stat_result) -> tuple[int, int]:
    """Which file a stat result is of."""
    return st.st_dev, st.st_ino

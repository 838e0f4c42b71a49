"""The store: every completion and run, kept durably in SQLite or PostgreSQL.

All methods are synchronous and short; the daemon calls them from worker threads so the event loop (and so
the probes' latency measurements) never waits on the database.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    Engine,
    and_,
    delete,
    func,
    insert,
    or_,
    text,
    update,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from monitor.domain import Observation
from monitor.errors import NoSchema, StoreError
from monitor.store.convert import aware, from_row, storable, to_values, upsert, where_equal
from monitor.store.engine import DEFAULT_TIMEOUTS, Timeouts, make_engine, retry_disconnect, unbounded
from monitor.store.schema import in_memory, migrate, migrate_in_child, require_head
from monitor.store.search_path import missing_schema
from monitor.store.streaks import FailingStreak, read_last_success, read_streaks
from monitor.store.tables import ObservationRow, RunRow


@dataclass
class Run:
    """A run of one canary against one target (domain-side view of RunRow)."""

    id: str
    canary: str
    target: str
    started_at: datetime
    trigger: str = "schedule"
    replica: str = ""
    finished_at: datetime | None = None
    samples: int = 0
    failures: int = 0
    status: str = "running"  # running | done | cancelled | interrupted (see RunRow)


class ObservationKey(NamedTuple):
    """Where an observation sits in the store's total order of observations: by `started_at` (newest first, or
    oldest first), then, among those started in the same microsecond, by `sample_index` and `id` ascending. The id
    is unique, so no two observations share a key and a page that ends inside a tie loses none of it: paging on
    with `after=` the last row's key reads exactly the rows beyond it."""

    started_at: datetime
    sample_index: int
    id: str

    @classmethod
    def of(cls, obs: Observation) -> ObservationKey:
        return cls(obs.started_at, obs.sample_index, obs.id)


PING_WAIT_S = 10.0  # how long a ping waits for the answer of one already asked


@dataclass
class _Ping:
    done: threading.Event = field(default_factory=threading.Event)
    ok: bool = False


class Store:
    """Repository over one database URL: observations, runs, and (later) drift events and the outbox."""

    def __init__(self, url: str, *, engine: Engine | None = None, timeouts: Timeouts = DEFAULT_TIMEOUTS):
        self.url = url
        self.timeouts = timeouts
        self.engine = engine or make_engine(url, timeouts)
        # Single-statement writes and the ping go without BEGIN and COMMIT on PostgreSQL: one statement is atomic on
        # its own, and each of those is a round trip to the server (3 for an insert in a transaction, 1 without).
        # SQLite's own transaction per statement is the same work either way.
        self._single = self.engine.execution_options(isolation_level="AUTOCOMMIT") \
            if self.engine.dialect.name == "postgresql" else self.engine
        self._ping_lock = threading.Lock()
        self._ping: _Ping | None = None  # the ping waiting for the store's answer

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def migrate(self, *, in_child: bool = False, create: bool = True) -> str:
        """Create or upgrade the schema; return the revision now in force.

        `in_child`: migrate in a child process (a long-running daemon keeps none of Alembic's memory).
        `create=False` (commands on the store a daemon runs): nothing is created or upgraded. A SQLite database
        file that does not exist yet is a StoreError, not a new database (no empty store is left behind a
        mistyped path), and so is a schema other than this build's (see `schema.require_head`).
        """
        path = self.engine.url.database
        if not create and self.dialect == "sqlite" and not in_memory(self.engine) and not os.path.exists(path or ""):
            relative = "" if os.path.isabs(path or "") else \
                f"{path} in storage.url is relative to the working directory; "
            raise StoreError(f"no store at {os.path.abspath(path or '')} ({relative}llm-monitor run or probe creates "
                             "it)")
        try:
            if self.dialect == "postgresql":  # before Alembic, whose first statement fails with a message of its own
                with self.engine.connect() as conn:
                    reason = missing_schema(conn)
                if reason is not None:
                    raise NoSchema(self.shown, reason)
            if not create and not in_memory(self.engine):
                return require_head(self.engine)
            return migrate_in_child(self.engine) if in_child else migrate(self.engine)
        except SQLAlchemyError as e:
            raise StoreError(f"cannot prepare the store at {self.shown}: {driver_message(e)}{self._hint(e)}") from e

    def _hint(self, e: SQLAlchemyError) -> str:
        """What a SQLite file that cannot be opened or written usually means."""
        message = str(getattr(e, "orig", e)).lower()
        if self.dialect != "sqlite" or not ("unable to open" in message or "readonly" in message):
            return ""
        folder = os.path.dirname(os.path.abspath(self.engine.url.database or ".")) or "."
        return (f" (SQLite must create and write the file, and its -wal and -journal files beside it: does {folder} "
                "exist, and can this user write to it?)")

    @property
    def safe_url(self) -> str:
        return self.engine.url.difference_update_query(["password"]).render_as_string(hide_password=True)

    @property
    def shown(self) -> str:
        """The store as an error names it: its URL without a password and, for a relative SQLite path, the file it
        resolves to from the working directory (a command run from another folder reads another file)."""
        path = self.engine.url.database
        if self.dialect != "sqlite" or in_memory(self.engine) or not path or os.path.isabs(path):
            return self.safe_url
        return f"{self.safe_url} ({os.path.abspath(path)}: relative to the working directory)"

    def ping(self, wait_s: float = PING_WAIT_S) -> bool:
        """Whether the store answers a trivial question. One at a time: a ping asked while another waits for its
        answer takes that answer, or False once `wait_s` passes without one. A server that stopped answering on an
        open connection (no timeout of its own ends anything there) held a thread for every readiness check, until
        the event loop's few workers all waited on it."""
        with self._ping_lock:
            flight, mine = (self._ping, False) if self._ping is not None else (_Ping(), True)
            self._ping = flight
        if not mine:
            return flight.done.wait(wait_s) and flight.ok
        try:
            self.reach()
            flight.ok = True
        except SQLAlchemyError:
            flight.ok = False
        finally:
            with self._ping_lock:
                self._ping = None
            flight.done.set()
        return flight.ok

    @retry_disconnect  # a read: asked again on a fresh connection when a pooled one was found dead
    def reach(self) -> None:
        """Ask the store a trivial question; raise its error (SQLAlchemyError) if it does not answer."""
        with self._single.connect() as conn:
            conn.execute(text("SELECT 1"))

    @retry_disconnect
    def clock_offset(self, now: Callable[[], datetime]) -> float | None:
        """How many seconds the clock `now` is ahead of the database server's (behind: negative); None on SQLite,
        which one host's processes share."""
        if self.dialect != "postgresql":
            return None
        with self._single.connect() as conn:
            before = now()
            server = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
            after = now()
        return (before + (after - before) / 2 - server).total_seconds()

    def close(self) -> None:
        self.engine.dispose()

    # runs
    @retry_disconnect
    def save_run(self, run: Run) -> None:
        with self._single.begin() as conn:  # an upsert in Core: the ORM's merge cost a read and a flush per run
            conn.execute(_run_upsert(conn.dialect.name), dict(run.__dict__))

    def runs(self, canary: str | None = None, target: str | None = None, limit: int = 50) -> list[Run]:
        with Session(self.engine) as s:
            q = where_equal(select(RunRow), RunRow, canary=canary, target=target)
            rows = s.exec(q.order_by(col(RunRow.started_at).desc()).limit(limit)).all()
            runs = [Run(**{k: getattr(r, k) for k in Run.__dataclass_fields__}) for r in rows]
            for run in runs:
                run.started_at = aware(run.started_at) or run.started_at
                run.finished_at = aware(run.finished_at)
            return runs

    def close_interrupted(self, before: datetime, replica: str | None = None) -> int:
        """Mark the runs still `running` that started before `before`, or by another replica than `replica`, as
        `interrupted` (their process stopped without finishing them); return how many. Their `finished_at` stays
        empty: when they stopped is not known. Another replica's start time is by its host's clock, which may run
        ahead of this one's: its runs are told by their replica, not by when they say they started."""
        started = col(RunRow.started_at)  # SQLite compares the stored UTC text
        others = started < before.astimezone(UTC)
        if replica is not None:
            others = or_(others, col(RunRow.replica) != replica)
        try:
            with self.engine.begin() as conn:
                n = conn.execute(update(RunRow).where(col(RunRow.status) == "running", others)
                                 .values(status="interrupted")).rowcount
        except SQLAlchemyError as e:
            raise StoreError(f"closing interrupted runs failed: {driver_message(e)}") from e
        return int(n or 0)

    # observations
    @retry_disconnect
    def save_observation(self, obs: Observation) -> None:
        """Store one observation durably (its own transaction: nothing finished is lost on a crash)."""
        with self._single.begin() as conn:  # Core insert: a fraction of the ORM's CPU on the hot path
            conn.execute(insert(ObservationRow.__table__), to_values(obs))  # type: ignore[attr-defined]

    @retry_disconnect
    def save_signals(self, obs_id: str, signals: dict[str, Any]) -> None:
        with self._single.begin() as conn:
            conn.execute(update(ObservationRow).where(col(ObservationRow.id) == obs_id).values(signals=storable(signals)))

    @staticmethod
    def _observations_query(canary: str | None, target: str | None, since: datetime | None,
                            before: datetime | None, ok_only: bool = False) -> Any:
        q = where_equal(select(ObservationRow), ObservationRow, canary=canary, target=target)
        # In UTC: SQLite compares the stored UTC text, so `--since 2026-11-30T09:00+01:00` read as 09:00 UTC
        if since:
            q = q.where(ObservationRow.started_at >= since.astimezone(UTC))
        if before:
            q = q.where(ObservationRow.started_at < before.astimezone(UTC))
        if ok_only:
            q = q.where(col(ObservationRow.error_type).is_(None))
        return q

    def observations(self, *, canary: str | None = None, target: str | None = None, limit: int = 100,
                     since: datetime | None = None, before: datetime | None = None,
                     ok_only: bool = False, oldest_first: bool = False,
                     after: ObservationKey | None = None) -> list[Observation]:
        """Return observations, newest first unless `oldest_first`, in a total order (see ObservationKey); with
        `after`, only those that come after that key in this order (keyset paging: the next page)."""
        with Session(self.engine) as s:
            q = self._observations_query(canary, target, since, before, ok_only)
            if after is not None:
                q = q.where(*_beyond(after, newest_first=not oldest_first))
            t = col(ObservationRow.started_at)
            q = q.order_by(t.asc() if oldest_first else t.desc(), col(ObservationRow.sample_index),
                           col(ObservationRow.id))
            return [from_row(r) for r in s.exec(q.limit(limit)).all()]

    def iter_observations(self, *, canary: str | None = None, target: str | None = None,
                          since: datetime | None = None, before: datetime | None = None,
                          batch: int = 500) -> Iterator[Observation]:
        """Yield observations oldest first, read `batch` rows at a time (an export of any size in bounded memory)."""
        with Session(self.engine) as s:
            q = self._observations_query(canary, target, since, before)
            q = q.order_by(col(ObservationRow.started_at), col(ObservationRow.sample_index), col(ObservationRow.id))
            for row in s.exec(q.execution_options(yield_per=batch)):
                yield from_row(row)

    def started_at(self, obs_ids: Iterable[str]) -> dict[str, datetime]:
        """Return when each of `obs_ids` still stored (not pruned) started."""
        wanted = list(dict.fromkeys(obs_ids))
        if not wanted:
            return {}
        with Session(self.engine) as s:
            q = select(ObservationRow.id, ObservationRow.started_at).where(col(ObservationRow.id).in_(wanted))
            return {i: aware(at) or at for i, at in s.exec(q).all()}

    def count_observations(self, canary: str | None = None, target: str | None = None,
                           since: datetime | None = None, before: datetime | None = None,
                           failed_only: bool = False) -> int:
        """Return how many observations `observations` would read without a limit (only failed calls', with
        `failed_only`)."""
        with Session(self.engine) as s:
            q = self._observations_query(canary, target, since, before)
            if failed_only:
                q = q.where(col(ObservationRow.error_type).is_not(None))
            return int(s.exec(select(func.count()).select_from(q.subquery())).one())

    def spend_since(self, target: str, since: datetime) -> float:
        """Return the USD spent on a target since `since` (known costs only)."""
        with Session(self.engine) as s:
            q = select(func.coalesce(func.sum(ObservationRow.cost_usd), 0.0)).where(
                ObservationRow.target == target, ObservationRow.started_at >= since)
            return float(s.exec(q).one() or 0.0)

    def last_scheduled_runs(self, since: datetime) -> dict[tuple[str, str], datetime]:
        """Return, per canary x target with one started at or after `since`, when its newest scheduled run started
        (any replica's: a standby taking over keeps the schedule the old leader had)."""
        with Session(self.engine) as s:
            q = (select(RunRow.canary, RunRow.target, func.max(RunRow.started_at))
                 .where(RunRow.trigger == "schedule", col(RunRow.started_at) >= since)
                 .group_by(RunRow.canary, RunRow.target))
            return {(c, t): aware(m) or m for c, t, m in s.exec(q) if m is not None}

    def last_success(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], datetime]:
        """Return, for each of `pairs` with one, when its newest successful call of the daemon's runs started.

        The calls of `llm-monitor probe` (a manual run: an operator's key, not the daemon's schedule) are left out,
        as the running daemon, which never sees them, leaves them out of `llm_monitor_last_success_timestamp_seconds`:
        read back at a start, an operator's probe would hold off LLMMonitorCanaryStale. One statement for all pairs,
        reading each pair's calls back from its newest only to its newest such success (monitor/store/streaks.py)."""
        wanted = list(dict.fromkeys(pairs))
        if not wanted:
            return {}
        with self.engine.connect() as conn:
            return read_last_success(conn, wanted)

    @retry_disconnect  # a read: a reload's, right after `reach`, may take a pooled connection the server ended
    def failing_streaks(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], FailingStreak]:
        """Return, for each of `pairs` whose latest runs all failed, that streak: when its first call started, how
        many failed runs it has and how many failed calls of each type.

        A failed run is one none of whose calls succeeded, as `Metrics.run_summary` counts it; a call without a run
        (a judge's, an embeddings call) is a run of its own. So the streak is the failed calls after the pair's
        last success, leaving out the calls of that success's own run; cancelled calls (cut by a shutdown) say
        nothing about the upstream and are left out too, and so are the calls of `llm-monitor probe` (a manual run:
        an operator's key, not the daemon's schedule). One statement for all pairs, and one for the failure types of
        those with a streak (see monitor/store/streaks.py).
        """
        wanted = list(dict.fromkeys(pairs))
        if not wanted:
            return {}
        with self.engine.connect() as conn:
            return read_streaks(conn, wanted)

    def prune(self, before: datetime) -> int:
        """Delete observations and runs older than `before`; return how many observations went."""
        try:
            with Session(self.engine) as s:
                unbounded(s.connection())  # a first prune, or one after an outage, may delete much
                n = s.exec(delete(ObservationRow).where(col(ObservationRow.started_at) < before)).rowcount  # type: ignore[call-overload]
                s.exec(delete(RunRow).where(col(RunRow.started_at) < before))  # type: ignore[call-overload]
                s.commit()
                return int(n or 0)
        except SQLAlchemyError as e:
            raise StoreError(f"pruning failed: {driver_message(e)}") from e


def _beyond(key: ObservationKey, *, newest_first: bool) -> tuple[Any, ...]:
    """The conditions for the rows after `key` in the order `observations` reads.

    Spelt out rather than as a row-value comparison: the order mixes directions (time descending, the tie-breakers
    ascending), and the plain bound on `started_at` alone lets both planners walk a time index (ix_obs_time or a
    pair's) from the key on instead of filtering every row."""
    t, n, i = col(ObservationRow.started_at), col(ObservationRow.sample_index), col(ObservationRow.id)
    started = key.started_at.astimezone(UTC)  # SQLite compares the stored UTC text
    tie = and_(t == started, or_(n > key.sample_index, and_(n == key.sample_index, i > key.id)))
    if newest_first:
        return t <= started, or_(t < started, tie)
    return t >= started, or_(t > started, tie)


@functools.cache
def _run_upsert(dialect: str) -> Any:
    """INSERT ... ON CONFLICT (id) DO UPDATE for runs: built once per dialect, so SQLAlchemy compiles it once."""
    table = RunRow.__table__  # type: ignore[attr-defined]
    stmt = upsert(dialect, table)
    return stmt.on_conflict_do_update(index_elements=[table.c.id],
                                      set_={c.name: stmt.excluded[c.name] for c in table.c if c.name != "id"})


def driver_message(e: SQLAlchemyError) -> str:
    """The database driver's own error on one line, without SQLAlchemy's statement dump and help link."""
    orig = getattr(e, "orig", None) or e
    text = " ".join(line.strip() for line in str(orig).splitlines() if line.strip() and "sqlalche.me" not in line)
    return f"{type(orig).__name__}: {text}"

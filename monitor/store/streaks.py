"""Failing streaks read back from the observations: for each pair whose latest runs all failed, when the first call
of that streak started, how many failed runs it has and how many failed calls of each type (see
`Store.failing_streaks`); and each pair's newest success (see `Store.last_success`).

A replica reads them for every pair when it takes the lead, and the streaks for the pairs a reload adds. One
statement for all pairs each (and one more for the failure types of the pairs with a streak): per pair, one index
range scan on ix_obs_pair_time back from the newest row to the last success, and for a streak one forward from
there over its calls, so the cost is the pairs' streaks, not their history.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    DateTime,
    String,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal,
    or_,
    text,
    true,
    tuple_,
)
from sqlmodel import col, select

from monitor.domain import ErrorType
from monitor.store.convert import aware
from monitor.store.tables import ObservationRow, RunRow

_NEVER = datetime(1970, 1, 1, tzinfo=UTC)  # no success stored: the streak runs from the first call


class FailingStreak(NamedTuple):
    """A pair's current streak of failed runs: when its first call started, how many failed runs it has, and how
    many of its failed calls had each failure type (by type, sorted)."""

    since: datetime
    runs: int
    errors: Mapping[str, int] = MappingProxyType({})


def read_streaks(conn: Connection, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], FailingStreak]:
    """Return the failing streaks of `pairs` (distinct) that have one, with their failure types: a second
    statement, asking only about the pairs with a streak, on the first one's snapshot of the store (`conn`: one
    not yet used)."""
    dialect = conn.dialect.name
    _one_snapshot(conn)
    found = {(canary, target): (aware(since) or since, int(runs))
             for canary, target, since, runs in conn.execute(_statement(dialect, False), _bound(conn, pairs))}
    errors: dict[tuple[str, str], dict[str, int]] = {}
    if found:
        for canary, target, error, calls in conn.execute(_statement(dialect, True), _values(dialect, list(found))):
            errors.setdefault((canary, target), {})[error] = int(calls)
    return {pair: FailingStreak(since, runs, dict(sorted(errors.get(pair, {}).items())))
            for pair, (since, runs) in found.items()}


def read_last_success(conn: Connection, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], datetime]:
    """Return the start of the newest successful call of the daemon's runs (not `llm-monitor probe`'s) of each of
    `pairs` (distinct) that has one."""
    return {(canary, target): aware(at) or at
            for canary, target, at in conn.execute(_last_success(conn.dialect.name), _bound(conn, pairs))
            if at is not None}


def _one_snapshot(conn: Connection) -> None:
    """Make the statements `conn` runs next read one snapshot of the store. Each read its own (PostgreSQL's READ
    COMMITTED; SQLite's driver opens no transaction for a SELECT), so a run stored between the streaks and their
    failure types (the daemon's own at a reload, an old leader's finishing as a new one takes over) was counted in
    the types and not in the runs, and an answer stored between them left a streak of failed runs without a type."""
    # Statements of their transaction, not the connection's settings (`execution_options`): a connection the server
    # ended fails here as a statement does (a disconnect `retry_disconnect` takes again), and nothing is left to reset
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    else:
        conn.exec_driver_sql("BEGIN")  # deferred: its first SELECT takes the snapshot; ended by the close's rollback


def _bound(conn: Connection, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """The pairs as the statements bind them, for the first statement of a transaction."""
    if conn.dialect.name == "postgresql" and (conn.dialect.server_version_info or (0,)) >= (11,):
        # Its cost estimate of the row comparisons below is high enough for PostgreSQL to compile the statement
        # to machine code first: 1.15 s of JIT for 33 ms of work (1,000 pairs of 18,000 rows)
        conn.execute(text("SET LOCAL jit = off"))
    return _values(conn.dialect.name, pairs)


def _values(dialect: str, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """The pairs as the statements bind them (PostgreSQL: two arrays; SQLite: a JSON list)."""
    if dialect != "postgresql":
        return {"pairs": json.dumps(pairs)}
    return {"canaries": [c for c, _ in pairs], "targets": [t for _, t in pairs]}


@functools.cache
def _statement(dialect: str, mix: bool) -> Any:
    """The statement, built once per dialect: of each pair's streak, its start and failed runs; or (`mix`) of
    each pair's streak and failure type, its failed calls. The pairs are bound as one value whatever their number
    (PostgreSQL: two arrays; SQLite: a JSON list), so the statement is the same at every start and SQLAlchemy
    compiles it once (a VALUES list of 1,000 pairs took 120 ms to compile, at every call: SQLAlchemy does not cache
    those).

    PostgreSQL gets each pair's two scans as LATERAL subqueries, which it runs once a pair: as joins, its planner
    chose to scan and hash the whole table, and as a folded subquery it looked the last success up again for every
    failed call (43,000 times for 1,000 pairs in benchmarks/store_streak.py: 2.3 s). SQLite has no LATERAL; its
    planner runs the joins below as those scans."""
    o = ObservationRow.__table__.alias("f")  # type: ignore[attr-defined]
    if mix:
        measures, by = [o.c.error_type, func.count().label("calls")], [o.c.error_type]
    else:
        runs = func.count(func.nullif(o.c.run_id, "").distinct()) + func.sum(case((o.c.run_id == "", 1), else_=0))
        measures, by = [func.min(o.c.started_at).label("since"), runs.label("runs")], []
    pairs = _pairs(dialect)
    return _lateral(pairs, o, measures, by) if dialect == "postgresql" else _joined(pairs, o, measures, by)


@functools.cache
def _last_success(dialect: str) -> Any:
    """Each pair's newest success, built once per dialect: the same scan back from the newest row as the streak's
    (PostgreSQL: a LATERAL subquery; SQLite: a correlated one), so it reads the calls since that success, not every
    success the pair ever had (the GROUP BY it replaced did, at every start)."""
    pairs = _pairs(dialect)
    if dialect == "postgresql":
        ok = _newest_ok(pairs)
        return select(pairs.c.canary, pairs.c.target, ok.c.started_at).select_from(pairs.join(ok, true()))
    n = ObservationRow.__table__.alias("newest")  # type: ignore[attr-defined]
    return select(pairs.c.canary, pairs.c.target, _last_ok(pairs, n, n.c.started_at).scalar_subquery())


def _pairs(dialect: str) -> Any:
    """The bound pairs as a CTE of (canary, target)."""
    if dialect == "postgresql":
        # loaded only for a PostgreSQL store: the default daemon does not import the dialect (memory, start time)
        from sqlalchemy.dialects.postgresql import ARRAY

        listed = func.unnest(bindparam("canaries", type_=ARRAY(String)), bindparam("targets", type_=ARRAY(String))) \
            .table_valued("canary", "target").render_derived(name="listed")
        return select(listed.c.canary, listed.c.target).cte("pairs")
    listed = func.json_each(bindparam("pairs", type_=String)).table_valued("value").alias("listed")
    return select(func.json_extract(listed.c.value, "$[0]").label("canary"),
                  func.json_extract(listed.c.value, "$[1]").label("target")).cte("pairs")


def _daemons(o: Any) -> Any:
    """Not a call of `llm-monitor probe` (a manual run: an operator's key, not the daemon's schedule), which neither
    adds to the daemon's streak nor ends it, as in the daemon's own gauges, which never see those calls."""
    return ~exists().where(col(RunRow.id) == o.c.run_id, col(RunRow.trigger) == "manual")


def _failed_calls(o: Any, ok_run: Any) -> tuple[Any, ...]:
    """The calls of a streak among those after the last success: failed, not in the success's run (`ok_run`), not
    cancelled (cut by a shutdown: says nothing of the upstream), not `llm-monitor probe`'s (a manual run: an
    operator's key)."""
    return (o.c.error_type.is_not(None), o.c.error_type != ErrorType.CANCELLED.value,
            or_(o.c.run_id == "", o.c.run_id != ok_run), _daemons(o))


def _lateral(pairs: Any, o: Any, measures: list[Any], by: list[Any]) -> Any:
    # The pair and the time written as row comparisons on (canary, target, started_at), which only ix_obs_pair_time
    # serves: with plain equalities, on a table without statistics yet (a store just filled), PostgreSQL took
    # ix_obs_target_time and read the target's whole history for every pair (5.2 s for 1,000 pairs of 18,000 rows)
    pair = tuple_(pairs.c.canary, pairs.c.target)
    ok = _newest_ok(pairs)
    after = func.coalesce(ok.c.started_at, literal(_NEVER, DateTime(timezone=True)))
    streak = select(*measures) \
        .where(tuple_(o.c.canary, o.c.target, o.c.started_at) > tuple_(pairs.c.canary, pairs.c.target, after),
               tuple_(o.c.canary, o.c.target) <= pair, *_failed_calls(o, func.coalesce(ok.c.run_id, ""))) \
        .group_by(*by).lateral("streak")
    first, *rest = streak.c  # without a streak: no row by failure type, one of NULLs as a whole
    return select(pairs.c.canary, pairs.c.target, first, *rest) \
        .select_from(pairs.outerjoin(ok, true()).join(streak, true())).where(first.is_not(None))


def _newest_ok(pairs: Any) -> Any:
    """PostgreSQL: each pair's newest success of the daemon's runs (its start and run), as a LATERAL subquery."""
    n = ObservationRow.__table__.alias("newest")  # type: ignore[attr-defined]
    pair, newest_pair = tuple_(pairs.c.canary, pairs.c.target), tuple_(n.c.canary, n.c.target)
    return select(n.c.started_at, n.c.run_id) \
        .where(newest_pair >= pair, newest_pair <= pair, n.c.error_type.is_(None), _daemons(n)) \
        .order_by(n.c.canary.desc(), n.c.target.desc(), n.c.started_at.desc()).limit(1).lateral("ok")


def _last_ok(pairs: Any, n: Any, column: Any) -> Any:
    """SQLite: `column` of each pair's newest success of the daemon's runs, as a correlated subquery."""
    return select(column).where(n.c.canary == pairs.c.canary, n.c.target == pairs.c.target, n.c.error_type.is_(None),
                                _daemons(n)).order_by(n.c.started_at.desc()).limit(1)


def _joined(pairs: Any, o: Any, measures: list[Any], by: list[Any]) -> Any:
    never = literal(_NEVER, DateTime(timezone=True))
    ok = ObservationRow.__table__.alias("ok")  # type: ignore[attr-defined]
    n = ObservationRow.__table__.alias("newest")  # type: ignore[attr-defined]
    ok_ids = select(pairs.c.canary, pairs.c.target, _last_ok(pairs, n, n.c.id).scalar_subquery().label("ok_id")) \
        .subquery("ok_ids")
    latest = select(ok_ids.c.canary, ok_ids.c.target, func.coalesce(ok.c.started_at, never).label("ok_at"),
                    func.coalesce(ok.c.run_id, "").label("ok_run")) \
        .select_from(ok_ids.outerjoin(ok, ok.c.id == ok_ids.c.ok_id)).cte("latest")
    return select(latest.c.canary, latest.c.target, *measures) \
        .select_from(latest.join(o, and_(o.c.canary == latest.c.canary, o.c.target == latest.c.target,
                                         o.c.started_at > latest.c.ok_at))) \
        .where(*_failed_calls(o, latest.c.ok_run)) \
        .group_by(latest.c.canary, latest.c.target, *by)

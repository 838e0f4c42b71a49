"""Store contract, on SQLite and PostgreSQL: the failing streak and last success a restart or take-over reads back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import event

from monitor.domain import ErrorType
from monitor.store import FailingStreak, Store
from monitor.store.repository import Run
from tests.test_store_contract import T0, obs


@contextmanager
def executed(store: Store) -> Iterator[list[tuple[str, Any]]]:
    """The (statement, parameters) the store sends while the block runs."""
    statements: list[tuple[str, Any]] = []
    listen = lambda *args: statements.append(args[2:4])  # noqa: E731  (conn, cursor, statement, parameters, ...)
    event.listen(store.engine, "before_cursor_execute", listen)
    try:
        yield statements
    finally:
        event.remove(store.engine, "before_cursor_execute", listen)


def save(store: Store, i: int, canary: str, run: str, error: ErrorType | None = ErrorType.TIMEOUT,
         target: str = "t") -> None:
    o = obs(i, canary=canary, target=target, error=error)
    o.run_id = run
    store.save_observation(o)


def test_a_streak_starts_at_the_first_call_of_the_failed_runs_since_the_last_success_and_counts_them(
        store: Store) -> None:
    def call(i: int, canary: str, run: str, error: ErrorType | None = ErrorType.TIMEOUT) -> None:
        save(store, i, canary, run, error)

    call(0, "c", "r0")  # an earlier streak, ended by the success in r1
    call(1, "c", "r1", None)
    call(2, "c", "r1")  # a run with a success is not a failed run, whatever came after it in that run
    call(4, "c", "r2", ErrorType.CANCELLED)  # cut by a shutdown: says nothing of the upstream
    call(5, "c", "r2")
    call(6, "c", "r3")
    call(7, "c", "r3")  # one run, two failed samples: one failed run
    call(0, "never", "n0")  # no success stored: from the first failed call
    call(1, "never", "n1", ErrorType.SERVER_ERROR)
    call(0, "ok", "k0")
    call(1, "ok", "k1", None)
    call(2, "ok", "k1")  # its last run had a success
    call(3, "cut", "x1", None)
    call(4, "cut", "x2", ErrorType.CANCELLED)  # only a cancelled call since the success: no streak
    for i, error in enumerate([ErrorType.TIMEOUT, None, ErrorType.AUTH, ErrorType.AUTH]):
        call(i, "_judge", "", error)  # a judge's call, each a run of its own
    call(9, "other", "o1")  # failing, but not asked about
    store.save_run(Run(id="m1", canary="probed", target="t", started_at=T0, trigger="manual"))
    call(0, "probed", "d0", None)
    call(1, "probed", "m1")  # `llm-monitor probe` with an operator's bad key: not the daemon's streak (review2)
    call(2, "probed", "d1", None)
    call(3, "probed", "m1")
    store.save_run(Run(id="m2", canary="operator", target="t", started_at=T0, trigger="manual"))
    call(0, "operator", "e0")
    call(1, "operator", "e1")
    call(2, "operator", "m2", None)  # `llm-monitor probe` with an operator's good key: the daemon's streak goes on
    call(3, "operator", "e2")
    pairs = [(c, "t") for c in ("c", "never", "ok", "cut", "_judge", "unknown", "probed", "operator")]
    assert store.failing_streaks(pairs) == {
        ("c", "t"): FailingStreak(T0 + timedelta(minutes=5), 2, {"timeout": 3}),
        ("never", "t"): FailingStreak(T0, 2, {"server_error": 1, "timeout": 1}),
        ("_judge", "t"): FailingStreak(T0 + timedelta(minutes=2), 2, {"auth": 2}),
        ("operator", "t"): FailingStreak(T0, 3, {"timeout": 3})}
    assert store.failing_streaks([]) == {}


def test_the_streaks_of_many_pairs_are_one_statement(store: Store) -> None:
    """At a start or take-over every pair is asked about: one statement a pair cost 28 ms on SQLite and 197 ms on
    PostgreSQL for 1,000 pairs; now one statement for all of them (benchmarks/store_streak.py), and one more for the
    failure types of those with a streak."""
    for p in range(40):
        for r in range(p % 4):  # 0 to 3 failed runs of 2 samples after a success
            save(store, 10 * r, f"c{p}", f"r{p}-{r}", target=f"t{p % 2}")
            save(store, 10 * r + 1, f"c{p}", f"r{p}-{r}", target=f"t{p % 2}")
        save(store, -1, f"c{p}", f"ok{p}", None, target=f"t{p % 2}")
    pairs = [(f"c{p}", f"t{p % 2}") for p in range(40)] + [("unknown", "t0")]
    with executed(store) as statements:
        found = store.failing_streaks(pairs)
    # the streaks and their failure types, on one snapshot (a BEGIN; PostgreSQL: SET TRANSACTION, and a SET LOCAL)
    assert len(statements) <= 4
    assert found == {(f"c{p}", f"t{p % 2}"): FailingStreak(T0, p % 4, {"timeout": 2 * (p % 4)})
                     for p in range(40) if p % 4}



def test_the_last_success_is_the_newest_of_the_daemons_runs_not_an_operators_probe(store: Store) -> None:
    """Read back at a start, a success of `llm-monitor probe` (a manual run) held off LLMMonitorCanaryStale: the
    running daemon never sees those calls, so its gauge leaves them out, and so does the read at its next start."""
    store.save_run(Run(id="m1", canary="probed", target="t", started_at=T0, trigger="manual"))
    save(store, 0, "probed", "d0", None)
    save(store, 1, "probed", "d1", None)  # the daemon's newest success
    save(store, 2, "probed", "d2")
    save(store, 3, "probed", "m1", None)  # an operator's probe, after the daemon's runs stopped answering
    store.save_run(Run(id="m2", canary="only-probed", target="t", started_at=T0, trigger="manual"))
    save(store, 0, "only-probed", "m2", None)
    save(store, 0, "ok", "k0")
    save(store, 1, "ok", "k1", None)
    save(store, 2, "ok", "k2", None, target="u")  # another pair of the canary: not this one's
    save(store, 5, "ok", "k3", None, target="u")
    for i, error in enumerate([None, ErrorType.TIMEOUT]):
        save(store, i, "_judge", "", error)  # a judge's call: no run
    save(store, 0, "failing", "f0")
    save(store, 9, "other", "o1", None)  # answering, but not asked about
    pairs = [(c, "t") for c in ("probed", "only-probed", "ok", "_judge", "failing", "unknown")]
    assert store.last_success(pairs) == {("probed", "t"): T0 + timedelta(minutes=1),
                                         ("ok", "t"): T0 + timedelta(minutes=1), ("_judge", "t"): T0}
    assert store.last_success([("ok", "u"), ("ok", "u")]) == {("ok", "u"): T0 + timedelta(minutes=5)}
    assert store.last_success([]) == {}


def test_the_last_success_of_many_pairs_is_one_statement_reading_back_from_the_newest(store: Store) -> None:
    """At a start every pair's newest success was found by a GROUP BY over every success the store holds (a scan
    of the whole table, growing with retention); now one statement reads each pair back from its newest call."""
    for p in range(40):
        for i in range(p % 4):  # failed calls after the success
            save(store, 10 + i, f"c{p}", f"f{p}-{i}", target=f"t{p % 2}")
        save(store, p % 7, f"c{p}", f"ok{p}", None, target=f"t{p % 2}")
    pairs = [(f"c{p}", f"t{p % 2}") for p in range(40)] + [("unknown", "t0")]
    with executed(store) as statements:
        found = store.last_success(pairs)
    assert len(statements) <= 2  # the statement, and on PostgreSQL a SET LOCAL before it
    assert found == {(f"c{p}", f"t{p % 2}"): T0 + timedelta(minutes=p % 7) for p in range(40)}
    if store.dialect == "sqlite":  # (PostgreSQL's plan depends on its statistics: benchmarks/store_streak.py)
        statement, parameters = statements[-1]
        with store.engine.connect() as conn:
            plan = [row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)]
        reads = [step for step in plan if " observations" in step or " newest" in step]
        # a search of the pair's rows newest first that stops at the first success: no scan, no sort
        assert reads == ["SEARCH newest USING INDEX ix_obs_pair_time (canary=? AND target=?)"], plan
        assert not [step for step in plan if "TEMP B-TREE" in step], plan


def test_a_streaks_failure_types_are_those_of_its_runs_whatever_is_written_meanwhile(store: Store) -> None:
    """The failure types are a second statement: a run the daemon (or an old leader finishing its runs as a new one
    takes over) stored between the two was counted in the types and not in the runs, and an answer stored between
    them left a streak of failed runs with no failure type at all. Both statements read one snapshot of the store."""
    save(store, 0, "c", "r0", None)
    save(store, 1, "c", "r1")
    save(store, 2, "c", "r2", ErrorType.SERVER_ERROR)
    save(store, 1, "d", "d1")
    written: list[str] = []

    def meanwhile(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")) and not written:
            written.append(statement)  # the first read: the next one is the failure types'
        elif len(written) == 1 and "error_type" in statement and not statement.lstrip().upper().startswith("INSERT"):
            written.append(statement)
            save(store, 3, "c", "r3", ErrorType.TIMEOUT)  # one more failed run of c
            save(store, 3, "d", "d2", None)  # d answers again

    event.listen(store.engine, "before_cursor_execute", meanwhile)
    try:
        found = store.failing_streaks([("c", "t"), ("d", "t")])
    finally:
        event.remove(store.engine, "before_cursor_execute", meanwhile)
    assert len(written) == 2, written
    assert found == {("c", "t"): FailingStreak(T0 + timedelta(minutes=1), 2, {"server_error": 1, "timeout": 1}),
                     ("d", "t"): FailingStreak(T0 + timedelta(minutes=1), 1, {"timeout": 1})}

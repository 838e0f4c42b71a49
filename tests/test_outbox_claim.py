"""The sender's claim reads the waiting rows, not the outbox's history (0009), and hands out the rows it handed out
before, in the same order, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import re
import sqlite3
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import and_, event, func, inspect, or_, text
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from monitor.alerts.events import DEAD, DELIVERED, FAILED, HELD, PENDING, WAITING, Notification
from monitor.alerts.outbox import Outbox
from monitor.store import Store
from monitor.store.outbox_table import WAITING_WHERE, NotificationRow
from monitor.store.schema import HEAD
from tests.support.schema import add_notifications, upgrade_to
from tests.support.vmsteps import vm_steps

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
SINKS = ("am", "hook", "slack")


def _has_older(row: Any) -> Any:
    """The clause claim used before 0009: a waiting row of `row`'s alert older than it exists."""
    older = aliased(NotificationRow)
    return (sa_select(col(older.id))
            .where(col(older.status).in_(WAITING), col(older.sink) == col(row.sink),
                   col(older.group_key) == col(row.group_key), col(older.signal) == col(row.signal),
                   or_(col(older.created_at) < col(row.created_at),
                       and_(col(older.created_at) == col(row.created_at), col(older.id) < col(row.id))))
            .exists())


def claimed_before(store: Store, now: datetime, limit: int, sink: str | None) -> tuple[list[str], datetime | None]:
    """What claim read before 0009 (its queries copied; no lease taken): the due rows' ids, else the next due time."""
    with Session(store.engine) as s:
        q = (select(NotificationRow)
             .where(col(NotificationRow.status).in_(WAITING), col(NotificationRow.next_attempt_at) <= now,
                    ~_has_older(NotificationRow)))
        if sink is not None:
            q = q.where(NotificationRow.sink == sink)
        q = q.order_by(col(NotificationRow.next_attempt_at), col(NotificationRow.created_at)).limit(limit)
        ids = [r.id for r in s.exec(q).all()]
        if ids:
            return ids, None
        nxt = select(func.min(NotificationRow.next_attempt_at)).where(
            col(NotificationRow.status).in_(WAITING), ~_has_older(NotificationRow))
        if sink is not None:
            nxt = nxt.where(NotificationRow.sink == sink)
        at = s.exec(nxt).one()
        return ids, None if at is None else at.replace(tzinfo=UTC) if at.tzinfo is None else at


def fill(store: Store, rng: random.Random, rows: int, moments: list[int]) -> None:
    """Rows of a few alerts in every status, many of an alert written in the same instant (ties broken by id); each
    falls due at a moment of its own (`moments`: microseconds), so that the order claim hands rows out in is the
    order of the query, not of a plan."""
    out = []
    for _ in range(rows):
        at = T0 + timedelta(minutes=rng.randrange(8))
        out.append(Notification(
            id=uuid.UUID(int=rng.getrandbits(128)).hex, message_id=f"msg_{rng.getrandbits(64)}",
            sink=rng.choice(SINKS), kind=rng.choice(["drift.opened", "drift.resolved", "model.changed"]),
            group_key=f"c{rng.randrange(3)}/t", signal=rng.choice(["refusal", "length"]), payload={}, created_at=at,
            next_attempt_at=T0 + timedelta(microseconds=moments.pop()),
            status=rng.choice([PENDING, PENDING, FAILED, DELIVERED, DEAD, HELD])))
    Outbox(store.engine).add(out)


@pytest.mark.parametrize("seed", range(3))
def test_claim_hands_out_the_rows_it_did_before_in_the_same_order(store: Store, seed: int) -> None:
    rng, ob = random.Random(seed), Outbox(store.engine)
    moments = rng.sample(range(10 * 60 * 1_000_000), 2000)  # distinct due times within 10 minutes of T0
    fill(store, rng, 300, moments)
    now, handed = T0, 0
    for _ in range(60):
        now += timedelta(seconds=rng.randrange(20))
        limit, sink = rng.randrange(1, 12), rng.choice([None, *SINKS])
        expected = claimed_before(store, now, limit, sink)
        got, nxt = ob.claim(now, limit, lease=30, sink=sink)
        assert ([n.id for n in got], nxt) == expected
        handed += len(got)
        for n in got:  # every claimed row changes (no two rows share a due time), as a sender's attempt does
            fate = rng.randrange(3)
            if fate == 0:
                ob.mark_delivered(n.id, now)
            elif fate == 1:
                ob.mark_retry(n.id, T0 + timedelta(microseconds=moments.pop()), "503")
            else:
                ob.mark_dead(n.id, "gone")
        if rng.randrange(4) == 0:
            fill(store, rng, 5, moments)
    assert handed > 50


def test_rows_due_at_the_same_instant_are_claimed_in_id_order(store: Store) -> None:
    """Rows due together and written together: the order is the ids', on either store, whatever the plan."""
    ob = Outbox(store.engine)
    rows = [Notification(id=uuid.uuid4().hex, message_id=uuid.uuid4().hex, sink="am", kind="drift.opened",
                         group_key=f"c{i}/t", signal="refusal", payload={}, created_at=T0, next_attempt_at=T0)
            for i in range(12)]
    ob.add(rows)
    first, _ = ob.claim(T0, 5, lease=30)
    rest, _ = ob.claim(T0, 50, lease=30)
    assert [n.id for n in first + rest] == sorted(r.id for r in rows)


def history(alerts: int, rows: int, start: datetime) -> list[Notification]:
    """`rows` delivered rows of each of `alerts` alerts, opened and resolved in turn from `start`."""
    return [Notification(id=uuid.uuid4().hex, message_id=uuid.uuid4().hex, sink="am", kind=kind, group_key=f"c{a}/t",
                         signal="refusal", payload={"summary": "s"}, created_at=at, next_attempt_at=at,
                         status=DELIVERED, delivered_at=at)
            for i in range(rows) for a in range(alerts)
            for kind, at in [(("drift.opened", "drift.resolved")[i % 2], start + timedelta(minutes=i))]]


def waiting(alerts: int, rows: int, start: datetime) -> list[Notification]:
    """`rows` waiting rows of each of `alerts` alerts, due an hour after `start`."""
    return [Notification(id=uuid.uuid4().hex, message_id=uuid.uuid4().hex, sink="am", kind="drift.opened",
                         group_key=f"c{a}/t", signal="refusal", payload={}, created_at=start + timedelta(seconds=i),
                         next_attempt_at=start + timedelta(hours=1, seconds=i))
            for i in range(rows) for a in range(alerts)]


def test_claiming_costs_the_waiting_rows_not_the_outboxs_history(sqlite_store: Store) -> None:
    """Each waiting row is checked for being its alert's oldest waiting one; that probe used to walk the alert's
    delivered history. Counted in SQLite VM steps, with 30 times the history: flat."""
    steps = vm_steps(sqlite_store.engine)
    ob = Outbox(sqlite_store.engine)
    ob.add(history(10, 10, T0))
    ob.add(waiting(10, 5, T0 + timedelta(days=1)))

    def claims() -> None:
        for _ in range(3):
            assert ob.claim(T0, lease=0)[1] is not None  # nothing due: when the next is
            assert len(ob.claim(T0 + timedelta(days=2), lease=0)[0]) == 10  # each alert's oldest waiting row

    recent = steps(claims)
    ob.add(history(10, 300, T0 - timedelta(days=60)))  # 30 times as many rows, older: the same waiting rows
    assert steps(claims) < 2 * recent


def test_the_partial_index_names_the_waiting_statuses() -> None:
    assert "status IN ({})".format(", ".join(f"'{s}'" for s in WAITING)) == WAITING_WHERE


def test_postgresql_plans_the_claim_on_the_waiting_index(pg_store: Store) -> None:
    """The statuses are literals in the SQL, so PostgreSQL may use the partial index (a bound parameter's value
    is not known to a generic plan, which psycopg's prepared statements get after a few executions)."""
    ob = Outbox(pg_store.engine)
    ob.add(history(3, 4, T0) + waiting(3, 3, T0))
    seen: list[tuple[str, Any]] = []
    event.listen(pg_store.engine, "before_cursor_execute",
                 lambda conn, cur, stmt, params, ctx, many: seen.append((stmt, params)))
    ob.claim(T0 + timedelta(hours=2), lease=0)
    stmt, params = next((s, p) for s, p in seen if s.lstrip().startswith("SELECT"))
    names: list[str] = []

    def number(m: re.Match[str]) -> str:
        names.append(m.group(1))
        return f"${len(names)}"

    prepared = re.sub(r"%\((\w+)\)s", number, stmt)
    with pg_store.engine.connect() as conn:
        conn.execute(text("SET enable_seqscan = off"))
        conn.execute(text("SET plan_cache_mode = force_generic_plan"))  # as after psycopg's prepare threshold
        conn.exec_driver_sql(f"PREPARE claim_due AS {prepared}")
        values = ", ".join(conn.exec_driver_sql("SELECT quote_literal(%(v)s::text)", {"v": str(params[name])})
                           .scalar_one() for name in names)
        plan = "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN EXECUTE claim_due({values})"))
    assert "ix_notifications_waiting" in plan


def test_the_upgrade_adds_the_waiting_index_and_keeps_the_rows(store_url: str) -> None:
    store = Store(store_url)
    try:
        upgrade_to(store.engine, "0008")
        add_notifications(store.engine, history(3, 4, T0) + waiting(3, 2, T0 + timedelta(days=1)))
        assert store.migrate() == HEAD
        index = {i["name"]: i for i in inspect(store.engine).get_indexes("notifications")}
        assert index["ix_notifications_waiting"]["column_names"] == ["sink", "group_key", "signal", "created_at",
                                                                     "id"]
        got, _ = Outbox(store.engine).claim(T0 + timedelta(days=2))
        assert len(got) == 3 and all(n.created_at == T0 + timedelta(days=1) for n in got)
    finally:
        store.close()


def test_an_upgrade_cut_short_after_it_built_the_waiting_index_is_done_at_the_next_start(store_url: str) -> None:
    """SQLite runs a migration's DDL outside a transaction: a start killed after building the index, before the
    schema was stamped 0009, leaves the index there at 0008, and building it again must not fail."""
    store = Store(store_url)
    try:
        upgrade_to(store.engine, "0008", then="CREATE INDEX ix_notifications_waiting ON notifications "
                                              f"(sink, group_key, signal, created_at, id) WHERE {WAITING_WHERE}")
        add_notifications(store.engine, waiting(2, 2, T0))
        assert store.migrate() == HEAD
        assert "ix_notifications_waiting" in {i["name"] for i in inspect(store.engine).get_indexes("notifications")}
        assert len(Outbox(store.engine).claim(T0 + timedelta(days=1))[0]) == 2
    finally:
        store.close()


def test_a_claims_work_grows_with_its_rows_not_their_square(sqlite_store: Store) -> None:
    """Each row's lease is a statement of its own; run through the session, SQLAlchemy tested every statement's
    criteria on every row the claim had loaded (160 rows: 25,600 evaluations). Counted in Python calls per row."""
    ob = Outbox(sqlite_store.engine)

    def calls_per_row(rows: int) -> float:
        start = T0 + timedelta(days=rows)
        ob.add([Notification(id=uuid.uuid4().hex, message_id=uuid.uuid4().hex, sink="am", kind="drift.opened",
                             group_key=f"c{i}/t{rows}", signal="refusal", payload={}, created_at=start,
                             next_attempt_at=start) for i in range(rows)])
        ob.claim(T0)  # nothing due: a first call's one-off work (statement caches) is not counted
        calls = [0]

        def count(frame: Any, what: str, arg: Any) -> None:
            calls[0] += what == "call"

        sys.setprofile(count)
        try:
            got, _ = ob.claim(start, rows, lease=3600)
        finally:
            sys.setprofile(None)
        assert len(got) == rows
        return calls[0] / rows

    few = calls_per_row(20)
    assert calls_per_row(160) < 1.5 * few


def test_a_claim_leases_its_rows_in_one_statement(store: Store) -> None:
    """Each claimed row's lease was an UPDATE of its own: 50 rows, 50 round trips on PostgreSQL. Now one, whatever
    the rows (that a row another claim leased is left to it: test_concurrent_claims_never_hand_out_a_row_twice)."""
    ob = Outbox(store.engine)
    statements = [0]
    event.listen(store.engine, "before_cursor_execute", lambda *a: statements.__setitem__(0, statements[0] + 1))

    def claim_statements(rows: int) -> int:
        start = T0 + timedelta(days=rows)
        ob.add([replace(n, group_key=f"{n.group_key}{rows}") for n in waiting(rows, 1, start)])
        statements[0] = 0
        got, _ = ob.claim(start + timedelta(hours=2), rows, lease=3600)
        assert len(got) == rows
        return statements[0]

    assert claim_statements(2) == claim_statements(40)


def test_a_sqlite_without_update_returning_still_claims(sqlite_store: Store) -> None:
    """UPDATE ... RETURNING came with SQLite 3.35 (2021); Python 3.11 on RHEL 9 and its rebuilds links SQLite 3.34,
    where SQLAlchemy refuses the statement: every claim raised, and the sender delivered nothing. There the rows are
    leased one statement each, as before, with the same compare-and-set."""
    # What SQLAlchemy's dialect says of a SQLite before 3.35, and what that SQLite answers to a RETURNING (this
    # machine's SQLite is newer: no older one installs here).
    sqlite_store.engine.dialect.update_returning = False

    def refuse(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "RETURNING" in statement.upper():
            raise sqlite3.OperationalError('near "RETURNING": syntax error')

    event.listen(sqlite_store.engine, "before_cursor_execute", refuse)
    ob = Outbox(sqlite_store.engine)
    ob.add(waiting(3, 2, T0))
    got, _ = ob.claim(T0 + timedelta(hours=2), 10, lease=60)
    assert sorted(n.group_key for n in got) == ["c0/t", "c1/t", "c2/t"]
    assert {n.next_attempt_at for n in got} == {T0 + timedelta(hours=2, seconds=60)}
    assert ob.claim(T0 + timedelta(hours=2), 10, lease=60)[0] == []  # leased


def test_waits_behind_answers_for_a_long_listing_on_postgresql(pg_store: Store) -> None:
    """`alerts pending --limit 20000`: the alerts of the rows listed were one (sink, group, signal) IN list of 20,000
    tuples, which PostgreSQL refused (stack depth limit exceeded) and planned in seconds at 5,000."""
    ob = Outbox(pg_store.engine)
    rows = waiting(20_000, 1, T0) + waiting(1, 2, T0 + timedelta(days=1))  # c0: an older row and two behind it
    ob.add(rows)
    listed = ob.query(statuses=WAITING, limit=len(rows))
    oldest = rows[0].message_id
    assert ob.waits_behind(listed) == {r.id: oldest for r in rows[20_000:]}

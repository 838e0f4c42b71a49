"""Contract tests for an operator's re-send of notifications given up on (`llm-monitor alerts resend`), run against
SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy import event, inspect

from monitor.alerts.events import ASKED_NOTE, DEAD, DELIVERED, PENDING
from monitor.alerts.outbox import Outbox
from monitor.store import Store
from monitor.store.schema import HEAD
from tests.support.schema import add_notifications, upgrade_to
from tests.test_alerts_outbox import T0, note

LATER = T0 + timedelta(hours=3)


def test_named_rows_given_up_on_wait_again_and_go_out(store: Store) -> None:
    ob = Outbox(store.engine)
    a, b = note(kind="model.changed", group="g/a"), note(kind="budget.exceeded", group="g/b")
    ob.add([a, b])
    ob.mark_dead([a.id, b.id], "gave up after 9 attempts: HTTP 503")
    out = ob.resend_dead(LATER, ids=[a.message_id, b.id])  # a message id, or a row id
    assert {(r.notification.id, r.skipped) for r in out} == {(a.id, None), (b.id, None)}
    got = ob.get(a.id)
    assert got is not None and got.status == PENDING and got.next_attempt_at == LATER
    assert got.last_error == f"{ASKED_NOTE} (gave up after 9 attempts: HTTP 503)"
    assert got.attempts == 1 and got.payload == a.payload and got.created_at == T0  # history and order kept
    assert got.asked_at == LATER  # its retry.give_up_after counts from the request
    assert {n.id for n in ob.claim(LATER)[0]} == {a.id, b.id}


def test_a_sink_s_dead_rows_only_and_only_once(store: Store) -> None:
    ob = Outbox(store.engine)
    dead, other_sink, waiting, delivered = (note(kind="model.changed", group="g/a"),
                                            note(kind="model.changed", group="g/b", sink="chat"),
                                            note(kind="model.changed", group="g/c"),
                                            note(kind="model.changed", group="g/d"))
    ob.add([dead, other_sink, waiting, delivered])
    ob.mark_dead([dead.id, other_sink.id], "HTTP 410: gone")
    ob.mark_delivered(delivered.id, T0)
    assert [r.notification.id for r in ob.resend_dead(LATER, sink="hook")] == [dead.id]
    assert ob.resend_dead(LATER, sink="hook") == []  # pending now: nothing more to re-send
    assert ob.get(other_sink.id).status == DEAD  # type: ignore[union-attr]
    out = {r.notification.id: r.skipped for r in ob.resend_dead(LATER, ids=[waiting.id, delivered.message_id])}
    assert out == {waiting.id: "not given up on (pending)", delivered.id: "not given up on (delivered)"}
    assert ob.get(delivered.id).status == DELIVERED  # type: ignore[union-attr]


def test_a_firing_message_an_end_followed_is_not_sent_after_it(store: Store) -> None:
    # Sent after its end, a page would reopen the receiver's incident for good.
    ob = Outbox(store.engine)
    down = note(kind="canary.down", signal="health")
    up = note(kind="canary.recovered", signal="health", at=T0 + timedelta(minutes=5))
    alone = note(kind="canary.down", signal="health", group="c/u")
    ob.add([down, up, alone])
    ob.mark_dead([down.id, alone.id], "gave up after 9 attempts: HTTP 503")
    ob.mark_delivered(up.id, T0 + timedelta(minutes=6))
    out = {r.notification.id: r.skipped for r in ob.resend_dead(LATER, sink="hook")}
    assert out == {down.id: "a later message of its alert was written (sent now, it would tell the receiver an "
                            "outdated state)", alone.id: None}
    assert ob.get(down.id).status == DEAD  # type: ignore[union-attr]


def test_a_held_row_ended_unsent_is_not_sent(store: Store) -> None:
    # never meant to reach the receiver: its outage was paged as canary.down (one page per outage)
    ob = Outbox(store.engine)
    held = note(signal="error_type")
    ob.add([held])
    ob.mark_dead(held.id, "not sent: held while c/t was down", attempted=False)
    [r] = ob.resend_dead(LATER, ids=[held.message_id])
    assert r.skipped == "never sent on purpose (not sent: held while c/t was down)"
    assert ob.get(held.id).status == DEAD  # type: ignore[union-attr]


def test_a_row_changed_since_it_was_read_is_left_alone(store: Store) -> None:
    # Two operators (or a daemon's own re-send) at once: the row goes from dead to pending once.
    ob = Outbox(store.engine)
    n = note(kind="model.changed")
    ob.add([n])
    ob.mark_dead(n.id, "HTTP 410: gone")
    first = ob.resend_dead(LATER, ids=[n.id])
    second = ob.resend_dead(LATER, ids=[n.id])
    assert first[0].skipped is None and second[0].skipped == "not given up on (pending)"
    ob.mark_dead(n.id, "HTTP 410: gone")
    rows = ob._asked_rows([n.id], None)
    ob.mark_dead(n.id, "HTTP 410: gone again")  # changed between the read and the update
    assert ob._resend_rows(rows, LATER)[0].skipped == "changed while being re-sent (look again)"
    assert ob.get(n.id).last_error == "HTTP 410: gone again"  # type: ignore[union-attr]


def test_a_row_given_up_on_before_the_upgrade_is_re_sent_with_its_request_time(store_url: str) -> None:
    # 0011 adds asked_at: a row stored before has none (its window counts from its created time) until re-sent.
    store = Store(store_url)
    try:
        upgrade_to(store.engine, "0010")
        n = replace(note(kind="model.changed"), status=DEAD, attempts=9, last_error="gave up after 9 attempts: 503")
        add_notifications(store.engine, [n])  # as a build at 0010 wrote it
        assert store.migrate() == HEAD
        ob = Outbox(store.engine)
        assert ob.get(n.id).asked_at is None  # type: ignore[union-attr]
        assert ob.resend_dead(LATER, ids=[n.message_id])[0].skipped is None
        got = ob.get(n.id)
        assert got is not None and got.asked_at == LATER and got.created_at == T0
    finally:
        store.close()


def test_a_row_of_a_grouped_message_brings_the_rest_of_it(store: Store) -> None:
    # Rows given up on in one grouped message (`sent_as`, its id) go back together, named by any of them or by that id;
    # a row of the group given up on alone, or in another message, stays.
    ob = Outbox(store.engine)
    a, b, c = (note(signal=s) for s in ("refused", "output_chars", "similarity"))
    alone, other = note(signal="length"), note(signal="refused", group="c/u")
    ob.add([a, b, c, alone, other])
    ob.mark_dead([a.id, b.id, c.id], "gave up after 9 attempts: HTTP 503", sent_as="msg_g")
    ob.mark_dead(alone.id, "gave up after 9 attempts: HTTP 503")
    ob.mark_dead(other.id, "gave up after 9 attempts: HTTP 503", sent_as="msg_h")
    assert ob.get(a.id).sent_as == "msg_g"  # type: ignore[union-attr]
    out = ob.resend_dead(LATER, ids=[b.message_id])
    assert {(r.notification.id, r.skipped) for r in out} == {(a.id, None), (b.id, None), (c.id, None)}
    got = ob.get(c.id)
    assert got is not None and got.status == PENDING and got.sent_as is None  # sent again: in whatever message
    assert {ob.get(n.id).status for n in (alone, other)} == {DEAD}  # type: ignore[union-attr]
    assert [r.notification.id for r in ob.resend_dead(LATER, ids=["msg_h"])] == [other.id]  # the message's own id


def test_the_lookup_by_grouped_message_reads_an_index_and_the_upgrade_keeps_every_row(store_url: str) -> None:
    # `alerts resend` finds a grouped message's rows by `sent_as` (0012), which no index held: every re-send by a
    # message id read the whole outbox, 90 days of it by default. 0013 indexes the rows that have one.
    store = Store(store_url)
    try:
        upgrade_to(store.engine, "0012")
        rows = [replace(note(signal=s), status=DEAD, attempts=9, last_error="gave up after 9 attempts: HTTP 503",
                        sent_as="msg_g") for s in ("refused", "output_chars")]
        rows += [note(group=f"c/{i}") for i in range(5)]
        add_notifications(store.engine, rows)  # as a build at 0012 wrote them
        assert store.migrate() == HEAD
        index = {i["name"]: i["column_names"] for i in inspect(store.engine).get_indexes("notifications")}
        assert index.get("ix_notifications_sent_as") == ["sent_as"]
        ob = Outbox(store.engine)
        assert sorted(n.id for n in ob.query(limit=100)) == sorted(n.id for n in rows)  # every row kept
        assert {ob.get(n.id).sent_as for n in rows} == {"msg_g", None}  # type: ignore[union-attr]
        if store.engine.dialect.name == "sqlite":  # the query `alerts resend` asks, as SQLite plans it
            seen: list[tuple[str, Any]] = []

            def keep(conn: Any, cur: Any, stmt: str, params: Any, ctx: Any, many: bool) -> None:
                seen.append((stmt, params))

            event.listen(store.engine, "before_cursor_execute", keep)
            ob._asked_rows(["msg_g"], None)
            event.remove(store.engine, "before_cursor_execute", keep)
            stmt, params = seen[0]
            with store.engine.connect() as conn:
                plan = " | ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {stmt}", params))
            assert "ix_notifications_sent_as" in plan and "SCAN notifications" not in plan, plan
        assert {r.notification.id for r in ob.resend_dead(LATER, ids=["msg_g"])} == {rows[0].id, rows[1].id}
    finally:
        store.close()


def test_the_daemons_own_re_send_clears_sent_as_as_an_operators_does(store: Store) -> None:
    # `sent_as` is the message a row was given up on in. The daemon's own re-sends (a firing message once more while
    # it fires, an end tried once more) left it on the row they made due, and on the row once delivered, though the
    # re-send went out under whatever id its rows then made: `alerts pending --json` named a message the receiver
    # never got for a row it had, and `alerts resend` that id listed the delivered rows as not re-sent (exit 1).
    ob = Outbox(store.engine)
    opened = [note(signal=s) for s in ("refused", "output_chars")]
    ends = [note(kind="drift.resolved", group="c/u", signal=s, at=T0 + timedelta(minutes=1)) for s in ("a", "b")]
    ob.add([*opened, *ends])
    ob.mark_dead([n.id for n in opened], "gave up after 9 attempts: HTTP 503", sent_as="msg_g")
    ob.mark_dead([n.id for n in ends], "gave up after 9 attempts: HTTP 503", sent_as="msg_h")
    assert sorted(ob.resend_given_up_firing("hook", LATER)[0]) == sorted(n.id for n in opened)
    assert sorted(ob.retry_given_up_ends("hook", LATER)) == sorted(n.id for n in ends)
    assert {(n.status, n.sent_as) for n in ob.query(limit=10)} == {(PENDING, None)}
    ob.mark_delivered([n.id for n in opened], LATER)
    assert ob.resend_dead(LATER, ids=["msg_g"]) == []  # nothing was given up on in it any more


def test_the_upgrade_clears_sent_as_left_on_rows_not_given_up_on(store_url: str) -> None:
    # Rows the daemon of 0012 re-sent itself kept the id of the message they were given up on in, once delivered too.
    store = Store(store_url)
    try:
        upgrade_to(store.engine, "0012")
        dead, delivered, pending = (replace(note(signal=s), status=status, attempts=9, sent_as="msg_g",
                                            last_error="gave up after 9 attempts: HTTP 503")
                                    for s, status in (("a", DEAD), ("b", DELIVERED), ("c", PENDING)))
        add_notifications(store.engine, [dead, delivered, pending])
        assert store.migrate() == HEAD
        ob = Outbox(store.engine)
        assert [ob.get(n.id).sent_as for n in (dead, delivered, pending)] == ["msg_g", None, None]  # type: ignore[union-attr]
        assert [r.notification.id for r in ob.resend_dead(LATER, ids=["msg_g"])] == [dead.id]
    finally:
        store.close()


def test_the_daemons_own_re_send_clears_an_old_request(store: Store) -> None:
    # Found by review: asked_at was never cleared, so a row re-sent once on request, given up on again, and later
    # re-sent by the daemon itself (a firing message whose alert still fires, an end tried once more) was still taken
    # as asked: waiting for a reload if its sink was disabled then, its window counted from the old request. The
    # daemon's own re-send is not the operator's: it clears asked_at.
    ob = Outbox(store.engine)
    down = note(kind="canary.down", signal="health")
    end = note(kind="drift.resolved", group="c/e")
    ob.add([down, end])
    ob.mark_dead([down.id, end.id], "gave up after 9 attempts: HTTP 503")
    assert all(r.skipped is None for r in ob.resend_dead(T0 + timedelta(hours=1), ids=[down.id, end.id]))
    ob.mark_dead([down.id, end.id], "gave up after 3 attempts: HTTP 503")  # given up on again
    assert ob.get(down.id).asked_at is not None  # type: ignore[union-attr]
    assert ob.resend_given_up_firing("hook", LATER)[0] == [down.id]
    assert ob.retry_given_up_ends("hook", LATER) == [end.id]
    for row in (ob.get(down.id), ob.get(end.id)):
        assert row is not None and row.status == PENDING and row.asked_at is None, row

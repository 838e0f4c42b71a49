"""The outbox's reads over its history -- the cooldown memory read back at a start and a resync (`last_firing`), the
hourly prune -- cost the rows in their window (0010's index by creation time), not the outbox's history: they read
every row. Counted in SQLite VM steps, with 30 times the history, older: flat. And they answer as before."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import inspect

from monitor.alerts.events import DEAD, NOT_SENT, Notification
from monitor.alerts.outbox import Outbox
from monitor.store import Store
from monitor.store.schema import HEAD
from tests.support.schema import add_notifications, upgrade_to
from tests.support.vmsteps import vm_steps
from tests.test_outbox_claim import T0, history

SINCE = T0 + timedelta(hours=1)  # the last hour of `history(.., 120, T0)`: a cooldown's window


def test_the_upkeep_reads_cost_their_window_not_the_history(sqlite_store: Store) -> None:
    steps = vm_steps(sqlite_store.engine)
    ob = Outbox(sqlite_store.engine)
    ob.add(history(10, 120, T0))  # two hours of each alert

    reads = {"last_firing": lambda: len(ob.last_firing(SINCE)) == 10,
             "prune": lambda: ob.prune(T0 - timedelta(days=90)) == 0}  # nothing past retention: its usual work
    recent = {name: steps(read) for name, read in reads.items()}  # in hundreds of steps: a prune of nothing, 0
    ob.add(history(10, 3600, T0 - timedelta(days=60)))  # 30 times as many rows, older
    assert all(read() for read in reads.values())
    assert {name: steps(read) <= 2 * recent[name] + 2 for name, read in reads.items()} == dict.fromkeys(reads, True)

def test_last_firing_and_prune_answer_as_they_did(store: Store) -> None:
    ob = Outbox(store.engine)
    rows = history(3, 6, T0)  # opened, resolved in turn, a minute apart: the last is a resolve
    rows += [Notification(id=f"{'f' * 31}{a}", message_id=f"m{a}", sink="am", kind="drift.opened", group_key=f"c{a}/t",
                          signal="refusal", payload={}, created_at=T0 + timedelta(minutes=9), status=DEAD,
                          next_attempt_at=T0, last_error=f"{NOT_SENT} held") for a in range(2)]  # never told
    ob.add(rows)
    fired = ob.last_firing(T0)
    assert fired == {("am", f"c{a}/t", "refusal"): (T0 + timedelta(minutes=4), False, True) for a in range(3)}
    assert ob.last_firing(T0 + timedelta(minutes=5)) == {}  # only a resolve in the window
    assert ob.prune(T0 + timedelta(minutes=6)) == 6 + 6 + 5  # the latest state row kept: c0 and c1 the held one
    assert ob.prune(T0 + timedelta(minutes=6)) == 0


def test_the_upgrade_builds_the_index_by_creation_time_also_after_a_start_cut_short(store_url: str) -> None:
    """0010 on an outbox with rows, with the index already there at 0009 (a start cut short after it was built, when
    SQLite migrations ran outside a transaction): it is dropped and built again, not a failing start."""
    store = Store(store_url)
    try:
        upgrade_to(store.engine, "0009", then="CREATE INDEX ix_notifications_created ON notifications (created_at)")
        add_notifications(store.engine, history(3, 4, T0))  # as a build at 0009 wrote them
        assert store.migrate() == HEAD
        index = {i["name"]: i["column_names"] for i in inspect(store.engine).get_indexes("notifications")}
        assert index["ix_notifications_created"] == ["created_at", "id"]
        assert len(Outbox(store.engine).last_firing(T0)) == 3
    finally:
        store.close()

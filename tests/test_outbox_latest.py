"""Each alert's latest state, read per alert (`monitor.store.outbox_latest`), matches a read of the whole outbox,
on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect
from sqlmodel import Session, col, select

from monitor.alerts.events import (
    DEAD,
    DELIVERED,
    FAILED,
    FIRING,
    HELD,
    ONE_SHOT,
    PENDING,
    RESOLVING,
    Notification,
)
from monitor.alerts.outbox import Outbox, alert_key
from monitor.store import Store
from monitor.store.outbox_table import NotificationRow
from monitor.store.schema import HEAD
from tests.support.schema import add_notifications, upgrade_to
from tests.support.vmsteps import vm_steps

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
KINDS = sorted(FIRING | RESOLVING) * 3 + sorted(ONE_SHOT)
STATUSES = [PENDING, FAILED, DELIVERED, DELIVERED, DELIVERED, DEAD, HELD]


def scanned(store: Store, sink: str | None = None) -> list[NotificationRow]:
    """The read this replaces: every firing or resolving row oldest first, the last live one per alert kept."""
    with Session(store.engine) as s:
        q = select(NotificationRow).where(col(NotificationRow.kind).in_(FIRING | RESOLVING))
        if sink is not None:
            q = q.where(NotificationRow.sink == sink)
        latest: dict[tuple[str, str, str], NotificationRow] = {}
        for r in s.exec(q.order_by(col(NotificationRow.created_at), col(NotificationRow.id))).all():
            if r.status != DEAD:
                latest[alert_key(r)] = r
        return list(latest.values())


def newest_kinds(store: Store, sink: str) -> dict[tuple[str, str, str], str]:
    """The kind of each alert's newest firing or resolving row at `sink`, dead ones too, by a scan."""
    with Session(store.engine) as s:
        q = (select(NotificationRow).where(col(NotificationRow.kind).in_(FIRING | RESOLVING),
                                           NotificationRow.sink == sink)
             .order_by(col(NotificationRow.created_at), col(NotificationRow.id)))
        return {alert_key(r): r.kind for r in s.exec(q).all()}


def fill(store: Store, rng: random.Random, rows: int) -> None:
    """Rows of many alerts in every kind and status, many written in the same instant (ties broken by id)."""
    out = []
    for _ in range(rows):
        at = T0 + timedelta(minutes=rng.randrange(40))
        sink, group = rng.choice(["am", "hook", "slack", "Z"]), f"c{rng.randrange(5)}/t{rng.randrange(3)}"
        out.append(Notification(
            id=uuid.UUID(int=rng.getrandbits(128)).hex, message_id=f"msg_{rng.getrandbits(64)}", sink=sink,
            kind=rng.choice(KINDS), group_key=group, signal=rng.choice(["refusal", "health", "", "length"]),
            payload={"n": len(out)}, created_at=at, next_attempt_at=at, status=rng.choice(STATUSES)))
    Outbox(store.engine).add(out)


@pytest.mark.parametrize("seed", range(3))
def test_each_alerts_latest_state_is_the_one_a_scan_of_the_outbox_keeps(store: Store, seed: int) -> None:
    ob, rng = Outbox(store.engine), random.Random(seed)
    assert ob.latest_states() == ob.open_alerts() == []
    for rows in (1, 50, 1500):
        fill(store, rng, rows)
        everything = scanned(store)
        assert [r.id for r in everything] == [n.id for n in ob._latest_states()]
        assert [n.id for n in ob.latest_states()] == [r.id for r in sorted(everything, key=lambda r: (r.created_at,
                                                                                                      r.id))]
        assert [n.id for n in ob.open_alerts()] == [r.id for r in everything if r.kind in FIRING]
        for sink in ("am", "Z", "none"):
            newest = newest_kinds(store, sink)  # a resolve given up on ends its alert for the re-sends
            assert [n.id for n in ob.firing(sink)] == [r.id for r in scanned(store, sink)
                                                       if r.kind in FIRING and r.status == DELIVERED
                                                       and newest[alert_key(r)] not in RESOLVING]


def test_an_alert_whose_every_state_row_is_dead_or_one_shot_has_no_latest_state(store: Store) -> None:
    ob = Outbox(store.engine)
    rows = [Notification(id=uuid.uuid4().hex, message_id=uuid.uuid4().hex, sink="am", kind=kind, group_key="c/t",
                         signal=signal, payload={}, created_at=T0, next_attempt_at=T0, status=status)
            for kind, signal, status in [("drift.opened", "refusal", DEAD), ("model.changed", "model", DELIVERED),
                                         ("canary.down", "health", DEAD), ("canary.recovered", "health", HELD)]]
    ob.add(rows)
    assert [n.id for n in ob.latest_states()] == [rows[3].id]
    assert ob.open_alerts() == []


def history(alerts: int, rows: int, start: datetime) -> list[Notification]:
    """`rows` delivered rows of each of `alerts` alerts, opened and resolved in turn from `start`."""
    return [Notification(id=uuid.uuid4().hex, message_id=uuid.uuid4().hex, sink="am", kind=kind, group_key=f"c{a}/t",
                         signal="refusal", payload={"summary": "s"}, created_at=at, next_attempt_at=at,
                         status=DELIVERED, delivered_at=at)
            for i in range(rows) for a in range(alerts)
            for kind, at in [(("drift.opened", "drift.resolved")[i % 2], start + timedelta(minutes=i))]]


def test_reading_the_latest_states_costs_the_alerts_not_the_outboxs_history(sqlite_store: Store) -> None:
    steps = vm_steps(sqlite_store.engine)
    ob = Outbox(sqlite_store.engine)
    ob.add(history(10, 11, T0))

    def reads() -> None:
        for read in (ob.latest_states, ob.open_alerts, lambda: ob.firing("am")):  # each alert open
            assert len(read()) == 10

    recent = steps(reads)
    ob.add(history(10, 300, T0 - timedelta(days=60)))  # 30 times as many rows, older: the same latest states
    assert steps(reads) < 2 * recent


def test_the_upgrade_orders_the_alert_index_by_time_then_id_and_keeps_the_rows(store_url: str) -> None:
    store = Store(store_url)
    try:
        upgrade_to(store.engine, "0007")
        add_notifications(store.engine, history(3, 4, T0))
        assert store.migrate() == HEAD
        index = {i["name"]: i["column_names"] for i in inspect(store.engine).get_indexes("notifications")}
        assert index["ix_notifications_alert"] == ["sink", "group_key", "signal", "created_at", "id"]
        assert [n.id for n in Outbox(store.engine).latest_states()] == [r.id for r in sorted(
            scanned(store), key=lambda r: (r.created_at, r.id))]
    finally:
        store.close()


def test_an_upgrade_cut_short_while_it_rebuilds_the_alert_index_is_done_at_the_next_start(store_url: str) -> None:
    """SQLite runs a migration's DDL outside a transaction: the old index was gone for good when the process died
    building the new one (a kill, at the first start on a big outbox), with the schema still at 0007, and every
    later start failed on dropping it again (`no such index: ix_notifications_alert`)."""
    from alembic import op

    from monitor.errors import StoreError

    store = Store(store_url)
    try:
        upgrade_to(store.engine, "0007")
        add_notifications(store.engine, history(3, 4, T0))
        create = op.create_index

        def killed(name: str, *args: object, **kwargs: object) -> None:
            if name == "ix_notifications_alert":
                raise RuntimeError("killed")  # stands for the process's end: nothing after it runs
            create(name, *args, **kwargs)  # type: ignore[arg-type]

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(op, "create_index", killed)
            with pytest.raises((RuntimeError, StoreError)):
                store.migrate()
        assert store.migrate() == HEAD
        index = {i["name"]: i["column_names"] for i in inspect(store.engine).get_indexes("notifications")}
        assert index["ix_notifications_alert"] == ["sink", "group_key", "signal", "created_at", "id"]
        assert len(Outbox(store.engine).latest_states()) == 3
    finally:
        store.close()

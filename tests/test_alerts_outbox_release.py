"""Giving claimed rows back (`Outbox.release`), run against SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, event

from monitor.alerts.outbox import Outbox
from monitor.store import Store
from tests.test_alerts_outbox import T0, note


@contextmanager
def _updates(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def _count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE"):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", _count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", _count)


def test_release_gives_back_only_rows_nobody_changed_since_their_claim_in_one_statement(store: Store) -> None:
    """It issued one UPDATE a row: a sender giving back a batch of 50 rows it merged made 50 round trips."""
    ob = Outbox(store.engine)
    ob.add([note(group=f"c/t{i}") for i in range(6)])
    first = ob.claim(T0, limit=4, lease=60)[0]  # leased until T0+60
    later = ob.claim(T0 + timedelta(seconds=10), lease=60)[0]  # the other two, until T0+70
    assert len(first) == 4 and len(later) == 2
    attempted, reclaimed = first[0], first[1]
    ob.mark_retry(attempted.id, T0 + timedelta(seconds=300), "HTTP 503")  # an attempt since: not given back
    gone = ob.claim(T0 + timedelta(seconds=61), limit=50, lease=60)[0]  # first's lease ran out: claimed again
    assert {n.id for n in gone} == {n.id for n in first[1:]}
    first = [attempted, reclaimed, *first[2:]]  # the claim as the sender still holds it
    now = T0 + timedelta(seconds=62)
    with _updates(store.engine) as updates:
        released = ob.release([*first, *later], now)
    assert len(updates) == 1
    assert released == 2  # `later`'s two rows: the others changed since `first` claimed them
    assert {n.id for n in ob.claim(now, limit=50)[0]} == {n.id for n in later}
    assert ob.get(attempted.id).next_attempt_at == T0 + timedelta(seconds=300)  # type: ignore[union-attr]
    assert ob.get(reclaimed.id).next_attempt_at == T0 + timedelta(seconds=121)  # type: ignore[union-attr]


def test_release_of_nothing_asks_nothing(store: Store) -> None:
    ob = Outbox(store.engine)
    with _updates(store.engine) as updates:
        assert ob.release([], T0) == 0
    assert updates == []

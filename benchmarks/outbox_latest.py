"""Each alert's latest state, and the sender's claim, on a large outbox: as ``Outbox`` reads them now and before.

Run: ``.venv/bin/python benchmarks/outbox_latest.py [--rows 100000] [--url URL]``. Builds an outbox of ``--rows``
notifications (SQLite in a temporary folder unless ``--url`` names an empty database): 50 canaries x 2 targets x 4
signals x 2 sinks = 800 alerts, each opened and resolved in turn over 90 days (the default retention), delivered
but for one in 50 given up (dead) and the newest rows of some still waiting, with a drift payload of about 700
bytes. Then times the reads a take-over, a reload, ``ensure_firing`` and ``retire`` make -- ``latest_states``,
``open_alerts``, ``firing(sink)`` -- as ``Outbox`` reads them now and as it read them before (every firing or
resolving row, oldest first, the last live one per alert kept: the code this replaced, copied here). And the
sender's ``claim``, with 50 rows due and with none (then it reads when the next falls due), as now (0009: each
waiting row's alert probed in the partial index of waiting rows) and as before (an EXISTS over the alert's older
rows, which walked the alert's history; copied here and timed without that index, as before 0009). And the reads
over the history a start, a resync and the hourly prune make -- ``last_firing`` (the cooldown's 30 minutes) and
``prune`` (at the retention's edge: nothing older, its usual hourly work but the deletes) -- now (the window by
creation time, 0010) and as before (every row; every delivered row and every state row grouped per alert; copied
here, timed without the 0010 index). Prints a table: median of ``--repeat`` calls each and the ratio before / now; checks both give the
same rows.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import and_, delete, func, insert, or_, text, update
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.alerts.events import (  # noqa: E402
    DEAD,
    DELIVERED,
    FIRING,
    NOT_SENT,
    ONE_SHOT,
    PENDING,
    RESOLVING,
    WAITING,
)
from monitor.alerts.outbox import Outbox, _from_row, alert_key  # noqa: E402
from monitor.store import Store  # noqa: E402
from monitor.store.convert import aware  # noqa: E402
from monitor.store.outbox_table import WAITING_WHERE, NotificationRow  # noqa: E402

CANARIES, TARGETS, SIGNALS, SINKS, DAYS = 50, 2, ("refusal", "length", "latency", "health"), ("am", "hook"), 90
START = datetime(2026, 9, 1, tzinfo=UTC)
DUE, NONE_DUE = START + timedelta(days=DAYS + 10), START  # every waiting row due / none yet


def fill(store: Store, rows: int) -> None:
    """Insert ``rows`` notifications in batches, round-robin over the alerts, oldest first."""
    alerts = [(s, f"canary-{c:02d}/target-{t}", sig) for s in SINKS for c in range(CANARIES) for t in range(TARGETS)
              for sig in SIGNALS]
    start, step = START, timedelta(days=DAYS) / rows
    table = NotificationRow.__table__  # type: ignore[attr-defined]
    batch: list[dict[str, Any]] = []
    with store.engine.begin() as conn:
        for i in range(rows):
            sink, group, signal = alerts[i % len(alerts)]
            turn = i // len(alerts)
            kind = ("canary.down", "canary.recovered") if signal == "health" else ("drift.opened", "drift.resolved")
            at = start + step * i
            status = PENDING if i >= rows - len(alerts) // 4 else DEAD if i % 50 == 7 else DELIVERED
            batch.append(dict(
                id=uuid.uuid4().hex, message_id=f"msg_{uuid.uuid4().hex}", sink=sink, kind=kind[turn % 2],
                group_key=group, signal=signal, status=status, attempts=1, next_attempt_at=at, created_at=at,
                last_error=None, delivered_at=at if status == DELIVERED else None,
                payload={"canary": group.split("/")[0], "target": group.split("/")[1], "signal": signal,
                         "severity": "warning", "event_id": uuid.uuid4().hex, "opened_at": at.isoformat(),
                         "summary": f"{group}: {signal} drifted from its baseline " * 3,
                         "evidence": {"test": "mann_whitney", "p_value": 0.0001, "baseline_n": 200, "window_n": 50,
                                      "baseline_median": 0.12, "window_median": 0.31, "signal": signal},
                         "link": f"http://127.0.0.1:9464/api/drift/{uuid.uuid4().hex}"}))
            if len(batch) == 5000:
                conn.execute(insert(table), batch)
                batch.clear()
        if batch:
            conn.execute(insert(table), batch)


def scanned(store: Store, sink: str | None = None) -> list[NotificationRow]:
    """The read before 0008: every firing or resolving row, oldest first, the last live one per alert kept."""
    with Session(store.engine) as s:
        q = select(NotificationRow).where(col(NotificationRow.kind).in_(FIRING | RESOLVING))
        if sink is not None:
            q = q.where(NotificationRow.sink == sink)
        latest: dict[tuple[str, str, str], NotificationRow] = {}
        for r in s.exec(q.order_by(col(NotificationRow.created_at), col(NotificationRow.id))).all():
            if r.status != DEAD:
                latest[alert_key(r)] = r
        return list(latest.values())


def _has_older(row: Any) -> Any:
    """The claim's clause before 0009: a waiting row of `row`'s alert older than it exists."""
    older = aliased(NotificationRow)
    return (sa_select(col(older.id))
            .where(col(older.status).in_(WAITING), col(older.sink) == col(row.sink),
                   col(older.group_key) == col(row.group_key), col(older.signal) == col(row.signal),
                   or_(col(older.created_at) < col(row.created_at),
                       and_(col(older.created_at) == col(row.created_at), col(older.id) < col(row.id))))
            .exists())


def claimed_before(store: Store, now: datetime, limit: int = 50, lease: float | None = 0.0) -> list[Any]:
    """``Outbox.claim`` before 0009 (no lease taken if `lease` is None): the due rows, else when the next is due."""
    with Session(store.engine) as s:
        q = (select(NotificationRow)
             .where(col(NotificationRow.status).in_(WAITING), col(NotificationRow.next_attempt_at) <= now,
                    ~_has_older(NotificationRow))
             .order_by(col(NotificationRow.next_attempt_at), col(NotificationRow.created_at)).limit(limit))
        if store.dialect == "postgresql":
            q = q.with_for_update(of=NotificationRow, skip_locked=True)
        rows = list(s.exec(q).all())
        if not rows:
            nxt = select(func.min(NotificationRow.next_attempt_at)).where(
                col(NotificationRow.status).in_(WAITING), ~_has_older(NotificationRow))
            return [aware(s.exec(nxt).one())]
        if lease is None:
            return [_from_row(r) for r in rows]
        claimed = []
        for r in rows:
            res = s.exec(update(NotificationRow).where(  # type: ignore[call-overload]
                and_(col(NotificationRow.id) == r.id, col(NotificationRow.status).in_(WAITING),
                     col(NotificationRow.next_attempt_at) == r.next_attempt_at))
                .values(next_attempt_at=now + timedelta(seconds=lease)))
            if res.rowcount == 1:
                claimed.append(_from_row(r))
        s.commit()
        return claimed


def last_firing_before(store: Store, since: datetime) -> dict[tuple[str, str, str], tuple[datetime, bool, bool]]:
    """``Outbox.last_firing`` before: every row since `since`, oldest first (no index on created_at: all rows)."""
    kinds = tuple((FIRING | ONE_SHOT | RESOLVING) - {"test"})
    out: dict[tuple[str, str, str], tuple[datetime, bool, bool]] = {}
    with Session(store.engine) as s:
        cols = (NotificationRow.sink, NotificationRow.group_key, NotificationRow.signal, NotificationRow.kind,
                NotificationRow.created_at, NotificationRow.status, NotificationRow.last_error)
        q = (sa_select(*(col(c) for c in cols))
             .where(col(NotificationRow.kind).in_(kinds), col(NotificationRow.created_at) >= since)
             .order_by(col(NotificationRow.created_at)))
        for sink, group, signal, kind, ts, status, error in s.execute(q).all():
            key = (sink, group, signal)
            if status == DEAD and (error or "").startswith(NOT_SENT):
                continue
            if kind in RESOLVING:
                if key in out:
                    out[key] = (out[key][0], False, True)
            else:
                out[key] = (aware(ts) or ts, kind in FIRING, False)
    return out


def prune_before(store: Store, before: datetime) -> int:
    """``Outbox.prune`` before: each alert's newest state time grouped over every state row, every delivered or dead
    row older than `before` read."""
    state = tuple(FIRING | RESOLVING)
    with Session(store.engine) as s:
        latest = {(a, b, c): m for a, b, c, m in s.exec(
            select(NotificationRow.sink, NotificationRow.group_key, NotificationRow.signal,
                   func.max(NotificationRow.created_at))
            .where(col(NotificationRow.kind).in_(state))
            .group_by(NotificationRow.sink, NotificationRow.group_key, NotificationRow.signal)).all()}
        cols = (NotificationRow.id, NotificationRow.sink, NotificationRow.group_key, NotificationRow.signal,
                NotificationRow.kind, NotificationRow.created_at)
        old = s.execute(sa_select(*(col(c) for c in cols))
                        .where(col(NotificationRow.status).in_((DELIVERED, DEAD)),
                               col(NotificationRow.created_at) < before)).all()
        doomed = [rid for rid, sink, group, signal, kind, ts in old
                  if kind not in state or ts != latest.get((sink, group, signal))]
        for i in range(0, len(doomed), 500):
            s.exec(delete(NotificationRow).where(col(NotificationRow.id).in_(doomed[i:i + 500])))  # type: ignore[call-overload]
        s.commit()
        return len(doomed)


SINCE = START + timedelta(days=DAYS) - timedelta(minutes=30)  # last_firing's window: the cooldown's 30 minutes
PRUNE_BEFORE = START  # the retention's edge: nothing older (the hourly prune's reads, without its deletes)


def claimed_now(ob: Outbox, now: datetime) -> list[Any]:
    """``Outbox.claim`` with a lease of 0 (the rows stay due: every call claims 50), as the list above."""
    rows, nxt = ob.claim(now, 50, lease=0.0)
    return rows or [nxt]


ROWS_OF_NOTIFICATIONS = ("latest_states()", "open_alerts()", "firing('am')")


def before(store: Store) -> dict[str, Callable[[], list[Any]]]:
    return {
        "latest_states()": lambda: sorted((_from_row(r) for r in scanned(store)), key=lambda n: (n.created_at, n.id)),
        "open_alerts()": lambda: [_from_row(r) for r in scanned(store) if r.kind in FIRING],
        "firing('am')": lambda: [_from_row(r) for r in scanned(store, "am")
                                 if r.kind in FIRING and r.status == DELIVERED],
        "claim(), 50 due": lambda: claimed_before(store, DUE),
        "claim(), none due": lambda: claimed_before(store, NONE_DUE),
        "last_firing(30 min)": lambda: sorted(last_firing_before(store, SINCE).items()),
        "prune(nothing due)": lambda: [prune_before(store, PRUNE_BEFORE)],
    }


def now(ob: Outbox) -> dict[str, Callable[[], list[Any]]]:
    return {"latest_states()": ob.latest_states, "open_alerts()": ob.open_alerts,
            "firing('am')": lambda: ob.firing("am"), "claim(), 50 due": lambda: claimed_now(ob, DUE),
            "claim(), none due": lambda: claimed_now(ob, NONE_DUE),
            "last_firing(30 min)": lambda: sorted(ob.last_firing(SINCE).items()),
            "prune(nothing due)": lambda: [ob.prune(PRUNE_BEFORE)]}


def same_claims(store: Store, ob: Outbox) -> None:
    """Check the claim hands out the rows (or the next due time) it did before, in the same order."""
    for at in (DUE, NONE_DUE):
        for _ in range(6):  # a lease of 0 moves the claimed rows behind the others: six rounds go round them all
            expected = [getattr(n, "id", n) for n in claimed_before(store, at, lease=None)]
            assert [getattr(n, "id", n) for n in claimed_now(ob, at)] == expected, f"claim at {at}: not the same"


def without_waiting_index(store: Store) -> None:
    """Drop the partial index of waiting rows (0009) and the index by creation time (0010), so the reads before them
    are timed on the schema they ran on."""
    with store.engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_notifications_waiting"))
        conn.execute(text("DROP INDEX ix_notifications_created"))


def with_waiting_index(store: Store) -> None:
    with store.engine.begin() as conn:
        conn.execute(text("CREATE INDEX ix_notifications_waiting ON notifications "
                          f"(sink, group_key, signal, created_at, id) WHERE {WAITING_WHERE}"))
        conn.execute(text("CREATE INDEX ix_notifications_created ON notifications (created_at, id)"))


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``fn`` in ms over ``repeat`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--url", help="an empty database to use instead of a temporary SQLite file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(args.url or f"sqlite:///{tmp}/bench.db")
        store.migrate()
        t0 = time.perf_counter()
        fill(store, args.rows)
        print(f"{args.rows:,} notifications written in {time.perf_counter() - t0:.0f} s ({store.dialect})")
        ob = Outbox(store.engine)
        old, new = before(store), now(ob)
        for name in old:
            if name in ROWS_OF_NOTIFICATIONS:
                assert [n.id for n in old[name]()] == [n.id for n in new[name]()], f"{name}: not the same rows"
            elif not name.startswith("claim"):
                assert old[name]() == new[name](), f"{name}: not the same answer"
        same_claims(store, ob)
        counts = {name: sum(1 for n in new[name]() if not isinstance(n, (datetime, int))) for name in new}
        t_new = {name: timed(fn, args.repeat) for name, fn in new.items()}
        without_waiting_index(store)
        t_old = {name: timed(fn, args.repeat) for name, fn in old.items()}
        with_waiting_index(store)
        store.close()
    table = Table(title=f"Latest alert states and claims, {args.rows:,} notifications ({store.dialect}), median of "
                        f"{args.repeat}")
    for c in ("read", "rows", "now", "before", "ratio"):
        table.add_column(c, justify="left" if c == "read" else "right")
    for name in new:
        ratio = t_old[name] / max(t_new[name], 1e-6)
        table.add_row(name, str(counts[name]), f"{t_new[name]:.1f} ms", f"{t_old[name]:.1f} ms",
                      f"{ratio:.0f}x" if ratio >= 10 else f"{ratio:.2f}x")
    Console().print(table)


if __name__ == "__main__":
    main()

"""Each alert's latest state on a large outbox: read per alert (0008) and by scanning the outbox (before), in one run.

Run: ``.venv/bin/python benchmarks/outbox_latest.py [--rows 100000] [--url URL]``. Builds an outbox of ``--rows``
notifications (SQLite in a temporary folder unless ``--url`` names an empty database): 50 canaries x 2 targets x 4
signals x 2 sinks = 800 alerts, each opened and resolved in turn over 90 days (the default retention), delivered
but for one in 50 given up (dead) and the newest rows of some still waiting, with a drift payload of about 700
bytes. Then times the reads a take-over, a reload, ``ensure_firing`` and ``retire`` make -- ``latest_states``,
``open_alerts``, ``firing(sink)`` -- as ``Outbox`` reads them now and as it read them before (every firing or
resolving row, oldest first, the last live one per alert kept: the code this replaced, copied here). Prints a
table: median of ``--repeat`` calls each and the ratio before / now; checks both give the same rows.
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
from sqlalchemy import insert
from sqlmodel import Session, col, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.alerts.events import DEAD, DELIVERED, FIRING, PENDING, RESOLVING  # noqa: E402
from monitor.alerts.outbox import Outbox, _from_row, alert_key  # noqa: E402
from monitor.store import Store  # noqa: E402
from monitor.store.outbox_table import NotificationRow  # noqa: E402

CANARIES, TARGETS, SIGNALS, SINKS, DAYS = 50, 2, ("refusal", "length", "latency", "health"), ("am", "hook"), 90


def fill(store: Store, rows: int) -> None:
    """Insert ``rows`` notifications in batches, round-robin over the alerts, oldest first."""
    alerts = [(s, f"canary-{c:02d}/target-{t}", sig) for s in SINKS for c in range(CANARIES) for t in range(TARGETS)
              for sig in SIGNALS]
    start, step = datetime(2026, 9, 1, tzinfo=UTC), timedelta(days=DAYS) / rows
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


def before(store: Store) -> dict[str, Callable[[], list[Any]]]:
    return {
        "latest_states()": lambda: sorted((_from_row(r) for r in scanned(store)), key=lambda n: (n.created_at, n.id)),
        "open_alerts()": lambda: [_from_row(r) for r in scanned(store) if r.kind in FIRING],
        "firing('am')": lambda: [_from_row(r) for r in scanned(store, "am")
                                 if r.kind in FIRING and r.status == DELIVERED],
    }


def now(ob: Outbox) -> dict[str, Callable[[], list[Any]]]:
    return {"latest_states()": ob.latest_states, "open_alerts()": ob.open_alerts,
            "firing('am')": lambda: ob.firing("am")}


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
        old, new = before(store), now(Outbox(store.engine))
        for name in old:
            assert [n.id for n in old[name]()] == [n.id for n in new[name]()], f"{name}: not the same rows"
        counts = {name: len(new[name]()) for name in new}
        t_new = {name: timed(fn, args.repeat) for name, fn in new.items()}
        t_old = {name: timed(fn, args.repeat) for name, fn in old.items()}
        store.close()
    table = Table(title=f"Latest alert states, {args.rows:,} notifications ({store.dialect}), median of {args.repeat}")
    for c in ("read", "rows", "per alert (now)", "scan (before)", "ratio"):
        table.add_column(c, justify="left" if c == "read" else "right")
    for name in new:
        ratio = t_old[name] / max(t_new[name], 1e-6)
        table.add_row(name, str(counts[name]), f"{t_new[name]:.1f} ms", f"{t_old[name]:.1f} ms",
                      f"{ratio:.0f}x" if ratio >= 10 else f"{ratio:.2f}x")
    Console().print(table)


if __name__ == "__main__":
    main()

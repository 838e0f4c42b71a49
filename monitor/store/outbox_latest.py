"""Each alert's latest row in the outbox, read by seeking the alert index a few times per alert.

An alert is a sink x group x signal. Reading the whole outbox to keep each alert's newest row costs the outbox's
history (90 days of it by default) where the answer is one row per alert. Here a recursive query walks the
distinct alerts along ``ix_notifications_alert`` (each step seeks the first entry past the previous alert: a
loose index scan, which neither SQLite nor PostgreSQL does by itself), and per alert a correlated subquery takes
the newest (and the oldest: the order the alerts are returned in) row of the kinds asked for from an end of the
alert's range, which that index holds in (created_at, id) order. The cost is the alerts, plus the rows of other
kinds or of the dropped status at the ends of an alert's range. The same SQL runs on both stores.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import ScalarSelect, func, select

from monitor.store.outbox_table import NotificationRow

_KEY = ("sink", "group_key", "signal")


def _alerts() -> Any:
    """A recursive CTE of the distinct sink x group x signal, in index order: each step seeks the next one."""
    table = NotificationRow.__table__  # type: ignore[attr-defined]
    first = table.alias("first_alert")
    seed = select(*(select(first.c[name]).order_by(*(first.c[k] for k in _KEY)).limit(1).scalar_subquery()
                    .label(name) for name in _KEY))
    alerts = seed.cte("alerts", recursive=True)

    def next_(name: str, same: int) -> Any:
        # The next alert's `name` among those sharing the first `same` key columns: equal columns then one range,
        # which both stores seek in the index (SQLite seeks a row value range on its first column only), and one
        # column a subquery (a scalar subquery gives one value; SQLite has no LATERAL).
        nxt = table.alias(f"next_{name}_{same}")
        return (select(nxt.c[name])
                .where(*(nxt.c[k] == alerts.c[k] for k in _KEY[:same]), nxt.c[_KEY[same]] > alerts.c[_KEY[same]])
                .order_by(*(nxt.c[k] for k in _KEY[same:])).limit(1).correlate(alerts).scalar_subquery())

    step = (select(*(func.coalesce(next_(name, 2), next_(name, 1), next_(name, 0)).label(name) for name in _KEY))
            .select_from(alerts).where(alerts.c.sink.is_not(None)))
    return alerts.union_all(step)


def _end(alert: Any, kinds: tuple[str, ...], dropped: str, *, newest: bool) -> ScalarSelect[Any]:
    """The id of `alert`'s newest (else oldest) row of `kinds` whose status is not `dropped`."""
    row = NotificationRow.__table__.alias("newest" if newest else "oldest")  # type: ignore[attr-defined]
    order = (row.c.created_at.desc(), row.c.id.desc()) if newest else (row.c.created_at, row.c.id)
    return (select(row.c.id)
            .where(row.c.sink == alert.c.sink, row.c.group_key == alert.c.group_key, row.c.signal == alert.c.signal,
                   row.c.kind.in_(kinds), row.c.status != dropped)
            .order_by(*order).limit(1).correlate(alert).scalar_subquery())


def latest_rows(session: Any, kinds: Iterable[str], dropped: str, sink: str | None = None) -> list[NotificationRow]:
    """Return per sink x group x signal (of `sink` if given) its newest row of `kinds` whose status is not `dropped`,
    ordered by each alert's oldest such row (created_at, then id): the order in which a read of all rows oldest
    first meets the alerts."""
    kinds = tuple(kinds)
    alert = _alerts()
    ends = select(_end(alert, kinds, dropped, newest=True).label("latest"),
                  _end(alert, kinds, dropped, newest=False).label("oldest")).where(alert.c.sink.is_not(None))
    if sink is not None:
        ends = ends.where(alert.c.sink == sink)
    per = ends.subquery("per_alert")
    oldest = NotificationRow.__table__.alias("oldest_row")  # type: ignore[attr-defined]
    q = (select(NotificationRow).join(per, NotificationRow.id == per.c.latest)  # type: ignore[arg-type]
         .join(oldest, oldest.c.id == per.c.oldest).order_by(oldest.c.created_at, oldest.c.id))
    return list(session.scalars(q).all())

"""Stores at an older schema revision, as an older llm-monitor left them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from monitor.store.schema import _alembic


def upgrade_to(engine: Engine, revision: str, then: str | None = None) -> None:
    """Migrate `engine`'s database to `revision` (and run the SQL `then` in the same transaction)."""
    alembic = _alembic()
    with engine.begin() as conn:
        alembic.attributes["connection"] = conn
        command.upgrade(alembic, revision)
        if then is not None:
            conn.execute(text(then))


def add_notifications(engine: Engine, notifications: Iterable[Any]) -> None:
    """Add outbox rows as an older build wrote them: only the columns the database's schema has (a column a later
    migration adds is left for it to add)."""
    from monitor.alerts.outbox import _to_row
    from monitor.store.outbox_table import NotificationRow

    have = {c["name"] for c in inspect(engine).get_columns("notifications")}
    with engine.begin() as conn:
        conn.execute(NotificationRow.__table__.insert(),  # type: ignore[attr-defined]
                     [{k: v for k, v in _to_row(n).model_dump().items() if k in have} for n in notifications])

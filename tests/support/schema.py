"""Stores at an older schema revision, as an older llm-monitor left them."""

from __future__ import annotations

from alembic import command
from sqlalchemy import text
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

"""At most one open drift event per canary x target x signal, enforced by the store (a unique partial index).

The drift engine holds at most one open event per key, but two replicas around a fail-over could each store one
(an old leader draining its analyses after the new one loaded the open events). A store that holds such
duplicates keeps the oldest open (the one the engine restores, and the one receivers were told of first) and
resolves the others, saying why in their note: no row is deleted.

Revision ID: 0006
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"

NOTE = "closed by the store upgrade to one open event per canary x target x signal: a duplicate of {id}"
events = sa.table("drift_events", sa.column("id", sa.String), sa.column("canary", sa.String),
                  sa.column("target", sa.String), sa.column("signal", sa.String), sa.column("state", sa.String),
                  sa.column("opened_at", sa.DateTime(timezone=True)),
                  sa.column("resolved_at", sa.DateTime(timezone=True)), sa.column("data", sa.JSON))


def upgrade() -> None:
    conn = op.get_bind()
    rows = conn.execute(sa.select(events.c.id, events.c.canary, events.c.target, events.c.signal, events.c.data)
                        .where(events.c.state == "open").order_by(events.c.opened_at, events.c.id)).all()
    kept: dict[tuple[str, str, str], str] = {}
    now = datetime.now(UTC)
    for row in rows:
        key = (row.canary, row.target, row.signal)
        if key not in kept:
            kept[key] = row.id
            continue
        note = NOTE.format(id=kept[key])
        data = {**dict(row.data), "state": "resolved", "resolved_at": now.isoformat(), "note": note}
        conn.execute(events.update().where(events.c.id == row.id)
                     .values(state="resolved", resolved_at=now, data=data))
    op.create_index("ux_drift_one_open", "drift_events", ["canary", "target", "signal"], unique=True,
                    postgresql_where=sa.text("state = 'open'"), sqlite_where=sa.text("state = 'open'"))


def downgrade() -> None:
    op.drop_index("ux_drift_one_open", "drift_events")

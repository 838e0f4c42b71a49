"""An index of the outbox by creation time (created_at, id).

What reads the outbox by time -- the cooldown memory read back at a start and a resync (`Outbox.last_firing`: the
last `alerts.cooldown`) and the hourly prune (the rows older than `storage.retention_days`) -- read every row, 90
days of them by default, for a window of minutes or an hour's worth of rows to delete. With this index each reads
its window. Nothing is rewritten but the new index.

As 0009's, the index is dropped first if it exists (a schema at 0009 with it built: a start cut short under a
release whose SQLite migrations ran outside a transaction), and built again.

Revision ID: 0010
"""

from alembic import op

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    op.drop_index("ix_notifications_created", "notifications", if_exists=True)
    op.create_index("ix_notifications_created", "notifications", ["created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_notifications_created", "notifications", if_exists=True)

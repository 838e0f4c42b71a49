"""A partial index of the outbox's waiting rows, per alert in (created_at, id) order.

The sender's claim hands out only each alert's oldest waiting row. Through the alert index that meant reading
the alert's whole history (delivered rows are kept for `storage.retention_days`) to find its waiting ones, whose
status that index does not hold; this index holds the waiting rows alone, so the oldest is its alert's first
entry. Nothing is rewritten but the new index.

Releases whose SQLite migrations ran outside a transaction could leave the schema at 0008 with the index built (a
start cut short after it), so it is dropped first if it exists (the next start builds it again).

Revision ID: 0009
"""

from alembic import op
from sqlalchemy import text

revision = "0009"
down_revision = "0008"

_WAITING = "status IN ('pending', 'failed')"


def upgrade() -> None:
    op.drop_index("ix_notifications_waiting", "notifications", if_exists=True)
    op.create_index("ix_notifications_waiting", "notifications", ["sink", "group_key", "signal", "created_at", "id"],
                    sqlite_where=text(_WAITING), postgresql_where=text(_WAITING))


def downgrade() -> None:
    op.drop_index("ix_notifications_waiting", "notifications", if_exists=True)

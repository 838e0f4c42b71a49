"""The outbox's alert index ends with the row id, in the order an alert's rows are read (time, then id).

Reading each alert's latest state (at a take-over, a reload, `ensure_firing`) then seeks one index entry per
alert instead of reading the whole outbox: rows written in the same instant are told apart by the index too, not
by sorting every row of the alert. Nothing is rewritten but the index.

Earlier releases ran SQLite migrations outside a transaction: a start cut short while the new index was built had
dropped the old one with the schema still at 0007, so the drop allows the index to be gone already (the next start
builds it).

Revision ID: 0008
"""

from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    op.drop_index("ix_notifications_alert", "notifications", if_exists=True)
    op.create_index("ix_notifications_alert", "notifications", ["sink", "group_key", "signal", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_notifications_alert", "notifications", if_exists=True)
    op.create_index("ix_notifications_alert", "notifications", ["sink", "group_key", "signal", "created_at"])

"""The message id a notification given up on last went out under when its message merged other rows too (a grouped
model change or drift message: `webhook-id` over its row ids, monitor.alerts.policy.group_message_id).

`llm-monitor alerts resend` naming one row of such a message (its message id or row id), or the message's own id,
sends again every row given up on with it, as one message under the same id. Rows stored before, and rows that went
out alone, have NULL: a re-send names them one by one, as before.

Revision ID: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"


def upgrade() -> None:
    op.add_column("notifications", sa.Column("sent_as", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notifications") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("sent_as")

"""When an operator last asked to send a notification given up on again (`llm-monitor alerts resend`).

Its `retry.give_up_after` counts from then, not from when it was written (kept as `created_at`, its place in its
alert's order): a re-sent row that failed once more was otherwise given up on at once. Rows stored before, and rows
never re-sent on request, have NULL: their window counts from `created_at`, as before.

Revision ID: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"


def upgrade() -> None:
    op.add_column("notifications", sa.Column("asked_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notifications") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("asked_at")

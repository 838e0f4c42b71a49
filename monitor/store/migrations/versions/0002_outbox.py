"""The notifications outbox.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "notifications",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("sink", sa.String(80), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("group_key", sa.String(200), nullable=False),
        sa.Column("signal", sa.String(80), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        _ts("next_attempt_at"),
        sa.Column("last_error", sa.Text),
        _ts("created_at"),
        _ts("delivered_at", True),
    )
    op.create_index("ix_notifications_message_id", "notifications", ["message_id"])
    op.create_index("ix_notifications_due", "notifications", ["status", "next_attempt_at"])
    op.create_index("ix_notifications_alert", "notifications", ["sink", "group_key", "signal", "created_at"])


def downgrade() -> None:
    op.drop_table("notifications")

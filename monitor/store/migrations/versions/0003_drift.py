"""Drift events and baselines.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "drift_events",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("canary", sa.String(80), nullable=False),
        sa.Column("target", sa.String(80), nullable=False),
        sa.Column("signal", sa.String(80), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.Column("accepted_at", sa.DateTime(timezone=True)),
        sa.Column("data", sa.JSON, nullable=False),
    )
    op.create_index("ix_drift_pair_state", "drift_events", ["canary", "target", "state"])
    op.create_index("ix_drift_opened_at", "drift_events", ["opened_at"])
    op.create_table(
        "baselines",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("canary", sa.String(80), nullable=False),
        sa.Column("target", sa.String(80), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
    )
    op.create_index("ix_baselines_pair_active", "baselines", ["canary", "target", "active"])


def downgrade() -> None:
    op.drop_table("baselines")
    op.drop_table("drift_events")

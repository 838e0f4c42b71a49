"""An index on observations.started_at: the newest calls of every canary (/api/observations without a filter),
exports and retention read by time alone.

Revision ID: 0004
"""

from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_index("ix_obs_time", "observations", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_obs_time", table_name="observations")

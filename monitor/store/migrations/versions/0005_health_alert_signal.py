"""Canary health alerts (canary.down, canary.recovered) move from signal "error" to "health" in the outbox.

They shared (sink, canary x target, signal) with the drift engine's error-rate alerts of the same pair, so the
outbox's latest state of one was taken for the other's. Rows already written are moved with them, so an alert
down before the upgrade is still ended by its recovery after it.

Revision ID: 0005
"""

from alembic import op

revision = "0005"
down_revision = "0004"

HEALTH_KINDS = "('canary.down', 'canary.recovered')"


def upgrade() -> None:
    op.execute(f"UPDATE notifications SET signal = 'health' WHERE signal = 'error' AND kind IN {HEALTH_KINDS}")


def downgrade() -> None:
    op.execute(f"UPDATE notifications SET signal = 'error' WHERE signal = 'health' AND kind IN {HEALTH_KINDS}")

"""A partial index of the outbox by `sent_as`, the grouped message a row was given up on in (0012).

`llm-monitor alerts resend` finds a grouped message's rows by that id (named by the operator, or brought along by
one of its rows): with no index each such re-send read the whole outbox, every row kept for
`storage.retention_days`. Only rows given up on in a grouped message have one, so the index holds those alone (the
lookup names ids, which implies NOT NULL: SQLite and PostgreSQL both use it).

Rows not given up on lose the id they kept (the daemon's own re-sends of a message given up on made a row due
again with it, and it stayed once the row was delivered: the message it was once given up on in, not the one it went
out in);
from this release on, every re-send clears it, and a re-send given up on again sets it to the id it went out under.
No row is removed, and no other column changes.

Revision ID: 0013
"""

from alembic import op
from sqlalchemy import text

revision = "0013"
down_revision = "0012"

_GROUPED = "sent_as IS NOT NULL"


def upgrade() -> None:
    op.execute("UPDATE notifications SET sent_as = NULL WHERE sent_as IS NOT NULL AND status <> 'dead'")
    op.drop_index("ix_notifications_sent_as", "notifications", if_exists=True)
    op.create_index("ix_notifications_sent_as", "notifications", ["sent_as"],
                    sqlite_where=text(_GROUPED), postgresql_where=text(_GROUPED))


def downgrade() -> None:
    op.drop_index("ix_notifications_sent_as", "notifications", if_exists=True)

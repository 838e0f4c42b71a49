"""The cache writes of a call, kept beside its other token counts: in all (Anthropic's
`cache_creation_input_tokens`) and those written for an hour. Both are billed above the input price.

Rows stored before have NULL in both: the count was not kept (their cost, stored with them, priced any writes as
plain input). Nothing is back-filled: the count cannot be told from the row.

Revision ID: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    op.add_column("observations", sa.Column("cache_write_input_tokens", sa.Integer, nullable=True))
    op.add_column("observations", sa.Column("cache_write_1h_input_tokens", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("observations") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("cache_write_1h_input_tokens")
        batch.drop_column("cache_write_input_tokens")

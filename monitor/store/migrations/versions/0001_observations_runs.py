"""Observations and runs.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("canary", sa.String(80), nullable=False),
        sa.Column("target", sa.String(80), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("replica", sa.String(120), nullable=False),
        _ts("started_at"), _ts("finished_at", True),
        sa.Column("samples", sa.Integer, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
    )
    op.create_index("ix_runs_started_at", "runs", ["started_at"])
    op.create_table(
        "observations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("canary", sa.String(80), nullable=False),
        sa.Column("target", sa.String(80), nullable=False),
        sa.Column("provider", sa.String(40), nullable=False),
        sa.Column("request_model", sa.String(200), nullable=False),
        sa.Column("sample_index", sa.Integer, nullable=False),
        _ts("started_at"),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("finish_reason", sa.String(32)),
        sa.Column("raw_finish_reason", sa.String(64)),
        sa.Column("response_model", sa.String(200)),
        sa.Column("system_fingerprint", sa.String(200)),
        sa.Column("request_id", sa.String(200)),
        sa.Column("input_tokens", sa.Integer),
        sa.Column("cached_input_tokens", sa.Integer),
        sa.Column("output_tokens", sa.Integer),
        sa.Column("reasoning_tokens", sa.Integer),
        sa.Column("tokens_estimated", sa.Boolean, nullable=False),
        sa.Column("cost_usd", sa.Float),
        sa.Column("latency_s", sa.Float),
        sa.Column("ttft_s", sa.Float),
        sa.Column("output_tokens_per_s", sa.Float),
        sa.Column("http_status", sa.Integer),
        sa.Column("retry_after_s", sa.Float),
        sa.Column("error_type", sa.String(32)),
        sa.Column("error_message", sa.Text),
        sa.Column("refusal_text", sa.Text),
        sa.Column("stream", sa.Boolean, nullable=False),
        sa.Column("tool_calls", sa.JSON, nullable=False),
        sa.Column("ratelimit", sa.JSON, nullable=False),
        sa.Column("checks", sa.JSON, nullable=False),
        sa.Column("refusal", sa.String(16)),
        sa.Column("refusal_score", sa.Float),
        sa.Column("signals", sa.JSON),
    )
    op.create_index("ix_observations_run_id", "observations", ["run_id"])
    op.create_index("ix_obs_pair_time", "observations", ["canary", "target", "started_at"])
    op.create_index("ix_obs_target_time", "observations", ["target", "started_at"])


def downgrade() -> None:
    op.drop_table("observations")
    op.drop_table("runs")

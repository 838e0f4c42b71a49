"""Table models. They stay in the store package; the rest of the code sees monitor.domain values."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, Text
from sqlmodel import Field, SQLModel


def _ts(index: bool = False, nullable: bool = False) -> Any:
    return Field(sa_column=Column(DateTime(timezone=True), index=index, nullable=nullable))


class RunRow(SQLModel, table=True):
    """One scheduled (or manual) run of a canary against a target: `samples` observations."""

    __tablename__ = "runs"
    id: str = Field(primary_key=True, max_length=32)
    canary: str = Field(max_length=80)
    target: str = Field(max_length=80)
    trigger: str = Field(default="schedule", max_length=16)  # schedule | manual | demo
    replica: str = Field(default="", max_length=120)
    started_at: datetime = _ts(index=True)
    finished_at: datetime | None = _ts(nullable=True)
    samples: int = 0
    failures: int = 0
    # running | done | cancelled | interrupted (left running by a process that died: closed by the next
    # leader, see monitor/interrupted.py)
    status: str = Field(default="running", max_length=16)


class ObservationRow(SQLModel, table=True):
    """One call and everything measured about it, full completion text included."""

    __tablename__ = "observations"
    __table_args__ = (Index("ix_obs_pair_time", "canary", "target", "started_at"),
                      Index("ix_obs_target_time", "target", "started_at"), Index("ix_obs_time", "started_at"))
    id: str = Field(primary_key=True, max_length=32)
    run_id: str = Field(default="", max_length=32, index=True)
    canary: str = Field(max_length=80)
    target: str = Field(max_length=80)
    provider: str = Field(max_length=40)
    request_model: str = Field(max_length=200)
    sample_index: int = 0
    started_at: datetime = _ts()
    text: str = Field(default="", sa_column=Column(Text, nullable=False))
    finish_reason: str | None = Field(default=None, max_length=32)
    raw_finish_reason: str | None = Field(default=None, max_length=64)
    response_model: str | None = Field(default=None, max_length=200)
    system_fingerprint: str | None = Field(default=None, max_length=200)
    request_id: str | None = Field(default=None, max_length=200)
    input_tokens: int | None = None
    cached_input_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    cache_write_input_tokens: int | None = None  # NULL: not reported (OpenAI-compatible, or stored before 0007)
    cache_write_1h_input_tokens: int | None = None
    tokens_estimated: bool = False
    cost_usd: float | None = None
    latency_s: float | None = None
    ttft_s: float | None = None
    output_tokens_per_s: float | None = None
    http_status: int | None = None
    retry_after_s: float | None = None
    error_type: str | None = Field(default=None, max_length=32)
    error_message: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    refusal_text: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    stream: bool = False
    tool_calls: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    ratelimit: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    checks: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    refusal: str | None = Field(default=None, max_length=16)
    refusal_score: float | None = None
    signals: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))

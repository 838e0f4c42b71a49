"""The outbox table: notifications waiting for (or done with) delivery to a sink."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, Text
from sqlmodel import Field, SQLModel

# The waiting statuses (`monitor.alerts.events.WAITING`), written out: a partial index's predicate is SQL, and a query
# uses the index only if it names these literals (a parameter's value is unknown when the plan is made).
WAITING_WHERE = "status IN ('pending', 'failed')"


def _ts(nullable: bool = False) -> Any:
    return Field(default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable))


class NotificationRow(SQLModel, table=True):
    """One message for one sink. `message_id` is stable across retries (the receiver's idempotency key).

    `payload` is sink-independent and holds no secrets: sinks render and sign it at send time.
    """

    __tablename__ = "notifications"
    # Also `ix_notifications_waiting` (sink, group_key, signal, created_at, id) WHERE `WAITING_WHERE`, a partial
    # index migration 0009 builds. Not declared here: a dialect's `where` argument loads that dialect as this module
    # is imported (PostgreSQL's and SQLite's: 3.3 MB in every process, the daemon's memory budget is 150 MB), and
    # the tables are built by the migrations alone. Likewise `ix_notifications_sent_as` (sent_as) WHERE sent_as IS
    # NOT NULL (0013): `alerts resend` finds a grouped message's rows by it.
    __table_args__ = (Index("ix_notifications_due", "status", "next_attempt_at"),
                      Index("ix_notifications_alert", "sink", "group_key", "signal", "created_at", "id"),
                      Index("ix_notifications_created", "created_at", "id"))  # 0010
    id: str = Field(primary_key=True, max_length=32)
    message_id: str = Field(max_length=64, index=True)
    sink: str = Field(max_length=80)
    kind: str = Field(max_length=32)
    group_key: str = Field(max_length=200)
    signal: str = Field(default="", max_length=80)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="pending", max_length=16)  # pending | failed | delivered | dead
    attempts: int = 0
    next_attempt_at: datetime = _ts()
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = _ts()
    delivered_at: datetime | None = _ts(nullable=True)
    # when an operator last asked to send it again (`alerts resend`; migration 0011): its `retry.give_up_after` counts
    # from its first attempt since (monitor.alerts.asked_window), `created_at` kept for the record and its alert's order
    asked_at: datetime | None = _ts(nullable=True)
    # the message id of the grouped message it was given up on in (its rows' `group_message_id`; NULL: alone, or
    # stored before migration 0012): `alerts resend` sends those rows again together, under that id
    sent_as: str | None = Field(default=None, max_length=64, nullable=True)

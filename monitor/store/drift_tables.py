"""Table models for drift events and baselines (the drift engine's values are stored as JSON beside keys)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Text
from sqlmodel import Field, SQLModel


class DriftEventRow(SQLModel, table=True):
    __tablename__ = "drift_events"
    id: str = Field(primary_key=True, max_length=32)
    canary: str = Field(max_length=80)
    target: str = Field(max_length=80)
    signal: str = Field(max_length=80)
    kind: str = Field(max_length=16)
    state: str = Field(max_length=16)
    opened_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    resolved_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    accepted_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    data: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


class BaselineRow(SQLModel, table=True):
    __tablename__ = "baselines"
    id: str = Field(primary_key=True, max_length=32)
    canary: str = Field(max_length=80)
    target: str = Field(max_length=80)
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    source: str = Field(max_length=16)  # first_n | pinned | accepted | reset
    note: str = Field(default="", sa_column=Column(Text, nullable=False))
    active: bool = True
    data: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))

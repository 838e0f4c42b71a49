"""latency / ttft: total latency or time to first chunk, from the client's own clock, within bounds."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from monitor.checks.base import BaseCheck, Context, Verdict, ordered, within
from monitor.domain import Observation


class _Seconds(BaseCheck):
    min_s: float | None = Field(default=None, ge=0)
    max_s: float | None = Field(default=None, gt=0)

    @field_validator("max_s")
    @classmethod
    def _order(cls, v: float | None, info: ValidationInfo) -> float | None:
        ordered(info.data.get("min_s"), v, "min_s", "max_s")
        return v

    @model_validator(mode="after")
    def _some_bound(self) -> _Seconds:
        if self.min_s is None and self.max_s is None:
            raise ValueError("set min_s, max_s or both")
        return self


class LatencyCheck(_Seconds):
    """Pass when the request-start-to-end latency is within [min_s, max_s]."""

    type: Literal["latency"]


class TtftCheck(_Seconds):
    """Pass when the time to first content chunk is within bounds (streaming calls only)."""

    type: Literal["ttft"]


def latency(spec: LatencyCheck, obs: Observation, ctx: Context) -> Verdict:
    """Check the total latency."""
    if obs.call.latency_s is None:
        return None, "no latency measured"
    return within(round(obs.call.latency_s, 3), spec.min_s, spec.max_s, "latency_s")


def ttft(spec: TtftCheck, obs: Observation, ctx: Context) -> Verdict:
    """Check the time to first chunk."""
    if obs.call.ttft_s is None:
        return None, "no time to first chunk (not a streaming call)"
    return within(round(obs.call.ttft_s, 3), spec.min_s, spec.max_s, "ttft_s")


__all__ = ["LatencyCheck", "TtftCheck", "latency", "ttft"]

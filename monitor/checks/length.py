"""length: the completion's size in characters or words stays within bounds."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from monitor.checks.base import BaseCheck, Context, Verdict, ordered, within
from monitor.domain import Observation


class LengthCheck(BaseCheck):
    """Pass when the stripped completion has between ``min`` and ``max`` characters or words (inclusive)."""

    type: Literal["length"]
    unit: Literal["chars", "words"] = "chars"
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)

    @field_validator("max")
    @classmethod
    def _order(cls, v: int | None, info: ValidationInfo) -> int | None:
        ordered(info.data.get("min"), v, "min", "max")
        return v

    @model_validator(mode="after")
    def _some_bound(self) -> LengthCheck:
        if self.min is None and self.max is None:
            raise ValueError("set min, max or both")
        return self


def measure(text: str, unit: str) -> int:
    """Count characters (of the stripped text) or whitespace-separated words."""
    return len(text.strip()) if unit == "chars" else len(text.split())


def length(spec: LengthCheck, obs: Observation, ctx: Context) -> Verdict:
    """Check the completion's length."""
    return within(measure(obs.call.text, spec.unit), spec.min, spec.max, spec.unit)


__all__ = ["LengthCheck", "length", "measure"]

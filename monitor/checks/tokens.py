"""tokens: the server-reported output token count stays within bounds."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from monitor.checks.base import BaseCheck, Context, Verdict, ordered, within
from monitor.domain import Observation


class TokensCheck(BaseCheck):
    """Pass when ``usage.output_tokens`` is within [min, max].

    Unknown usage makes the check inapplicable (never read as zero); locally estimated counts are accepted only
    with ``allow_estimated``.
    """

    type: Literal["tokens"]
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)
    allow_estimated: bool = False

    @field_validator("max")
    @classmethod
    def _order(cls, v: int | None, info: ValidationInfo) -> int | None:
        ordered(info.data.get("min"), v, "min", "max")
        return v

    @model_validator(mode="after")
    def _some_bound(self) -> TokensCheck:
        if self.min is None and self.max is None:
            raise ValueError("set min, max or both")
        return self


def tokens(spec: TokensCheck, obs: Observation, ctx: Context) -> Verdict:
    """Check the output token count from usage."""
    usage = obs.call.usage
    if usage.output_tokens is None:
        return None, "server reported no output token count"
    if usage.estimated and not spec.allow_estimated:
        return None, f"output tokens were estimated locally ({usage.output_tokens}); set allow_estimated"
    passed, detail = within(usage.output_tokens, spec.min, spec.max, "output tokens")
    return passed, detail + (" (estimated)" if usage.estimated else "")


__all__ = ["TokensCheck", "tokens"]

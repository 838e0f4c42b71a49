"""one_of: the normalised completion is one of a closed set of answers (labels, Yes/No, options)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from monitor.checks.base import BaseCheck, Context, Verdict, clip
from monitor.checks.equals import normalise
from monitor.domain import Observation


class OneOfCheck(BaseCheck):
    """Pass when the completion, normalised as in ``equals``, equals one of ``values``."""

    type: Literal["one_of"]
    values: list[str] = Field(min_length=1)
    case_sensitive: bool = False

    @field_validator("values")
    @classmethod
    def _non_empty(cls, v: list[str]) -> list[str]:
        if any(not s.strip() for s in v):
            raise ValueError(f"values must not contain empty strings, got {v!r}")
        return v


def one_of(spec: OneOfCheck, obs: Observation, ctx: Context) -> Verdict:
    """Check that the completion is one of the allowed answers."""
    got = normalise(obs.call.text, case_sensitive=spec.case_sensitive)
    allowed = {normalise(v, case_sensitive=spec.case_sensitive): v for v in spec.values}
    if got in allowed:
        return True, f"answer {allowed[got]!r}"
    return False, f"got {clip(got)!r}, not one of {spec.values!r}"


__all__ = ["OneOfCheck", "one_of"]

"""length: the completion's size in characters or words stays within bounds."""

from __future__ import annotations

from typing import Literal

from monitor.checks.base import Context, CountBounds, Verdict, count_bound, within
from monitor.domain import Observation

MAX_LENGTH = 10_000_000  # characters or words of a length bound


class LengthCheck(CountBounds):
    """Pass when the stripped completion has between ``min`` and ``max`` characters or words (inclusive)."""

    type: Literal["length"]
    # a completion of the largest max_tokens (1,000,000) runs to a few million characters: a bound past this is a typo
    min: int | None = count_bound(MAX_LENGTH)
    max: int | None = count_bound(MAX_LENGTH)
    unit: Literal["chars", "words"] = "chars"


def measure(text: str, unit: str) -> int:
    """Count characters (of the stripped text) or whitespace-separated words."""
    return len(text.strip()) if unit == "chars" else len(text.split())


def length(spec: LengthCheck, obs: Observation, ctx: Context) -> Verdict:
    """Check the completion's length."""
    return within(measure(obs.call.text, spec.unit), spec.min, spec.max, spec.unit)


__all__ = ["LengthCheck", "length", "measure"]

"""regex: the completion matches (or, negated, does not match) a regular expression."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from monitor.checks import patterns
from monitor.checks.base import BaseCheck, Context, Verdict, clip
from monitor.domain import Observation

if TYPE_CHECKING:
    from regex import Pattern


class RegexCheck(BaseCheck):
    r"""Pass when ``pattern`` is found (``mode: search``) or matches the whole stripped text (``fullmatch``).

    ``min_count`` requires that many non-overlapping matches (e.g. bullet lines); ``negate`` inverts the result.
    A match that runs past 1 s (``patterns.TIMEOUT_S``: catastrophic backtracking) gives no verdict. Patterns are
    Python's, Unicode-aware: ``\d`` matches any script's decimal digits (``４２``, ``٤٢``) and ``\w`` any script's
    letters; write ``[0-9]`` (or start the pattern with ``(?a)``) where only ASCII digits will do.
    """

    type: Literal["regex"]
    pattern: str = Field(min_length=1, max_length=patterns.MAX_PATTERN)
    flags: list[Literal["i", "m", "s", "x"]] = []
    mode: Literal["search", "fullmatch"] = "search"
    min_count: int | None = Field(default=None, ge=1)
    max_count: int | None = Field(default=None, ge=0)
    negate: bool = False

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        patterns.compile_pattern(v)
        return v

    @model_validator(mode="after")
    def _counts(self) -> RegexCheck:
        if (self.min_count is not None or self.max_count is not None) and self.mode != "search":
            raise ValueError("min_count/max_count need mode 'search'")
        if self.min_count is not None and self.max_count is not None and self.min_count > self.max_count:
            raise ValueError(f"min_count ({self.min_count}) must be <= max_count ({self.max_count})")
        return self

    def compiled(self) -> Pattern[str]:
        """Return the compiled pattern with the declared flags."""
        return patterns.compile_pattern(self.pattern, patterns.flags(self.flags))


def regex(spec: RegexCheck, obs: Observation, ctx: Context) -> Verdict:
    """Check the completion against the regular expression."""
    rx, text = spec.compiled(), obs.call.text
    try:
        if spec.mode == "fullmatch":
            ok, what = patterns.fullmatch(rx, text.strip()) is not None, "whole text matches"
        elif spec.min_count is not None or spec.max_count is not None:
            n = patterns.count(rx, text)
            low, high = spec.min_count or 0, spec.max_count
            ok, what = n >= low and (high is None or n <= high), f"{n} matches"
        else:
            m = patterns.search(rx, text)
            ok, what = m is not None, (f"matched {clip(m.group(0), 40)!r}" if m else "no match")
    except patterns.PatternTimeout as e:
        return None, f"no verdict: {e}"
    if spec.negate:
        return (not ok), f"negated: {what}"
    return ok, what if ok else f"{what} for /{clip(spec.pattern, 60)}/ in {clip(text)!r}"


__all__ = ["RegexCheck", "regex"]

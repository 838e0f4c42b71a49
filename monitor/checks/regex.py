"""regex: the completion matches (or, negated, does not match) a regular expression."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from monitor.checks.base import BaseCheck, Context, Verdict, clip
from monitor.domain import Observation

_FLAGS = {"i": re.I, "m": re.M, "s": re.S, "x": re.X}


class RegexCheck(BaseCheck):
    """Pass when ``pattern`` is found (``mode: search``) or matches the whole stripped text (``fullmatch``).

    ``min_count`` requires that many non-overlapping matches (e.g. bullet lines); ``negate`` inverts the result.
    """

    type: Literal["regex"]
    pattern: str = Field(min_length=1)
    flags: list[Literal["i", "m", "s", "x"]] = []
    mode: Literal["search", "fullmatch"] = "search"
    min_count: int | None = Field(default=None, ge=1)
    max_count: int | None = Field(default=None, ge=0)
    negate: bool = False

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as e:
            raise ValueError(f"invalid regular expression {v!r}: {e}") from None
        return v

    @model_validator(mode="after")
    def _counts(self) -> RegexCheck:
        if (self.min_count is not None or self.max_count is not None) and self.mode != "search":
            raise ValueError("min_count/max_count need mode 'search'")
        if self.min_count is not None and self.max_count is not None and self.min_count > self.max_count:
            raise ValueError(f"min_count ({self.min_count}) must be <= max_count ({self.max_count})")
        return self

    def compiled(self) -> re.Pattern[str]:
        """Return the compiled pattern with the declared flags."""
        flags = 0
        for f in self.flags:
            flags |= _FLAGS[f]
        return re.compile(self.pattern, flags)


def regex(spec: RegexCheck, obs: Observation, ctx: Context) -> Verdict:
    """Check the completion against the regular expression."""
    rx, text = spec.compiled(), obs.call.text
    if spec.mode == "fullmatch":
        ok, what = rx.fullmatch(text.strip()) is not None, "whole text matches"
    elif spec.min_count is not None or spec.max_count is not None:
        n = sum(1 for _ in rx.finditer(text))
        low, high = spec.min_count or 0, spec.max_count
        ok, what = n >= low and (high is None or n <= high), f"{n} matches"
    else:
        m = rx.search(text)
        ok, what = m is not None, (f"matched {clip(m.group(0), 40)!r}" if m else "no match")
    if spec.negate:
        return (not ok), f"negated: {what}"
    return ok, what if ok else f"{what} for /{clip(spec.pattern, 60)}/ in {clip(text)!r}"


__all__ = ["RegexCheck", "regex"]

"""number: extract the numeric answer from the completion and compare it with the expected value."""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import Field, field_validator

from monitor.checks.base import BaseCheck, Context, Verdict, clip
from monitor.domain import Observation

_NUM = r"[-+−]?(?:\d{1,3}(?:[,\u202f\u00a0]\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+−]?\.\d+"
_NUMBER = re.compile(rf"(?<![\w.])(?:{_NUM})(?![\w])")
# Explicit answer markers, most specific first; the last occurrence of the first kind found wins.
_MARKERS = [
    re.compile(rf"\\boxed\{{\s*({_NUM})\s*\}}"),
    re.compile(rf"\[\s*answer\s*\]\s*[:=]?\s*\**\s*({_NUM})", re.I),
    re.compile(rf"\banswer\s*(?:is|:|=)\s*[:=]?\s*\**\s*\$?\s*({_NUM})", re.I),
    re.compile(rf"(?:=|≈)\s*\**\s*\$?\s*({_NUM})\s*\**\s*\.?\s*$", re.M),
]


class NumberCheck(BaseCheck):
    """Pass when the extracted number is within tolerance of ``value``.

    ``extract``: ``answer`` (default) takes an explicit marker (``\\boxed{}``, ``[Answer]``, ``Answer: ``, a
    trailing ``= N``) and falls back to the last number; ``last``/``first`` take that number; ``only`` demands
    that the completion is nothing but the number. Thousands separators are accepted. The tolerance is
    ``max(tolerance, rel_tolerance * |value|)``.
    """

    type: Literal["number"]
    value: float
    tolerance: float = Field(default=0.0, ge=0)
    rel_tolerance: float = Field(default=0.0, ge=0)
    extract: Literal["answer", "last", "first", "only"] = "answer"

    @field_validator("value")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError(f"value must be finite, got {v!r}")
        return v


def to_float(token: str) -> float:
    """Parse a matched number token (thousands separators, unicode minus)."""
    cleaned = re.sub(r"[,\u202f\u00a0]", "", token).replace("−", "-")
    return float(cleaned)


def extract_number(text: str, how: str) -> float | None:
    """Return the answer number per the extraction strategy, or None."""
    if how == "only":
        stripped = text.strip().strip("*`$ .")
        return to_float(stripped) if re.fullmatch(_NUM, stripped) else None
    if how == "answer":
        for marker in _MARKERS:
            hits = marker.findall(text)
            if hits:
                return to_float(hits[-1])
        how = "last"
    found = _NUMBER.findall(text)
    if not found:
        return None
    return to_float(found[0] if how == "first" else found[-1])


def number(spec: NumberCheck, obs: Observation, ctx: Context) -> Verdict:
    """Check the numeric answer."""
    got = extract_number(obs.call.text, spec.extract)
    if got is None:
        return False, f"no number found ({spec.extract}) in {clip(obs.call.text)!r}"
    allowed = max(spec.tolerance, spec.rel_tolerance * abs(spec.value))
    if abs(got - spec.value) <= allowed:
        return True, f"got {got:g}, want {spec.value:g}"
    return False, f"got {got:g}, want {spec.value:g} ± {allowed:g}"


__all__ = ["NumberCheck", "extract_number", "number"]

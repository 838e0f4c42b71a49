"""number: extract the numeric answer from the completion and compare it with the expected value."""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import Field, field_validator

from monitor.checks.base import BaseCheck, Context, Verdict, clip
from monitor.domain import Observation

# Digits are any script's decimal digits (\d is Unicode's Nd, as float() reads them): full-width ４２, Arabic-Indic ٤٢,
# Devanagari ४२. Their separators beside ASCII's: the Arabic thousands separator and decimal separator (٬ ٫), the
# full-width comma, full stop, plus and minus (， ． ＋ －), and U+2212 minus.
_GROUP = "[,\u202f\u00a0\u066c\uff0c]"
_POINT = "[.\u066b\uff0e]"
_SIGN = "[-+\u2212\uff0b\uff0d]"
_NUM = rf"{_SIGN}?(?:\d{{1,3}}(?:{_GROUP}\d{{3}})+|\d+)(?:{_POINT}\d+)?(?:[eE][-+]?\d+)?|{_SIGN}?{_POINT}\d+"
# Letters of scripts written without spaces between words (Thai, its digits aside; Hangul; kana; Han) may touch a
# number ("答えは４２です"); any other letter or digit, or a decimal point, next to one makes it part of a word or
# another number ("x42", "42abc", "v1.5"), not an answer.
_SPACELESS = "\u0e00-\u0e4f\u0e5a-\u0e7f\u1100-\u11ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af" \
    "\uf900-\ufaff\uff66-\uff9f"
_NUMBER = re.compile(rf"(?<!{_POINT})(?<![^\W{_SPACELESS}])(?:{_NUM})(?![^\W{_SPACELESS}])")
_SEPARATORS = str.maketrans({"\u066b": ".", "\uff0e": ".", "\u2212": "-", "\uff0d": "-", "\uff0b": "+",
                             **dict.fromkeys(",\u202f\u00a0\u066c\uff0c", "")})
# Explicit answer markers, most specific first; the last occurrence of the first kind found wins.
_MARKERS = [
    re.compile(rf"\\boxed\{{\s*({_NUM})\s*\}}"),
    re.compile(rf"\[\s*answer\s*\]\s*[:=]?\s*\**\s*({_NUM})", re.I),
    re.compile(rf"\banswer\s*(?:is|:|=)\s*[:=]?\s*\**\s*\$?\s*({_NUM})", re.I),
    re.compile(rf"(?:=|≈|＝)\s*\**\s*\$?\s*({_NUM})\s*\**\s*\.?\s*$", re.M),
]


class NumberCheck(BaseCheck):
    """Pass when the extracted number is within tolerance of ``value``.

    ``extract``: ``answer`` (default) takes an explicit marker (``\\boxed{}``, ``[Answer]``, ``Answer: ``, a
    trailing ``= N``) and falls back to the last number; ``last``/``first`` take that number; ``only`` demands
    that the completion is nothing but the number. Thousands separators are accepted. Digits may be any script's
    decimal digits (full-width ``４２``, Arabic-Indic ``٤٢``, Devanagari ``४२``: an answer in another script is the
    same number), with the Arabic and full-width separators (``٬``/``٫``, ``，``/``．``); a number may touch the
    letters of scripts written without spaces (``答えは４２です``), not others (``x42``). The tolerance is
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
    """Parse a matched number token (thousands separators, decimal separators and signs of any script's digits)."""
    return float(token.translate(_SEPARATORS))


def extract_number(text: str, how: str) -> float | None:
    """Return the answer number per the extraction strategy, or None."""
    if how == "only":
        # a full stop ends the answer (。 and ． end a sentence of full-width text); one before it is its point (.5)
        stripped = text.strip().lstrip("*`$ ").rstrip("*`$ .\u3002\uff0e")
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

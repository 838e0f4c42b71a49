"""equals: the whole completion equals the expected answer after normalisation."""

from __future__ import annotations

import string
import unicodedata
from typing import Literal

from pydantic import Field

from monitor.checks.base import BaseCheck, Context, Verdict, clip
from monitor.domain import Observation

# Trimmed from both ends: ASCII punctuation, markdown emphasis/code marks, typographic quotes, CJK full stops.
_TRIM = string.punctuation + string.whitespace + "“”‘’«»„「」『』。．！？、，：；…·"


class EqualsCheck(BaseCheck):
    """Pass when the normalised completion equals the normalised value.

    Normalisation (each step optional): Unicode NFKC, case folding, whitespace collapsed to single spaces,
    punctuation and quotes trimmed from both ends (so ``"**Paris.**"`` equals ``Paris``). NFKC folds full-width
    forms (``４２`` equals ``42``) but not another script's digits (``٤٢`` is not ``42``: an answer in another
    script is a change worth seeing); the ``number`` check compares values whatever the digits.
    """

    type: Literal["equals"]
    value: str = Field(min_length=1)
    case_sensitive: bool = False
    collapse_whitespace: bool = True
    trim_punctuation: bool = True


def normalise(text: str, *, case_sensitive: bool = False, collapse_whitespace: bool = True,
              trim_punctuation: bool = True) -> str:
    """Normalise an answer for comparison."""
    s = unicodedata.normalize("NFKC", text)
    if not case_sensitive:
        s = s.casefold()
    if collapse_whitespace:
        s = " ".join(s.split())
    return s.strip(_TRIM) if trim_punctuation else s.strip()


def equals(spec: EqualsCheck, obs: Observation, ctx: Context) -> Verdict:
    """Check that the completion equals the expected value after normalisation."""
    opts = {"case_sensitive": spec.case_sensitive, "collapse_whitespace": spec.collapse_whitespace,
            "trim_punctuation": spec.trim_punctuation}
    got, want = normalise(obs.call.text, **opts), normalise(spec.value, **opts)
    return (True, f"equals {want!r}") if got == want else (False, f"got {clip(got)!r}, want {want!r}")


__all__ = ["EqualsCheck", "equals", "normalise"]

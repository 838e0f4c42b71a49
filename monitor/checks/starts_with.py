"""starts_with: the completion opens with the required text."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from monitor.checks.base import BaseCheck, Context, Verdict, clip
from monitor.domain import Observation

_MARKDOWN_LEAD = " \t\r\n*_#>`\"'"


class StartsWithCheck(BaseCheck):
    """Pass when the completion starts with ``value``, ignoring leading whitespace.

    With ``ignore_markdown`` (default) leading emphasis, heading and quote marks are skipped too, so
    ``**Verdict:** ...`` starts with ``Verdict:``.
    """

    type: Literal["starts_with"]
    value: str = Field(min_length=1)
    case_sensitive: bool = False
    ignore_markdown: bool = True


def starts_with(spec: StartsWithCheck, obs: Observation, ctx: Context) -> Verdict:
    """Check the opening of the completion."""
    fold = (lambda s: s) if spec.case_sensitive else str.casefold
    text, want = fold(obs.call.text), fold(spec.value)
    heads = [text.lstrip()]
    if spec.ignore_markdown:
        heads.append(text.lstrip(_MARKDOWN_LEAD))
    if any(h.startswith(want) for h in heads):
        return True, f"starts with {spec.value!r}"
    return False, f"starts with {clip(heads[0], 40)!r}, want {spec.value!r}"


__all__ = ["StartsWithCheck", "starts_with"]

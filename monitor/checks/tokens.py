"""tokens: the server-reported output token count stays within bounds."""

from __future__ import annotations

from typing import Literal

from monitor.checks.base import Context, CountBounds, Verdict, count_bound, within
from monitor.domain import MAX_ANSWER_TOKENS, Observation


class TokensCheck(CountBounds):
    """Pass when ``usage.output_tokens`` is within [min, max].

    Unknown usage makes the check inapplicable (never read as zero); locally estimated counts are accepted only
    with ``allow_estimated``.
    """

    type: Literal["tokens"]
    # no answer is longer than the largest max_tokens a canary may ask for
    min: int | None = count_bound(MAX_ANSWER_TOKENS)
    max: int | None = count_bound(MAX_ANSWER_TOKENS)
    allow_estimated: bool = False


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

"""refusal: did the model refuse or answer, as classified by the refusal detector or the wire facts."""

from __future__ import annotations

from typing import Literal

from monitor.checks.base import BaseCheck, Context, Verdict
from monitor.domain import ErrorType, FinishReason, Observation


class RefusalCheck(BaseCheck):
    """Pass when the model refused (``expect: refused``) or answered (``expect: answered``).

    Reads ``Observation.refusal`` (none|partial|full, set by the refusal detector before checks run); a partial
    refusal counts as ``partial_counts_as``. Wire signals count as a full refusal even without the detector:
    a ``refusal`` field, finish reason ``content_filter``/``refusal`` or a content-filter error.
    """

    type: Literal["refusal"]
    expect: Literal["refused", "answered"]
    partial_counts_as: Literal["refused", "answered"] = "refused"


def classify(obs: Observation) -> str | None:
    """Return none|partial|full for the observation, or None when unknown."""
    call = obs.call
    if call.error_type is ErrorType.CONTENT_FILTER or call.refusal_text:
        return "full"
    if call.finish_reason in (FinishReason.CONTENT_FILTER, FinishReason.REFUSAL):
        return "full"
    return obs.refusal


def refusal(spec: RefusalCheck, obs: Observation, ctx: Context) -> Verdict:
    """Check the refusal classification against the expectation."""
    kind = classify(obs)
    if kind is None:
        if not obs.call.ok:
            return None, f"call failed ({obs.call.error_type})"
        return None, "refusal not classified (run the refusal detector before the checks)"
    got = "answered" if kind == "none" else "refused" if kind == "full" else spec.partial_counts_as
    return got == spec.expect, f"{got} (refusal={kind}), expected {spec.expect}"


__all__ = ["RefusalCheck", "classify", "refusal"]

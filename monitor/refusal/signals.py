"""Layer 1: refusals the provider states outright, before any text is read."""

from __future__ import annotations

from monitor.domain import ErrorType, FinishReason
from monitor.refusal.verdict import RefusalVerdict


def _value(x: object) -> str | None:
    if x is None:
        return None
    return str(getattr(x, "value", x)).strip().lower() or None


def provider_verdict(
    text: str = "",
    *,
    finish_reason: FinishReason | str | None = None,
    refusal_text: str | None = None,
    error_type: ErrorType | str | None = None,
) -> RefusalVerdict | None:
    """Return a verdict if the provider signalled a refusal, else None.

    A content-policy error, Anthropic's ``refusal`` stop reason and a non-empty OpenAI ``refusal`` field are
    full refusals. ``content_filter`` as a finish reason cuts the answer off: with no text it is a full refusal,
    after some text a partial one (the user got the beginning of an answer).
    """
    if _value(error_type) == ErrorType.CONTENT_FILTER.value:
        return RefusalVerdict("full", 1.0, "provider")
    if refusal_text is not None and refusal_text.strip():
        return RefusalVerdict("full", 1.0, "provider")
    reason = _value(finish_reason)
    if reason == FinishReason.REFUSAL.value:
        return RefusalVerdict("full", 1.0, "provider")
    if reason == FinishReason.CONTENT_FILTER.value:
        return RefusalVerdict("partial" if text.strip() else "full", 1.0, "provider")
    return None

"""What an upstream answered, checked before anything else uses it.

Parsers take what the wire says: the SDK builds its models without validating them, and a stream's chunks are
plain JSON. An OpenAI-compatible server with a bug can answer `"model": {...}`, `"content": 5`, token counts as
strings, negative or beyond any store's integer column, or a 100,000-character model name. Used as they are, such
values crash pricing and checks (the observation is lost), or are refused by the store (and block the writes
behind them), or become unbounded metric labels. Here each is dropped, and the call becomes a `bad_response`
whose message names the field and the value: a malformed answer is data, like any other upstream failure.

Text is also made encodable: a JSON escape of half a UTF-16 surrogate pair (``"\\ud800"``) decodes to a string no
store, log line or metrics exposition can encode as UTF-8: the observation would be lost. Halves of a pair split
across stream chunks are joined; a lone half becomes U+FFFD, as invalid UTF-8 bytes on the wire do, and the call
stands.
"""

from __future__ import annotations

import math
from typing import Any

from monitor.domain import MAX_TOKENS, SURROGATE, CallResult, ErrorType, Usage, encodable
from monitor.providers.base import short
from monitor.providers.shape import shown

# Seconds a Retry-After may ask for: rate limits reset within a day, and a date further off (2099: 2.3e9 s) says
# nothing a client can act on. The header itself stays in `CallResult.ratelimit`.
MAX_RETRY_AFTER_S = 86_400.0
# Names the answer gives, by the attribute they are kept in: what the answer calls it, and the most characters
# its store column (and a metric label) takes.
NAMES = {"response_model": ("model", 200), "system_fingerprint": ("system_fingerprint", 200),
          "response_id": ("id", 200), "request_id": ("request id", 200), "raw_finish_reason": ("finish_reason", 64)}


# The token counts of a `Usage`.
COUNTS = ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_tokens", "cache_write_input_tokens",
          "cache_write_1h_input_tokens")
_TEXTS = ("text", "refusal_text", "error_message", *NAMES)


def vet(result: CallResult) -> CallResult:
    """Drop the fields of `result` that are of the wrong type or out of range; say which in a `bad_response`."""
    problems: list[str] = []
    for attr in _TEXTS:
        value = getattr(result, attr)
        if isinstance(value, str) and SURROGATE.search(value):
            setattr(result, attr, encodable(value))
    result.tool_calls = [{k: encodable(v) if isinstance(v, str) else v for k, v in c.items()}
                         if isinstance(c, dict) else c for c in result.tool_calls]
    if not isinstance(result.text, str):
        problems.append(f"content {shown(result.text)} is not text")
        result.text = ""
    if result.refusal_text is not None and not isinstance(result.refusal_text, str):
        problems.append(f"refusal {shown(result.refusal_text)} is not text")
        result.refusal_text = None
    for attr, (name, longest) in NAMES.items():
        value = getattr(result, attr)
        if value is not None and (not isinstance(value, str) or len(value) > longest):
            problems.append(f"{name} {shown(value)} is not a name of at most {longest} characters")
            setattr(result, attr, None)
            if attr == "raw_finish_reason":
                result.finish_reason = None
    result.usage, bad = _usage(result.usage)
    problems += bad
    calls = [c for c in result.tool_calls
             if isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("arguments"), str)]
    if len(calls) != len(result.tool_calls):
        problems.append("a tool call without a text name and arguments")
        result.tool_calls = calls
    wait = result.retry_after_s
    if wait is not None and not (math.isfinite(wait) and 0 <= wait <= MAX_RETRY_AFTER_S):
        result.retry_after_s = None  # a header, not the answer: not worth failing the call for
    if problems and result.error_type is None:
        result.error_type = ErrorType.BAD_RESPONSE
        result.error_message = short("malformed response: " + "; ".join(problems))
    return result


def _usage(usage: Usage) -> tuple[Usage, list[str]]:
    problems: list[str] = []
    counts: dict[str, int | None] = {}
    for name in COUNTS:
        value: Any = getattr(usage, name)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKENS):
            problems.append(f"{name} {shown(value)} is not a token count (0 to {MAX_TOKENS:,})")
            value = None
        counts[name] = value
    if not problems and all(counts[n] is getattr(usage, n) for n in counts):  # `is`: 3.0 == 3, and 3.0 was made 3
        return usage, []
    return Usage(**counts, estimated=usage.estimated), problems  # type: ignore[arg-type]

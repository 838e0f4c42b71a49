"""Keep a target's API key out of what its provider returns.

Some upstreams echo the key they were sent: LiteLLM-style proxies answer 401 with "Received API Key = sk-...",
and a misbehaving server may put it anywhere in a body. What a provider returns is stored, served by the JSON
API and sent in alert payloads, so the key is replaced by ``<redacted>`` in every text field of the result
before anyone sees it. Keys shorter than ``MIN_SECRET`` characters are not scrubbed (replacing a one-letter
placeholder key would mangle every completion); real keys are far longer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from monitor.domain import CallResult
from monitor.providers.base import CUT, ChatRequest, Provider

MIN_SECRET = 8
MIN_PARTIAL = 4  # the start of a key cut off at the end of a text: this many characters or more are scrubbed
REDACTED = "<redacted>"


def scrub_text(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret in `text`, and the start of one that a cut (`providers.base.short`:
    text ending in an ellipsis) left at the end."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
        if text.endswith(CUT):
            body = text[:-len(CUT)]
            k = next((k for k in range(len(secret) - 1, MIN_PARTIAL - 1, -1) if body.endswith(secret[:k])), 0)
            if k:
                text = body[:-k] + REDACTED + CUT
    return text


def scrub_call(result: CallResult, secrets: tuple[str, ...]) -> CallResult:
    """Remove the secrets from every text field of a call result (in place; returns it)."""
    if not secrets:
        return result
    result.text = scrub_text(result.text, secrets)
    for name in ("error_message", "refusal_text", "response_model", "system_fingerprint", "request_id", "response_id",
                 "raw_finish_reason"):
        value = getattr(result, name)
        if value is not None:
            setattr(result, name, scrub_text(value, secrets))
    result.ratelimit = {k: scrub_text(v, secrets) for k, v in result.ratelimit.items()}
    result.tool_calls = [_scrub_json(c, secrets) for c in result.tool_calls]
    return result


def _scrub_json(value: Any, secrets: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return scrub_text(value, secrets)
    if isinstance(value, dict):
        return {k: _scrub_json(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_json(v, secrets) for v in value]
    return value


class Scrubbing:
    """A provider whose results never carry the secrets it was built with."""

    def __init__(self, inner: Provider, secrets: Iterable[str | None]):
        self.inner = inner
        self.name, self.server_address = inner.name, inner.server_address
        self.secrets = tuple(s for s in secrets if s and len(s) >= MIN_SECRET)

    async def complete(self, request: ChatRequest) -> CallResult:
        return scrub_call(await self.inner.complete(request), self.secrets)

    async def aclose(self) -> None:
        await self.inner.aclose()

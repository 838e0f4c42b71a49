"""Keep a target's API key out of what its provider returns.

Some upstreams echo the key they were sent: LiteLLM-style proxies answer 401 with "Received API Key = sk-...",
and a misbehaving server may put it anywhere in a body. What a provider returns is stored, served by the JSON
API and sent in alert payloads, so the key is replaced by ``<redacted>`` in every text field of the result
before anyone sees it, and so is the start of a key where a message was cut short (an error message is cut at 300
characters, the values it shows at 40). Keys shorter than ``MIN_SECRET`` characters (monitor.min_secret) are not
scrubbed (replacing a one-letter placeholder key would mangle every completion); real keys are far longer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from monitor.domain import CallResult
from monitor.min_secret import MIN_SECRET
from monitor.providers.base import CUT, ChatRequest, Provider
from monitor.providers.vet import NAMES

REDACTED = "<redacted>"
# A secret a cut (`providers.base.short`, the values messages show: both end the cut with CUT) went through is
# there only as its start, which is replaced too from this many characters on.
MIN_CUT = 4


def scrub_text(text: str, secrets: Iterable[str], shortest: Mapping[str, int] | None = None) -> str:
    """Replace every occurrence of each secret in `text`, and the start of one where the text was cut short: from
    MIN_CUT characters on, or from `shortest[secret]` for a secret named there (a webhook URL's start up to its host
    is no secret: `store scrub` replaces it only once it holds more).

    The longest first: a secret inside another (a key also sent in a Cookie beside a session) would otherwise be
    replaced within the longer one, which then no longer matches, and the rest of it stayed."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
        if CUT in text:
            text = _scrub_cut(text, secret, max(MIN_CUT, (shortest or {}).get(secret, MIN_CUT)))
    return text


def _scrub_cut(text: str, secret: str, least: int) -> str:
    parts = text.split(CUT)
    for i, part in enumerate(parts[:-1]):
        for n in range(len(secret) - 1, least - 1, -1):
            if part.endswith(secret[:n]):
                parts[i] = part[:-n] + REDACTED
                break
    return CUT.join(parts)


def scrub_call(result: CallResult, secrets: tuple[str, ...]) -> CallResult:
    """Remove the secrets from every text field of a call result (in place; returns it)."""
    if not secrets:
        return result
    result.text = scrub_text(result.text, secrets)
    for name in ("error_message", "refusal_text"):
        value = getattr(result, name)
        if value is not None:
            setattr(result, name, scrub_text(value, secrets))
    for name, (_, longest) in NAMES.items():  # still within its column: "<redacted>" is longer than a short key
        value = getattr(result, name)
        if isinstance(value, str):
            setattr(result, name, scrub_text(value, secrets)[:longest])
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
        self.secrets: tuple[str, ...] = tuple(s for s in secrets if s and len(s) >= MIN_SECRET)

    async def complete(self, request: ChatRequest) -> CallResult:
        return scrub_call(await self.inner.complete(request), self.secrets)

    async def aclose(self) -> None:
        await self.inner.aclose()

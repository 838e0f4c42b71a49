"""Providers: one module per wire format behind :class:`monitor.providers.base.Provider`."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from monitor.config.models import Target
from monitor.providers.anthropic import AnthropicProvider
from monitor.providers.base import ChatRequest, Provider
from monitor.providers.openai_compat import OpenAIProvider

PROVIDERS: dict[str, Callable[..., Provider]] = {
    "openai": OpenAIProvider,
    "anthropic": AnthropicProvider,
}


def build_provider(target: Target, api_key: str | None, *, transport: httpx.AsyncBaseTransport | None = None) -> Provider:
    """Build the provider for a target; `transport` lets tests inject an httpx transport."""
    limits = httpx.Limits(max_connections=target.max_concurrency * 2, max_keepalive_connections=target.max_concurrency)
    client = httpx.AsyncClient(transport=transport, limits=limits, timeout=httpx.Timeout(target.timeout))
    kwargs = {"headers": dict(target.headers), "http_client": client}
    if target.provider == "openai":
        kwargs["stream_usage"] = target.stream_usage
    return PROVIDERS[target.provider](target.base_url, api_key, **kwargs)


__all__ = ["PROVIDERS", "AnthropicProvider", "ChatRequest", "OpenAIProvider", "Provider", "build_provider"]

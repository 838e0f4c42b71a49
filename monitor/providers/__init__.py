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
    kwargs: dict[str, object] = {"headers": dict(target.headers)}
    if target.provider == "openai":
        # The SDK's own client class (its HTTP stack may differ from the httpx this project uses elsewhere).
        import openai

        kwargs["stream_usage"] = target.stream_usage
        kwargs["http_client"] = openai.DefaultAsyncHttpxClient(timeout=target.timeout, transport=transport) \
            if transport is not None else openai.DefaultAsyncHttpxClient(timeout=target.timeout)
    else:
        limits = httpx.Limits(max_connections=target.max_concurrency * 2,
                              max_keepalive_connections=target.max_concurrency)
        kwargs["http_client"] = httpx.AsyncClient(transport=transport, limits=limits,
                                                  timeout=httpx.Timeout(target.timeout))
    return PROVIDERS[target.provider](target.base_url, api_key, **kwargs)


__all__ = ["PROVIDERS", "AnthropicProvider", "ChatRequest", "OpenAIProvider", "Provider", "build_provider"]

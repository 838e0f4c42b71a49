"""Providers: one module per wire format behind :class:`monitor.providers.base.Provider`."""

from __future__ import annotations

import importlib
import urllib.request
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import httpx

from monitor.config.models import Target
from monitor.config.secrets import resolve_api_key
from monitor.literal_secrets import header_secrets
from monitor.providers.anthropic import AnthropicProvider
from monitor.providers.arrival import KEEPALIVE_EXPIRY_S, arrival_transport
from monitor.providers.base import ChatRequest, Provider, monotonic
from monitor.providers.capped import reply_cap
from monitor.providers.openai_compat import OpenAIProvider
from monitor.providers.scrub import Scrubbing
from monitor.tls import default_context

if TYPE_CHECKING:
    from monitor.config.loader import Config

PROVIDERS: dict[str, Callable[..., Provider]] = {
    "openai": OpenAIProvider,
    "anthropic": AnthropicProvider,
}


def _proxied(url: str) -> bool:
    """Whether HTTP(S)_PROXY / ALL_PROXY (minus NO_PROXY) route `url` through a proxy."""
    parts = urlparse(url)
    proxies = urllib.request.getproxies()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(parts.hostname or "")


def sdk_http() -> tuple[ModuleType, ModuleType]:
    """The httpx flavour the installed openai SDK is built on (httpx2 from openai 3, httpx before) and its core."""
    import openai

    client = next(c for c in openai.DefaultAsyncHttpxClient.__mro__ if c.__name__ == "AsyncClient")
    top = client.__module__.split(".")[0]
    return importlib.import_module(top), importlib.import_module("httpcore2" if top == "httpx2" else "httpcore")


def build_provider(target: Target, api_key: str | None, *, transport: httpx.AsyncBaseTransport | None = None) -> Provider:
    """Build the provider for a target; `transport` lets tests inject an httpx transport.

    The provider's results never carry its API key nor the values of its credential headers (`providers.scrub`):
    some upstreams echo them in errors.

    By default connections note when bytes arrive (`providers.arrival`), so TTFT and latency are read off the
    wire rather than when the event loop got round to parsing. Behind a proxy from the environment the HTTP
    library's own transport is kept (it is the one that knows proxies) and times are taken when parsed.
    Whatever the transport, no reply is read past the target's `max_reply_bytes` (`providers.capped`).
    """
    kwargs: dict[str, object] = {"headers": dict(target.headers), "clock": monotonic}
    own = transport is None and not _proxied(target.base_url)
    max_connections = max(target.max_concurrency * 2, 20)
    chosen: Any = transport  # an httpx transport, or one of the SDK's own httpx flavour
    if target.provider == "openai":
        # The SDK's own client class (its HTTP stack may differ from the httpx this project uses elsewhere).
        import openai

        kwargs["stream_usage"] = target.stream_usage
        kwargs["reasoning_tags"] = target.reasoning_tags
        sdk_httpx, sdk_core = sdk_http()
        if own:
            chosen = arrival_transport(sdk_httpx, sdk_core, monotonic, max_connections=max_connections,
                                       max_keepalive=target.max_concurrency)
        hooks = {"response": [reply_cap(sdk_httpx, target.max_reply_bytes)]}
        # follow_redirects=False: the SDK's client follows them, taking the target's headers along (`redirect_note`)
        kwargs["http_client"] = openai.DefaultAsyncHttpxClient(timeout=target.timeout, transport=chosen,
                                                               event_hooks=hooks, follow_redirects=False) \
            if chosen is not None else openai.DefaultAsyncHttpxClient(
                timeout=target.timeout, event_hooks=hooks, verify=default_context(sdk_httpx), follow_redirects=False,
                limits=sdk_httpx.Limits(max_connections=max_connections, max_keepalive_connections=target.max_concurrency,
                                        keepalive_expiry=KEEPALIVE_EXPIRY_S))
    else:
        if own:
            chosen = arrival_transport(httpx, importlib.import_module("httpcore"), monotonic,
                                       max_connections=max_connections, max_keepalive=target.max_concurrency)
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=target.max_concurrency,
                              keepalive_expiry=KEEPALIVE_EXPIRY_S)
        kwargs["http_client"] = httpx.AsyncClient(transport=chosen, limits=limits, verify=default_context(),
                                                  timeout=httpx.Timeout(target.timeout),
                                                  event_hooks={"response": [reply_cap(httpx, target.max_reply_bytes)]})
    return Scrubbing(PROVIDERS[target.provider](target.base_url, api_key, **kwargs),
                     [api_key, *header_secrets(target.headers)])


def build_providers(config: Config, environ: Mapping[str, str]) -> dict[str, Provider]:
    """Build one provider per target; raises SecretError when a named key is missing."""
    return {t.id: build_provider(t, resolve_api_key(t, environ)) for t in config.targets}


__all__ = ["PROVIDERS", "AnthropicProvider", "ChatRequest", "OpenAIProvider", "Provider", "build_provider",
           "build_providers"]

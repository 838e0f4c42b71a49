"""A 404 from an OpenAI-compatible target names the URL called (a base_url missing /v1 is the usual cause), without
the user info of the base_url or any query."""

from __future__ import annotations

import pytest

from monitor.config.models import Target
from monitor.domain import ErrorType
from monitor.embeddings import Embedder
from monitor.providers import build_provider
from monitor.providers.base import ChatRequest
from tests.support.jsonserver import raw_server

MSG = [{"role": "user", "content": "hi"}]


def not_found(body: dict, headers: dict) -> tuple[int, str, bytes]:  # Ollama's (Go's) answer to an unknown path
    return 404, "text/plain; charset=utf-8", b"404 page not found"


@pytest.mark.parametrize(("path", "said"), [
    ("", "(POST http://127.0.0.1:{port}/chat/completions: is base_url missing /v1?)"),
    ("/api", "(POST http://127.0.0.1:{port}/api/chat/completions: is base_url missing /v1?)"),
    ("/v1", "(POST http://127.0.0.1:{port}/v1/chat/completions)"),
    ("/v1beta/openai", "(POST http://127.0.0.1:{port}/v1beta/openai/chat/completions)"),
])
@pytest.mark.parametrize("stream", [True, False])
async def test_a_404_names_the_url_called(path: str, said: str, stream: bool) -> None:
    with raw_server(not_found) as url:
        port = url.rsplit(":", 1)[1]
        base = url.replace("http://", "http://monitor:proxyPW-secret@") + path
        provider = build_provider(Target(id="t", provider="openai", base_url=base, model="m", stream=stream), None)
        try:
            r = await provider.complete(ChatRequest(model="m", messages=MSG, timeout_s=5))
        finally:
            await provider.aclose()
    assert r.error_type == ErrorType.BAD_REQUEST and r.http_status == 404
    assert r.error_message is not None and r.error_message.startswith("HTTP 404: ")
    assert r.error_message.endswith(" " + said.format(port=port)), r.error_message
    assert "proxyPW" not in r.error_message


def test_an_embeddings_404_names_the_url_called() -> None:
    calls = []
    with raw_server(not_found) as url:
        embedder = Embedder(url, None, "e", pause_s=0, record=lambda call, started: calls.append(call))
        try:
            embedder(["a"])
        finally:
            embedder.close()
    [call] = calls
    assert (call.error_message or "").endswith(f"(POST {url}/embeddings: is base_url missing /v1?)")


async def test_a_long_404_body_keeps_the_url() -> None:
    def long(body: dict, headers: dict) -> tuple[int, str, bytes]:
        return 404, "text/html", b"<html>" + b"x" * 1000 + b"</html>"

    with raw_server(long) as url:
        provider = build_provider(Target(id="t", provider="openai", base_url=url, model="m"), None)
        try:
            r = await provider.complete(ChatRequest(model="m", messages=MSG, timeout_s=5))
        finally:
            await provider.aclose()
    assert r.error_message is not None and len(r.error_message) <= 300
    assert r.error_message.endswith(f"… (POST {url}/chat/completions: is base_url missing /v1?)"), r.error_message

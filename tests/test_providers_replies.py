"""Replies whose body does not end as their headers say, through the real SDKs over loopback to a server that
writes them byte for byte (`wire_server`), on the daemon's connections and on the HTTP library's own behind a
proxy from the environment (the wire server stands for the proxy)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest

from monitor.config.models import Target
from monitor.domain import CallResult, ErrorType
from monitor.providers import ChatRequest, Provider, build_provider
from tests.support.jsonserver import wire_server

KINDS = ["openai", "anthropic"]
PATHS = ["daemon", "proxy"]
PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY",
              "no_proxy")
Send = Callable[[bytes], object]


def build(kind: str, url: str, path: str, monkeypatch: pytest.MonkeyPatch, **fields: Any) -> Provider:
    """The provider the daemon builds for a target at `url`; on the "proxy" path the target's host exists only
    for the proxy at `url`."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    base = url
    if path == "proxy":
        monkeypatch.setenv("HTTP_PROXY", url)
        base = "http://upstream.invalid"
    base += "/v1" if kind == "openai" else ""
    return build_provider(Target(id="t", provider=kind, base_url=base, model="m", **fields), "sk-test")


async def call(provider: Provider, stream: bool, timeout_s: float = 20.0) -> CallResult:
    try:
        return await provider.complete(ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}],
                                                   stream=stream, timeout_s=timeout_s))
    finally:
        await provider.aclose()


def head(stream: bool, length: int | None = None, extra: str = "") -> bytes:
    """A 200's status line and headers; no Content-Length means the body ends when the connection closes."""
    ctype = "text/event-stream" if stream else "application/json"
    size = f"content-length: {length}\r\n" if length is not None else ""
    return f"HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\n{size}{extra}\r\n".encode()


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def opening(kind: str, stream: bool) -> bytes:
    """The first bytes of a good answer: its first content event, or half of the whole JSON."""
    if kind == "openai" and stream:
        return b"data: " + json.dumps({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                       "choices": [{"index": 0, "delta": {"content": "hi"}}]}).encode() + b"\n\n"
    if stream:
        return (sse("message_start", {"type": "message_start",
                                      "message": {"id": "msg_1", "model": "m", "usage": {"input_tokens": 3}}})
                + sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                              "delta": {"type": "text_delta", "text": "hi"}}))
    whole = json.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                     "finish_reason": "stop"}]} if kind == "openai" else
                       {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "stop_reason": "end_turn",
                        "content": [{"type": "text", "text": "hi"}]}).encode()
    return whole[: len(whole) // 2]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [True, False])
async def test_a_body_cut_short_of_its_content_length_is_an_answer_broken_off(
        kind: str, stream: bool, path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server announces 100,000 bytes, sends the start of a good answer and closes the connection. The answer
    had begun: `bad_response`, streamed or not (a whole answer used to be a `server_error`, "connection closed
    before an answer")."""

    def answer(body: dict[str, Any], send: Send) -> None:
        send(head(stream, 100_000) + opening(kind, stream))

    with wire_server(answer) as url:
        r = await call(build(kind, url, path, monkeypatch), stream)
    assert r.error_type == ErrorType.BAD_RESPONSE, (r.error_type, r.error_message)
    assert r.http_status == 200
    assert r.error_message and r.error_message.startswith("response broken off: ")
    assert "expected 100000" in r.error_message  # the HTTP library's account of what was missing


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [True, False])
async def test_a_body_cut_short_on_a_connection_left_open_is_a_timeout_saying_the_answer_began(
        kind: str, stream: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same answer, but the server keeps the connection open: nothing says the rest will not come."""
    finished = threading.Event()

    def answer(body: dict[str, Any], send: Send) -> None:
        send(head(stream, 100_000) + opening(kind, stream))
        finished.wait(30)

    try:
        with wire_server(answer) as url:
            r = await call(build(kind, url, "daemon", monkeypatch), stream, timeout_s=1.0)
    finally:
        finished.set()
    assert r.error_type == ErrorType.TIMEOUT, (r.error_type, r.error_message)
    assert r.http_status == 200
    assert r.error_message == "no complete answer in 1s: HTTP 200 came, its body did not end"

"""Streams that are well formed but not what a stream usually is, through the daemon's providers over loopback to a
server that writes them byte for byte (`wire_server`): no events at all."""

from __future__ import annotations

import pytest

from monitor.domain import ErrorType
from tests.support.jsonserver import wire_server
from tests.test_providers_replies import build, call, head, sse

NO_EVENTS = "malformed response: the event stream held no events (no message_start, no message_stop)"


@pytest.mark.parametrize("body", [b"", b": keep-alive\n\n", b"\n\n\n"], ids=["empty", "comments", "blank-lines"])
async def test_an_anthropic_stream_with_no_events_says_so(body: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 200 event stream that ends cleanly before any event: it was "response broken off: stream ended without
    message_stop", as if the answer had begun; nothing of it came."""
    with wire_server(lambda request, send: send(head(True, len(body)) + body)) as url:
        r = await call(build("anthropic", url, "daemon", monkeypatch), True)
    assert (r.http_status, r.error_type) == (200, ErrorType.BAD_RESPONSE), (r.error_type, r.error_message)
    assert r.error_message == NO_EVENTS


async def test_an_anthropic_stream_that_began_and_stopped_short_is_still_broken_off(
        monkeypatch: pytest.MonkeyPatch) -> None:
    body = (sse("message_start", {"type": "message_start", "message": {"id": "msg_1", "model": "m"}})
            + sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                          "delta": {"type": "text_delta", "text": "hi"}}))
    with wire_server(lambda request, send: send(head(True, len(body)) + body)) as url:
        r = await call(build("anthropic", url, "daemon", monkeypatch), True)
    assert r.error_type == ErrorType.BAD_RESPONSE, (r.error_type, r.error_message)
    assert r.error_message == "response broken off: RemoteProtocolError: stream ended without message_stop"
    assert r.text == "hi"


@pytest.mark.parametrize("body", [b"", b": OPENROUTER PROCESSING\n\n"], ids=["empty", "comments"])
async def test_an_openai_stream_with_no_events_says_so(body: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same on OpenAI: it was "response broken off: stream ended without a finish_reason"."""
    with wire_server(lambda request, send: send(head(True, len(body)) + body)) as url:
        r = await call(build("openai", url, "daemon", monkeypatch), True)
    assert (r.http_status, r.error_type) == (200, ErrorType.BAD_RESPONSE), (r.error_type, r.error_message)
    assert r.error_message == "malformed response: the event stream held no events (no chunk, no [DONE])"

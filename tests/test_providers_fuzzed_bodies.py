"""Bodies that are not what they say the fuzzer found misread (JSON nested too deep or broken, a page or one JSON
body for a stream, events under a JSON content type, a body that does not decode as its Content-Encoding says), each
through the daemon's own providers and a real loopback server."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest

from monitor.domain import ErrorType
from monitor.providers import ChatRequest
from tests.support.jsonserver import wire_server
from tests.support.replies import FINISH, KINDS, answer, chunk, events, reply
from tests.support.wirefuzz import daemon_provider

DEEP = b"[" * 100_000 + b"]" * 100_000  # deeper than Python's JSON parser goes (a RecursionError, not a ValueError)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("where", ["whole", "stream", "error"])
async def test_json_nested_too_deep_is_a_bad_response_not_a_crash(kind: str, where: str) -> None:
    if where == "whole":
        r = await answer(kind, False, reply(DEEP))
    elif where == "stream":
        r = await answer(kind, True, reply(events(kind, DEEP), ctype="text/event-stream"))
    else:  # an error status keeps its type: the body only fails to say more
        r = await answer(kind, False, reply(DEEP, status="503 Service Unavailable"))
        assert r.error_type == ErrorType.SERVER_ERROR and r.http_status == 503, (r.error_type, r.error_message)
        return
    assert r.error_type == ErrorType.BAD_RESPONSE, (r.error_type, r.error_message)
    assert r.error_message == "malformed response: JSON nested too deeply to read"


@pytest.mark.parametrize(("body", "expected", "message"), [
    ({"error": {"message": "Rate limit exceeded", "code": 429}}, ErrorType.RATE_LIMITED,
     "error in stream: Rate limit exceeded"),
    ({"error": {"message": "upstream failed", "code": "502"}}, ErrorType.SERVER_ERROR,
     "error in stream: upstream failed"),
    ({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
      "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]},
     ErrorType.BAD_RESPONSE, "malformed response: expected an event stream, got application/json: '{\"id\": \"c1\""),
], ids=["rate-limit", "server-error", "whole-answer"])
async def test_a_stream_answered_with_one_json_body_says_what_came(body: Any, expected: ErrorType,
                                                                   message: str) -> None:
    """A streamed call answered 200 with one JSON body (a proxy that answers before its upstream does, a server
    that does not stream) was read as events, found none, and failed as "response broken off: stream ended
    without a finish_reason": a rate limit was no longer one, and its message was lost."""
    r = await answer("openai", True, reply(json.dumps(body).encode()))
    assert r.error_type == expected, (r.error_type, r.error_message)
    assert r.error_message and r.error_message.startswith(message), r.error_message


@pytest.mark.parametrize(("error", "expected"), [
    ({"message": "Rate limit exceeded", "code": 429}, ErrorType.RATE_LIMITED),
    ({"message": "upstream failed", "type": "None", "code": "502"}, ErrorType.SERVER_ERROR),
    ({"type": "rate_limit_error", "message": "slow down"}, ErrorType.RATE_LIMITED),
], ids=["code-429", "code-502", "anthropic-type"])
@pytest.mark.parametrize("stream", [True, False])
async def test_an_anthropic_answer_that_is_an_error_without_its_type_says_so(stream: bool, error: Any,
                                                                             expected: ErrorType) -> None:
    """A 200 answer {"error": {...}} without Anthropic's `"type": "error"` beside it (a proxy's, OpenAI's shape) was
    read as a message: "malformed response: the answer has no content", the error's type and message lost."""
    r = await answer("anthropic", stream, reply(json.dumps({"error": error}).encode()))
    assert r.error_type == expected, (r.error_type, r.error_message)
    assert error["message"] in (r.error_message or "")


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("kind", KINDS)
async def test_a_body_that_does_not_decode_as_its_content_encoding_is_a_bad_response(kind: str, stream: bool,
                                                                                     encoding: str) -> None:
    """Content-Encoding: gzip on a body that is not: the HTTP library raises DecodingError, which is neither a
    transport error nor a ValueError, and it went out of complete()."""
    if kind == "openai":
        body = events("openai", chunk(content="hi"), FINISH) if stream else \
            json.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": "m", "choices": []}).encode()
    else:
        body = events("anthropic", {"type": "message_start", "message": {"id": "msg_1"}}) if stream else \
            json.dumps({"id": "msg_1", "type": "message", "content": []}).encode()
    head = (f"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-type: "
            f"{'text/event-stream' if stream else 'application/json'}\r\ncontent-encoding: {encoding}\r\n"
            f"content-length: {len(body)}\r\n\r\n").encode()
    r = await answer(kind, stream, head + body)
    assert r.error_type == ErrorType.BAD_RESPONSE, (r.error_type, r.error_message)
    assert r.error_message and r.error_message.startswith(
        "malformed response: the body does not decode as its Content-Encoding says: Error -3"), r.error_message


async def test_a_page_that_is_no_event_stream_says_what_came() -> None:
    r = await answer("openai", True, reply(b"<html><body>502 Bad Gateway</body></html>", ctype="text/html"))
    assert r.error_type == ErrorType.BAD_RESPONSE
    assert r.error_message == "malformed response: expected an event stream, got text/html: " \
                              "'<html><body>502 Bad Gateway</body></html>'"


async def test_events_under_a_json_content_type_are_read_as_they_come() -> None:
    """An event stream that says it is application/json is still read event by event: its first content is
    timed when it came, not when the body ended."""
    later = threading.Event()

    def answer_slowly(body: dict[str, Any], send: Callable[[bytes], object]) -> None:
        send(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n")
        send(events("openai", chunk(content="hi")).removesuffix(b"data: [DONE]\n\n"))
        later.wait(0.5)  # the rest comes after a pause
        send(events("openai", FINISH))

    with wire_server(answer_slowly) as url:
        provider = daemon_provider("openai", url)
        try:
            r = await provider.complete(ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}]))
        finally:
            await provider.aclose()
    assert r.ok and r.text == "hi", r.error_message
    assert r.ttft_s is not None and r.latency_s is not None and r.ttft_s < r.latency_s


@pytest.mark.parametrize(("body", "ctype", "shown"), [
    (b"<html><body>502 Bad Gateway</body></html>", "text/html", "'<html><body>502 Bad Gateway</body></html>'"),
    (b"", "application/json", "''"),
], ids=["html", "empty"])
async def test_a_whole_anthropic_answer_that_is_no_json_says_what_came(body: bytes, ctype: str, shown: str) -> None:
    """As a whole OpenAI answer does; it failed as "Expecting value: line 1 column 1 (char 0)"."""
    r = await answer("anthropic", False, reply(body, ctype=ctype))
    assert r.error_type == ErrorType.BAD_RESPONSE
    assert r.error_message == f"malformed response: expected a message (a JSON object), got {ctype}: {shown}"


@pytest.mark.parametrize(("kind", "stream", "raw", "shown"), [
    ("openai", True, reply(events("openai", b"{not json", FINISH), ctype="text/event-stream"),
     "not JSON (Expecting property name enclosed in double quotes at character 1): '{not json'"),
    ("anthropic", True, reply(events("anthropic", b'{"type": "ping", "x": tru}'), ctype="text/event-stream"),
     "not JSON (Expecting value at character 22): '{\"type\": \"ping\", \"x\": tru}'"),
    ("openai", False, reply(b'{"id": "c1", "choices": [' + b" " * 100 + b"}"),
     "not JSON (Expecting value at character 125): ' }'"),  # (whitespace is shown as one space)
    ("anthropic", False, reply(b'{"id": "msg_1", "content": [], "stop_reason": "end_turn",, "usage": {}}'),
     "not JSON (Expecting property name enclosed in double quotes at character 57): '[], \"stop_reason\""),
    # the simulator's `malformed` fault, as the chaos run saw it: "Unterminated string starting at at character 67"
    ("openai", False, reply(b'{"id": "c1", "choices": [{"index": 0, "message": {"content": "hel'),
     "not JSON (Unterminated string starting at character 61): 'x\": 0, \"message\": {\"content\": \"hel'"),
], ids=["openai-event", "anthropic-event", "openai-whole", "anthropic-whole", "unterminated-string"])
async def test_json_that_does_not_parse_is_shown_where_it_breaks(kind: str, stream: bool, raw: bytes,
                                                                   shown: str) -> None:
    """A JSON syntax error said only "Expecting value: line 1 column 1 (char 0)": now where, and the text there."""
    r = await answer(kind, stream, raw)
    assert r.error_type == ErrorType.BAD_RESPONSE
    assert r.error_message and r.error_message.startswith("malformed response: " + shown), r.error_message

"""Streams that are well formed but not what a stream usually is, through the daemon's providers over loopback to a
server that writes them byte for byte (`wire_server`): no events at all; several choices, in any order."""

from __future__ import annotations

import json
import threading
import time
import zlib
from typing import Any

import pytest

from monitor.domain import ErrorType
from monitor.providers.sse import DRAIN_S
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


@pytest.mark.parametrize(("error", "typed"), [
    ({"message": "upstream rate limit", "code": "429"}, ErrorType.RATE_LIMITED),
    ({"message": "upstream failed", "code": 500}, ErrorType.SERVER_ERROR),
    ({"type": "overloaded_error", "message": "Overloaded"}, ErrorType.SERVER_ERROR),
], ids=["openai-429", "openai-500", "anthropic"])
async def test_an_error_event_is_typed_by_its_error_whatever_its_shape(error: dict[str, Any], typed: ErrorType,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """An `event: error` whose error is OpenAI-shaped (no type; the upstream's status in `code`), as a proxy relaying
    another API's failure sends it: typed as `api_error` (a server_error), a rate limit was lost."""
    body = (sse("message_start", {"type": "message_start", "message": {"id": "msg_1", "model": "m"}})
            + sse("error", {"error": error}))
    with wire_server(lambda request, send: send(head(True, len(body)) + body)) as url:
        r = await call(build("anthropic", url, "daemon", monkeypatch), True)
    assert r.error_type == typed, (r.error_type, r.error_message)
    assert error["message"] in (r.error_message or "")


@pytest.mark.parametrize("body", [b"", b": OPENROUTER PROCESSING\n\n"], ids=["empty", "comments"])
async def test_an_openai_stream_with_no_events_says_so(body: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same on OpenAI: it was "response broken off: stream ended without a finish_reason"."""
    with wire_server(lambda request, send: send(head(True, len(body)) + body)) as url:
        r = await call(build("openai", url, "daemon", monkeypatch), True)
    assert (r.http_status, r.error_type) == (200, ErrorType.BAD_RESPONSE), (r.error_type, r.error_message)
    assert r.error_message == "malformed response: the event stream held no events (no chunk, no [DONE])"


def chunk(*choices: dict[str, Any], **over: Any) -> bytes:
    return b"data: " + json.dumps({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                   "choices": list(choices), **over}).encode() + b"\n\n"


def delta(index: Any, finish: str | None = None, **fields: Any) -> dict[str, Any]:
    """A streamed choice; an `index` of None leaves it out."""
    return {**({} if index is None else {"index": index}), "delta": fields, "finish_reason": finish}


def message(index: Any, content: str, finish: str) -> dict[str, Any]:
    return {"index": index, "message": {"role": "assistant", "content": content}, "finish_reason": finish}


USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}


@pytest.mark.parametrize(("chunks", "text"), [
    # two choices, each streamed in chunks of its own (OpenAI and vLLM with n: 2): choice 1 first
    ([chunk(delta(1, content="Wor")), chunk(delta(0, content="Hel")), chunk(delta(1, "length", content="ld")),
      chunk(delta(0, content="lo")), chunk(delta(0, "stop"))], "Hello"),
    # both in one chunk, choice 1 listed first
    ([chunk(delta(1, content="X"), delta(0, content="Hi")), chunk(delta(1, "length"), delta(0, "stop"))], "Hi"),
    # a tool call of choice 1 beside the answer's text
    ([chunk(delta(1, tool_calls=[{"index": 0, "function": {"name": "f", "arguments": "{}"}}])),
      chunk(delta(0, "stop", content="Hi")), chunk(delta(1, "tool_calls"))], "Hi"),
    # no index: the choice is the answer
    ([chunk(delta(None, content="Hi")), chunk(delta(None, "stop"))], "Hi"),
    # an index that is no integer tells none: taken for choice 0 when no choice says 0
    ([chunk(delta("0", "stop", content="Hi"))], "Hi"),
    ([chunk(delta(2, content="X"), delta(True, "stop", content="Hi"))], "Hi"),
], ids=["own-chunks", "one-chunk", "tool-of-another", "no-index", "index-text", "index-true"])
async def test_a_streamed_answer_is_the_choice_of_index_0(chunks: list[bytes], text: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The first choice listed was read as the answer: choice 1's text, tool calls and finish reason went into it."""
    body = b"".join(chunks) + chunk(usage=USAGE) + b"data: [DONE]\n\n"
    with wire_server(lambda request, send: send(head(True, len(body)) + body)) as url:
        r = await call(build("openai", url, "daemon", monkeypatch), True)
    assert r.ok, (r.error_type, r.error_message)
    assert (r.text, r.raw_finish_reason, r.tool_calls) == (text, "stop", [])
    assert (r.usage.input_tokens, r.usage.output_tokens) == (5, 2)


@pytest.mark.parametrize(("chunks", "said"), [
    ([chunk(delta(1, content="X")), chunk(delta(1, "stop"))],
     "response broken off: RemoteProtocolError: stream ended without a finish_reason of choice 0 (choices of index "
     "[1] came)"),
], ids=["only-another"])
async def test_a_stream_without_a_choice_of_index_0_says_so(chunks: list[bytes], said: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    body = b"".join(chunks) + b"data: [DONE]\n\n"
    with wire_server(lambda request, send: send(head(True, len(body)) + body)) as url:
        r = await call(build("openai", url, "daemon", monkeypatch), True)
    assert (r.error_type, r.error_message) == (ErrorType.BAD_RESPONSE, said)


@pytest.mark.parametrize(("choices", "text", "said"), [
    ([message(1, "B", "length"), message(0, "A", "stop")], "A", None),
    ([{"message": {"role": "assistant", "content": "A"}, "finish_reason": "stop"}], "A", None),
    ([message(1, "B", "length"), message(2, "C", "stop")], "",
     "malformed response: response has no choice of index 0 (choices of index [1, 2])"),
], ids=["out-of-order", "no-index", "no-choice-0"])
async def test_a_whole_answer_is_the_choice_of_index_0(choices: list[Any], text: str, said: str | None,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    body = json.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": "m", "choices": choices,
                       "usage": USAGE}).encode()
    with wire_server(lambda request, send: send(head(False, len(body)) + body)) as url:
        r = await call(build("openai", url, "daemon", monkeypatch), False)
    assert (r.text, r.error_message) == (text, said)
    assert r.raw_finish_reason == (None if said else "stop")


@pytest.mark.parametrize("after", ["lingers", "breaks", "undecodable", "floods"])
async def test_an_answer_ended_by_done_stands_whatever_the_body_does_after(after: str,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """`data: [DONE]` ends the answer (the SDK stops reading there); the rest of the body was read to its end for
    the connection's reuse, so a gateway that kept it open after [DONE] made the answer a timeout ("its body did not
    end"), and one that closed the connection without the chunked body's end a bad_response ("broken off"); so did
    a compressed body whose tail does not decode, or a tail past `max_reply_bytes`."""
    finished = threading.Event()
    gzip = zlib.compressobj(wbits=16 + zlib.MAX_WBITS) if after == "undecodable" else None

    def piece(data: bytes) -> bytes:
        return f"{len(data):x}\r\n".encode() + data + b"\r\n"

    def answer(request: dict[str, Any], send: Any) -> None:
        encoding = b"content-encoding: gzip\r\n" if gzip else b""
        send(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n" + encoding +
             b"transfer-encoding: chunked\r\n\r\n")
        body = chunk(delta(0, role="assistant", content="")) + chunk(delta(0, "stop", content="hi")) + \
            b"data: [DONE]\n\n"
        send(piece(gzip.compress(body) + gzip.flush(zlib.Z_SYNC_FLUSH) if gzip else body))
        if after == "lingers":
            finished.wait(30)  # the body's last chunk never comes; the server waits for the client to go
        elif after in ("undecodable", "floods"):
            time.sleep(0.2)  # read apart from the answer: [DONE] is in before the tail comes
            send(piece(b"\xff" * 64 if gzip else b": padding\n" * 1000) + b"0\r\n\r\n")

    fields = {"max_reply_bytes": 4096} if after == "floods" else {}
    try:
        with wire_server(answer) as url:
            r = await call(build("openai", url, "daemon", monkeypatch, **fields), True, timeout_s=10)
    finally:
        finished.set()
    assert r.ok, (r.error_type, r.error_message)
    assert (r.text, r.raw_finish_reason) == ("hi", "stop")


@pytest.mark.parametrize("path", ["daemon", "proxy"])
async def test_what_follows_done_is_not_part_of_the_answers_latency(path: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The answer ends at [DONE]: a gateway that sends a keep-alive after it and ends the body later (within the
    second the rest is read for) made that wait part of the latency, on the proxy path (times taken when parsed) the
    whole wait, up to a second, on any server that held the body open."""
    sent: dict[str, float] = {}

    def answer(request: dict[str, Any], send: Any) -> None:
        sent["request"] = time.monotonic()  # the providers' clock; the call began before this
        send(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        body = chunk(delta(0, "stop", content="hi")) + b"data: [DONE]\n\n"
        send(f"{len(body):x}\r\n".encode() + body + b"\r\n")
        time.sleep(0.3)
        sent["tail"] = time.monotonic()
        send(b"d\r\n: keep-alive\n\n\r\n0\r\n\r\n")

    with wire_server(answer) as url:
        r = await call(build("openai", url, path, monkeypatch), True)
    assert r.ok and r.send_wait_s is not None and r.latency_s is not None, (r.error_type, r.error_message)
    # the answer's end (call start + send wait + latency) came before the server sent what followed [DONE]
    assert sent["request"] + r.send_wait_s + r.latency_s < sent["tail"]


@pytest.mark.parametrize("path", ["daemon", "proxy"])
async def test_an_answer_done_late_in_its_time_stands_while_the_rest_is_read(
        path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """What follows [DONE] is read for up to a second; an answer whose [DONE] came less than that before the call's
    timeout, from a gateway that held the body open, was a `timeout` (the call's deadline struck during that read)."""
    finished = threading.Event()

    def answer(request: dict[str, Any], send: Any) -> None:
        send(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        body = chunk(delta(0, "stop", content="hi")) + b"data: [DONE]\n\n"
        send(f"{len(body):x}\r\n".encode() + body + b"\r\n")
        finished.wait(30)

    try:
        with wire_server(answer) as url:
            r = await call(build("openai", url, path, monkeypatch), True, timeout_s=DRAIN_S / 2)
    finally:
        finished.set()
    assert r.ok, (r.error_type, r.error_message)
    assert r.text == "hi"


@pytest.mark.parametrize("usage", [True, False], ids=["usage", "no-usage-asked"])
@pytest.mark.parametrize("after", ["breaks", "lingers"])
async def test_an_answer_whose_finish_came_stands_without_done(after: str, usage: bool,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Choice 0's finish_reason, and the usage when it was asked for, end the answer: only [DONE] is to come. A
    gateway that then closed the connection without [DONE] (nor the chunked body's end) made it a bad_response
    ("broken off"); one that held the body open a timeout ("its body did not end"), at the call's timeout."""
    finished = threading.Event()

    def answer(request: dict[str, Any], send: Any) -> None:
        send(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        body = chunk(delta(0, role="assistant", content="hi")) + chunk(delta(0, "stop"))
        body += chunk(usage=USAGE) if usage else b""
        send(f"{len(body):x}\r\n".encode() + body + b"\r\n")
        if after == "lingers":
            finished.wait(30)  # neither [DONE] nor the body's end comes; the server waits for the client to go

    try:
        with wire_server(answer) as url:
            r = await call(build("openai", url, "daemon", monkeypatch, stream_usage=usage), True, timeout_s=10)
    finally:
        finished.set()
    assert r.ok, (r.error_type, r.error_message)
    assert (r.text, r.raw_finish_reason) == ("hi", "stop")
    assert r.usage.output_tokens == (2 if usage else None)

"""Anthropic's `message_stop` ends an answer as OpenAI's `data: [DONE]` does (tests/test_providers_streams.py): what
a gateway sends after it, or does not, neither fails the answer nor counts in its latency. Through the daemon's
provider over loopback to a server that writes the bytes (`wire_server`), on its own connections and behind a
proxy from the environment."""

from __future__ import annotations

import threading
import time
import zlib
from typing import Any

import pytest

from monitor.providers.sse import DRAIN_S
from tests.support.jsonserver import wire_server
from tests.test_providers_replies import build, call, sse

ANSWER = (sse("message_start", {"type": "message_start", "message": {"id": "msg_1", "model": "m"}})
          + sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                        "delta": {"type": "text_delta", "text": "hi"}})
          + sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                  "usage": {"output_tokens": 1}})
          + sse("message_stop", {"type": "message_stop"}))
HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"


def piece(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


@pytest.mark.parametrize("path", ["daemon", "proxy"])
@pytest.mark.parametrize("after", ["done", "lingers", "breaks", "undecodable", "floods"])
async def test_an_answer_ended_by_message_stop_stands_whatever_the_body_does_after(
        after: str, path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The body was read to its end: a relay's OpenAI-style `data: [DONE]` after message_stop made the answer a
    bad_response ("not JSON"), a gateway that kept the body open a timeout, one that broke the connection "broken
    off", a compressed tail that does not decode or a tail past `max_reply_bytes` a bad_response."""
    finished = threading.Event()
    gzip = zlib.compressobj(wbits=16 + zlib.MAX_WBITS) if after == "undecodable" else None

    def answer(request: dict[str, Any], send: Any) -> None:
        send(HEAD + (b"content-encoding: gzip\r\n" if gzip else b"") + b"\r\n")
        send(piece(gzip.compress(ANSWER) + gzip.flush(zlib.Z_SYNC_FLUSH) if gzip else ANSWER))
        if after == "done":
            send(piece(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        elif after == "lingers":
            finished.wait(30)  # the body's last chunk never comes; the server waits for the client to go
        elif after in ("undecodable", "floods"):
            time.sleep(0.2)  # read apart from the answer: message_stop is in before the tail comes
            send(piece(b"\xff" * 64 if gzip else b": padding\n" * 1000) + b"0\r\n\r\n")

    fields = {"max_reply_bytes": 4096} if after == "floods" else {}
    try:
        with wire_server(answer) as url:
            r = await call(build("anthropic", url, path, monkeypatch, **fields), True, timeout_s=10)
    finally:
        finished.set()
    assert r.ok, (r.error_type, r.error_message)
    assert (r.text, r.raw_finish_reason, r.usage.output_tokens) == ("hi", "end_turn", 1)


@pytest.mark.parametrize("path", ["daemon", "proxy"])
async def test_what_follows_message_stop_is_not_part_of_the_answers_latency(path: str,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A keep-alive sent after message_stop, the body ended later: that wait was part of the latency."""
    sent: dict[str, float] = {}

    def answer(request: dict[str, Any], send: Any) -> None:
        sent["request"] = time.monotonic()  # the providers' clock; the call began before this
        send(HEAD + b"\r\n" + piece(ANSWER))
        time.sleep(0.3)
        sent["tail"] = time.monotonic()
        send(piece(b": keep-alive\n\n") + b"0\r\n\r\n")

    with wire_server(answer) as url:
        r = await call(build("anthropic", url, path, monkeypatch), True)
    assert r.ok and r.send_wait_s is not None and r.latency_s is not None, (r.error_type, r.error_message)
    assert sent["request"] + r.send_wait_s + r.latency_s < sent["tail"]


@pytest.mark.parametrize("end", ["ends", "held open"])
async def test_what_follows_message_delta_is_not_part_of_the_answers_latency(end: str,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """No message_stop: the answer ended at message_delta's stop reason (`sse.ending`), as an OpenAI one at its
    finish reason. A keep-alive then (the body ended later, or never) was part of the latency: it ended at the last
    bytes."""
    sent: dict[str, float] = {}
    finished = threading.Event()
    unstopped = ANSWER[:ANSWER.index(b"event: message_stop")]

    def answer(request: dict[str, Any], send: Any) -> None:
        sent["request"] = time.monotonic()  # the providers' clock; the call began before this
        send(HEAD + b"\r\n" + piece(unstopped))
        time.sleep(DRAIN_S / 4)
        sent["tail"] = time.monotonic()
        send(piece(b": keep-alive\n\n") + (b"0\r\n\r\n" if end == "ends" else b""))
        if end == "held open":
            finished.wait(30)

    try:
        with wire_server(answer) as url:
            r = await call(build("anthropic", url, "daemon", monkeypatch), True)
    finally:
        finished.set()
    assert r.ok and r.send_wait_s is not None and r.latency_s is not None, (r.error_type, r.error_message)
    assert (r.text, r.raw_finish_reason) == ("hi", "end_turn")
    assert sent["request"] + r.send_wait_s + r.latency_s < sent["tail"]


async def test_an_answer_stopped_late_in_its_time_stands_while_the_rest_is_read(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The call's deadline struck while the rest of a body held open was read: a complete answer was a timeout."""
    finished = threading.Event()

    def answer(request: dict[str, Any], send: Any) -> None:
        send(HEAD + b"\r\n" + piece(ANSWER))
        finished.wait(30)

    try:
        with wire_server(answer) as url:
            r = await call(build("anthropic", url, "daemon", monkeypatch), True, timeout_s=DRAIN_S / 2)
    finally:
        finished.set()
    assert r.ok, (r.error_type, r.error_message)
    assert r.text == "hi"

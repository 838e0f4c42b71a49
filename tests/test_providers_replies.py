"""Replies whose body does not end as their headers say, or not for far too long, through the real SDKs over
loopback to a server that writes them byte for byte (`wire_server`), on the daemon's connections and on the HTTP
library's own behind a proxy from the environment (the wire server stands for the proxy)."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from monitor.config.models import Target
from monitor.domain import CallResult, ErrorType
from monitor.providers import ChatRequest, Provider, build_provider
from tests.conftest import write_config
from tests.support.daemon import cli
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
    """One call on a provider of its own (closed after)."""
    try:
        return await complete(provider, stream, timeout_s=timeout_s)
    finally:
        await provider.aclose()


async def complete(provider: Provider, stream: bool, model: str = "m", timeout_s: float = 20.0) -> CallResult:
    return await provider.complete(ChatRequest(model=model, messages=[{"role": "user", "content": "hi"}],
                                               stream=stream, timeout_s=timeout_s))


def head(stream: bool, length: int, extra: str = "", status: str = "200 OK") -> bytes:
    """A status line and headers (the wire server closes the connection after each answer)."""
    ctype = "text/event-stream" if stream else "application/json"
    return (f"HTTP/1.1 {status}\r\nconnection: close\r\ncontent-type: {ctype}\r\ncontent-length: {length}\r\n"
            f"{extra}\r\n").encode()


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


CAP = 1024 * 1024  # the targets' max_reply_bytes here
BODY = 64 * 1024 * 1024  # what the big answers announce, and send unless the client stops reading


def filler(kind: str, stream: bool) -> tuple[bytes, bytes]:
    """The start of a long answer and a 64 KiB piece that continues it: content events, or spaces in a JSON text."""
    if not stream:
        return b'{"id": "c1", "object": "chat.completion", "text": "', b" " * 65536
    if kind == "openai":
        event = b"data: " + json.dumps({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                                        "choices": [{"index": 0, "delta": {"content": "x" * 200}}]}).encode() + b"\n\n"
    else:
        event = sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                            "delta": {"type": "text_delta", "text": "x" * 200}})
    return opening(kind, stream), event * (65536 // len(event))


def big(kind: str, stream: bool, sent: list[int], finished: threading.Event) -> Callable[[dict[str, Any], Send], None]:
    """An answer of BODY bytes sent as fast as the client reads; `sent` counts them, `finished` is set when the
    server stops (it sent them all, or the client closed the connection)."""

    def answer(body: dict[str, Any], send: Send) -> None:
        try:
            start, piece = filler(kind, stream)
            send(head(stream, BODY) + start)
            sent[0] = len(start)
            while sent[0] < BODY:
                part = piece[: BODY - sent[0]]
                send(part)
                sent[0] += len(part)
        finally:
            finished.set()

    return answer


def whole(kind: str, stream: bool) -> bytes:
    """A good, complete answer with its headers."""
    if not stream:
        body = opening(kind, False)
        body += json.dumps({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
                            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                         "finish_reason": "stop"}]} if kind == "openai" else
                           {"id": "msg_1", "type": "message", "role": "assistant", "model": "m",
                            "stop_reason": "end_turn", "content": [{"type": "text", "text": "hi"}]}).encode()[len(body):]
    elif kind == "openai":
        body = opening(kind, True) + b"data: " + json.dumps({
            "id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}).encode() + b"\n\ndata: [DONE]\n\n"
    else:
        body = (opening(kind, True)
                + sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                        "usage": {"output_tokens": 1}})
                + sse("message_stop", {"type": "message_stop"}))
    return head(stream, len(body)) + body


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [True, False])
async def test_a_reply_past_max_reply_bytes_ends_the_call_and_the_rest_is_never_read(
        kind: str, stream: bool, path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 64 MiB answer against a 1 MiB cap: the call is a `bad_response` naming the limit, and the server could
    not send the whole body, so the client cannot have buffered it (before, it read all of it: a 500 MiB body took
    1.2 GB of memory)."""
    sent, finished = [0], threading.Event()
    with wire_server(big(kind, stream, sent, finished)) as url:
        r = await call(build(kind, url, path, monkeypatch, max_reply_bytes=CAP), stream)
        # a hang guard (the loop must run meanwhile: it closes the connection)
        assert await asyncio.to_thread(finished.wait, 30)
    assert r.error_type == ErrorType.BAD_RESPONSE, (r.error_type, r.error_message)
    assert r.error_message == "HTTP 200 reply larger than 1 MiB (max_reply_bytes): not read further"
    assert r.http_status == 200
    assert sent[0] < BODY


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [True, False])
async def test_an_error_page_past_the_cap_keeps_its_status(kind: str, stream: bool,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy's 502 whose page never ends: still the cap's `bad_response`, with the status it came with."""
    finished = threading.Event()

    def answer(body: dict[str, Any], send: Send) -> None:
        try:
            piece = b"<p>upstream unreachable</p>\n" * 2048
            pieces = BODY // len(piece)
            send(head(False, pieces * len(piece), status="502 Bad Gateway").replace(b"application/json", b"text/html"))
            for _ in range(pieces):
                send(piece)
        finally:
            finished.set()

    with wire_server(answer) as url:
        r = await call(build(kind, url, "daemon", monkeypatch, max_reply_bytes=CAP), stream)
        assert await asyncio.to_thread(finished.wait, 30)
    assert r.error_type == ErrorType.BAD_RESPONSE, (r.error_type, r.error_message)
    assert r.error_message == "HTTP 502 reply larger than 1 MiB (max_reply_bytes): not read further"
    assert r.http_status == 502


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [True, False])
async def test_a_compressed_reply_is_capped_once_decompressed(kind: str, stream: bool,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """8 MiB of answer in a few KiB of gzip: what it takes in memory is what it decompresses to."""
    start, piece = filler(kind, stream)
    body = gzip.compress(start + piece * (8 * 1024 * 1024 // len(piece)))
    assert len(body) < CAP

    def answer(request: dict[str, Any], send: Send) -> None:
        send(head(stream, len(body), "content-encoding: gzip\r\n") + body)

    with wire_server(answer) as url:
        r = await call(build(kind, url, "daemon", monkeypatch, max_reply_bytes=CAP), stream)
    assert r.error_type == ErrorType.BAD_RESPONSE, (r.error_type, r.error_message)
    assert r.error_message == "HTTP 200 reply larger than 1 MiB once decompressed (max_reply_bytes): not read further"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [True, False])
async def test_a_reply_past_the_cap_holds_up_no_other_call(kind: str, stream: bool,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Calls beside the capped one, and after it on the same provider, are answered as usual."""
    sent, finished = [0], threading.Event()
    huge = big(kind, stream, sent, finished)

    def answer(body: dict[str, Any], send: Send) -> None:
        if body["model"] == "huge":
            huge(body, send)
        else:
            send(whole(kind, stream))

    with wire_server(answer) as url:
        provider = build(kind, url, "daemon", monkeypatch, max_reply_bytes=CAP)
        try:
            beside = await asyncio.gather(complete(provider, stream, "huge"), complete(provider, stream),
                                          complete(provider, stream))
            after = [await complete(provider, stream) for _ in range(2)]
        finally:
            await provider.aclose()
    capped, *others = beside
    assert capped.error_type == ErrorType.BAD_RESPONSE and "larger than 1 MiB" in (capped.error_message or "")
    for r in others + after:
        assert r.ok and r.text == "hi", (r.error_type, r.error_message)


def test_the_daemon_stores_a_reply_past_a_targets_max_reply_bytes_as_a_bad_response(tmp_path: Path) -> None:
    """`max_reply_bytes` from monitor.yaml; a target without it reads the same 16 KiB answer (the default is far
    above)."""
    answer = whole("openai", False).replace(b'"hi"', b'"' + b"hi " * 5000 + b'"')
    length = len(answer.split(b"\r\n\r\n", 1)[1])
    answer = answer.replace(b"content-length: ", b"x-old: ")
    answer = answer.replace(b"\r\n\r\n", f"\r\ncontent-length: {length}\r\n\r\n".encode(), 1)
    with wire_server(lambda body, send: send(answer)) as url:
        cfg = write_config(tmp_path, f"""\
  - {{id: small, provider: openai, base_url: '{url}/v1', model: m, stream: false, max_reply_bytes: 4096}}
  - {{id: default, provider: openai, base_url: '{url}/v1', model: m, stream: false}}""",
                           "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n")
        out = cli("probe", "-c", str(cfg), "--json")
    assert "Traceback" not in out.stderr, out.stderr
    rows = {row["target"]: row for row in map(json.loads, out.stdout.splitlines())}
    assert rows["default"]["error_type"] is None and rows["default"]["text"].startswith("hi hi")
    assert rows["small"]["error_type"] == "bad_response"
    assert rows["small"]["error_message"] == "HTTP 200 reply larger than 4,096 bytes (max_reply_bytes): not read further"
    with contextlib.closing(sqlite3.connect(tmp_path / "m.db")) as db:
        stored = dict(db.execute("select target, error_type from observations").fetchall())
    assert stored == {"small": "bad_response", "default": None}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize(("header", "expected"), [
    ("retry-after: 120", 120.0),
    ("retry-after-ms: 1500", 1.5),
    ("retry-after: Thu, 01 Jan 1970 00:00:00 GMT", 0.0),  # a date gone by: retry now
    ("retry-after: Wed, 21 Oct 2099 07:28:00 GMT", None),  # 2.3e9 s away: nothing a client can act on
    ("retry-after: 1e12", None),
    ("retry-after: soon", None),
    ("retry-after: 1_000", None),  # float() takes it as 1000; not delay-seconds
    ("retry-after-ms: nan", None),
    ("retry-after: １２", None),  # found by review23: full-width digits (\d took them) are not delay-seconds
    ("retry-after-ms: ２０００", None),
])
async def test_retry_after_is_stored_in_seconds_up_to_a_day(kind: str, stream: bool, header: str,
                                                            expected: float | None,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A 429's Retry-After (seconds, an HTTP date or retry-after-ms) becomes `retry_after_s`; further off than a
    day it is null, and the header itself is kept with the rate-limit headers."""
    error = json.dumps({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}).encode()

    def answer(body: dict[str, Any], send: Send) -> None:
        send(head(False, len(error), header + "\r\n", status="429 Too Many Requests") + error)

    with wire_server(answer) as url:
        r = await call(build(kind, url, "daemon", monkeypatch), stream)
    assert r.error_type == ErrorType.RATE_LIMITED and r.http_status == 429
    assert r.retry_after_s == expected
    name, value = header.split(": ", 1)
    assert r.ratelimit[name] == value


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize(("status", "ctype", "page", "said"), [
    # Envoy (Istio, a service mesh) in front of the model server, its upstream down
    ("503 Service Unavailable", "text/plain", "upstream connect error or disconnect/reset before headers. "
     "reset reason: connection failure", "upstream connect error or disconnect/reset before headers"),
    # vLLM (FastAPI) asked at a base_url without /v1
    ("404 Not Found", "application/json", '{"detail": "Not Found"}', '{"detail": "Not Found"}'),
    # an error object that is a string, not {message: ...}
    ("400 Bad Request", "application/json", '{"error": "model \\"m\\" not found, try pulling it first"}',
     "not found, try pulling it first"),
    # the usual shape: its message, once
    ("404 Not Found", "application/json", '{"error": {"message": "The model `m` does not exist", "type": '
     '"invalid_request_error", "code": "model_not_found"}}', "The model `m` does not exist"),
])
async def test_an_error_reply_says_what_its_body_says(kind: str, stream: bool, status: str, ctype: str, page: str,
                                                      said: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reason an error reply gives is in the call's message, whatever shape its body has: the OpenAI SDK's
    own message holds only an `error.message`, so a proxy's plain-text page or FastAPI's `detail` was stored as
    "HTTP 503: Error code: 503", nothing an operator could act on."""
    body = page.encode()

    def answer(request: dict[str, Any], send: Send) -> None:
        send(head(False, len(body), status=status).replace(b"application/json", ctype.encode()) + body)

    with wire_server(answer) as url:
        r = await call(build(kind, url, "daemon", monkeypatch), stream)
    code = int(status.split()[0])
    assert r.http_status == code and r.error_type is not None, (r.error_type, r.error_message)
    assert r.error_message is not None and said in r.error_message, r.error_message
    assert r.error_message.count(said) == 1, r.error_message


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize(("raw", "said"), [
    (b"HTTP/1.1 OK\r\n\r\n", "illegal status line"),
    (b"HTTP/1.1 200 OK\r\nbad header line\r\n\r\n", "illegal header line"),
    (b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 7\r\n\r\nhello", "conflicting Content-Length")])
async def test_an_answer_that_is_not_valid_http_is_a_bad_response_saying_so(
        kind: str, stream: bool, raw: bytes, said: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Typed server_error, "connection closed before an answer": a broken proxy's garbage read as a silent close.
    with wire_server(lambda body, send: send(raw)) as url:
        r = await call(build(kind, url, "daemon", monkeypatch), stream)
    assert r.error_type == ErrorType.BAD_RESPONSE, (r.error_type, r.error_message)
    assert r.error_message and r.error_message.startswith("the answer is not valid HTTP: RemoteProtocolError: ")
    assert said in r.error_message


@pytest.mark.parametrize("kind", KINDS)
async def test_a_connection_closed_without_a_byte_is_still_a_server_error(kind: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    with wire_server(lambda body, send: send(b"")) as url:
        r = await call(build(kind, url, "daemon", monkeypatch), False)
    assert r.error_type == ErrorType.SERVER_ERROR, (r.error_type, r.error_message)
    assert (r.error_message or "").startswith("connection closed before an answer: ")

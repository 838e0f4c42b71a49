"""Embeddings replies whose body cannot be read, through the SDK's synchronous client (the semantic signal's) over
loopback to a server that writes them byte for byte (`wire_server`): the call recorded under `_embeddings` is typed
and explained as a probe call's would be (`test_providers_errorbody`, `test_providers_encoding`,
`test_providers_errorstall`)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from monitor.domain import CallResult, ErrorType
from monitor.embeddings import Embedder
from tests.support.jsonserver import wire_server
from tests.test_providers_encoding import UNDECODABLE
from tests.test_providers_errorbody import BROKE_OFF, START
from tests.test_providers_errorstall import (
    NOT_SOCKS,
    REFUSALS,
    proxy_refusing,
    silent,
    socks_broken,
    socks_mute,
    tunnelling,
    unanswered,
)
from tests.test_providers_replies import PROXY_VARS, Send, head

HEADERS = "retry-after: 7\r\nx-request-id: req_1\r\nx-ratelimit-remaining-requests: 0\r\n"
STATUSES = [("429 Too Many Requests", ErrorType.RATE_LIMITED), ("500 Internal Server Error", ErrorType.SERVER_ERROR),
            ("404 Not Found", ErrorType.BAD_REQUEST)]


def embedded(answer: Callable[[dict[str, Any], Send], None], timeout: float = 5.0) -> CallResult:
    """The call one embedding of one text makes against `answer`, as recorded (its vectors must be NaN)."""
    calls: list[CallResult] = []
    with wire_server(answer) as url:
        embedder = Embedder(f"{url}/v1", "sk-test", "e", timeout=timeout, pause_s=0,
                            record=lambda call, started: calls.append(call))
        try:
            assert np.isnan(embedder(["a"])).all()
        finally:
            embedder.close()
    [call] = calls
    assert call.latency_s is not None and call.latency_s >= 0
    return call


def kept(call: CallResult, code: int) -> None:
    assert call.http_status == code, (call.http_status, call.error_type, call.error_message)
    assert call.retry_after_s == 7.0 and call.request_id == "req_1"
    assert call.ratelimit["x-ratelimit-remaining-requests"] == "0"


@pytest.mark.parametrize(("status", "expected"), STATUSES)
def test_an_error_reply_whose_body_breaks_off_keeps_its_status(status: str, expected: ErrorType,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    """It was of unknown status, a `bad_response` saying "the answer is not valid HTTP" (and the log said only
    "APIConnectionError: Connection error.": it says what the call recorded now)."""
    call = embedded(lambda body, send: send(head(False, 100_000, HEADERS, status=status) + START))
    code = int(status.split()[0])
    kept(call, code)
    assert call.error_type == expected and call.error_message, call.error_message
    assert call.error_message.startswith(f"HTTP {code}: {BROKE_OFF}"), call.error_message
    assert f"(received {len(START)} bytes, expected 100000)" in call.error_message
    assert f"embeddings failed ({expected}: HTTP {code}: the error body broke off" in caplog.text


@pytest.mark.parametrize(("status", "expected"), STATUSES)
def test_an_error_reply_whose_body_does_not_decode_keeps_its_status(status: str, expected: ErrorType) -> None:
    """It was of unknown status, a `server_error` saying the connection closed before an answer."""
    page = b"<html>not gzip at all</html>"
    call = embedded(lambda body, send: send(head(False, len(page), "content-encoding: gzip\r\n" + HEADERS,
                                                 status=status) + page))
    code = int(status.split()[0])
    kept(call, code)
    assert call.error_type == expected and call.error_message, call.error_message
    assert call.error_message.startswith(f"HTTP {code}: {UNDECODABLE}"), call.error_message


@pytest.mark.parametrize("status", ["429 Too Many Requests", "200 OK"])
def test_a_reply_whose_body_stalls_is_a_timeout_that_keeps_its_status(status: str) -> None:
    """The start of the body, then nothing until the embedder's timeout: a `timeout`, as before, now with its
    status and headers kept and the message saying which status came."""
    finished = threading.Event()

    def answer(body: dict[str, Any], send: Send) -> None:
        send(head(False, 100_000, HEADERS, status=status) + START)
        finished.wait(30)

    try:
        call = embedded(answer, timeout=0.5)
    finally:
        finished.set()
    code = int(status.split()[0])
    kept(call, code)
    assert call.error_type == ErrorType.TIMEOUT
    assert call.error_message == f"request timed out: HTTP {code} came, its body did not end"


def test_a_call_that_gets_no_response_is_a_timeout_of_no_status() -> None:
    finished = threading.Event()
    try:
        call = embedded(lambda body, send: finished.wait(30), timeout=0.5)
    finally:
        finished.set()
    assert (call.http_status, call.error_type, call.error_message) == (None, ErrorType.TIMEOUT, "request timed out")


@pytest.mark.parametrize("broken", ["cut", "gzip"])
def test_a_200_whose_body_cannot_be_read_is_a_bad_response_of_status_200(broken: str) -> None:
    """As a probe call's: the answer broke off, or does not decode. Both were of unknown status, the first "not
    valid HTTP", the second a `server_error` (the connection closed before an answer)."""
    page = b"not gzip at all"
    call = embedded(lambda body, send: send(head(False, 100_000, HEADERS) + START if broken == "cut" else
                                            head(False, len(page), "content-encoding: gzip\r\n" + HEADERS) + page))
    kept(call, 200)
    assert call.error_type == ErrorType.BAD_RESPONSE and call.error_message, call.error_message
    expected = "response broken off: RemoteProtocolError: " if broken == "cut" else f"malformed response: {UNDECODABLE}"
    assert call.error_message.startswith(expected), call.error_message


def test_a_reply_that_trickles_in_ends_at_the_calls_timeout() -> None:
    """A byte every 0.1 s is within every read timeout, so the reply went on until the server stopped (here after
    3 s, then a `bad_response`; hours for a server that goes on to `max_reply_bytes`), holding up the analysis
    thread: the whole call now ends at its timeout."""
    def trickle(body: dict[str, Any], send: Send) -> None:
        send(head(False, 10_000, HEADERS, status="200 OK"))
        for _ in range(30):
            send(b" ")
            time.sleep(0.1)

    call = embedded(trickle, timeout=0.5)
    assert (call.http_status, call.error_type) == (200, ErrorType.TIMEOUT), call.error_message
    assert call.error_message == "request timed out: HTTP 200 came, its body did not end"


def never_reached(url: str, timeout: float = 0.5) -> CallResult:
    """The call one embedding makes to `url`, where no connection is ever made, as recorded."""
    calls: list[CallResult] = []
    embedder = Embedder(f"{url}/v1", "sk-test", "e", timeout=timeout, pause_s=0,
                        record=lambda call, started: calls.append(call))
    try:
        assert np.isnan(embedder(["a"])).all()
    finally:
        embedder.close()
    [call] = calls
    return call


@pytest.mark.parametrize(("where", "step"), [
    ("unanswered", "connecting (DNS, TCP)"), ("silent", "the TLS handshake"), ("proxy", "the proxy's CONNECT"),
    ("socks", "the SOCKS proxy's handshake")])
def test_a_host_never_reached_is_a_connect_failure(where: str, step: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A host that drops the connection attempt, a TLS handshake never answered, a proxy that never answers the
    CONNECT: the SDK reports the HTTP library's connect (or CONNECT read) timeout as a timeout, and the embeddings
    call was a `timeout` "request timed out", as a model slow to answer is; the probe calls said `connect`."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    if where == "proxy":
        with tunnelling(None) as proxy:
            monkeypatch.setenv("HTTPS_PROXY", proxy)
            call = never_reached("https://upstream.invalid")
    elif where == "socks":
        with socks_mute() as proxy:
            monkeypatch.setenv("ALL_PROXY", proxy)
            call = never_reached("http://upstream.invalid")
    else:
        with unanswered() if where == "unanswered" else silent() as url:
            call = never_reached(url)
    assert (call.http_status, call.error_type) == (None, ErrorType.CONNECT), (call.error_type, call.error_message)
    assert call.error_message == f"no connection in 0.5s: {step} did not finish"


@pytest.mark.parametrize(("prompt_tokens", "expected"), [(0, None), (3, 3)])
def test_a_placeholder_prompt_count_is_unknown(prompt_tokens: int, expected: int | None) -> None:
    """`prompt_tokens: 0` for texts that are not empty (a proxy's placeholder) was a call that cost nothing."""
    page = json.dumps({"object": "list", "model": "e", "data": [{"object": "embedding", "index": 0,
                                                                 "embedding": [0.1, 0.2]}],
                       "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}}).encode()
    calls: list[CallResult] = []
    with wire_server(lambda body, send: send(head(False, len(page)) + page)) as url:
        embedder = Embedder(f"{url}/v1", "sk-test", "e", pause_s=0, record=lambda call, started: calls.append(call))
        try:
            assert embedder(["a"]).tolist() == [[0.1, 0.2]]
        finally:
            embedder.close()
    [call] = calls
    assert call.ok and (call.usage.input_tokens, call.usage.output_tokens) == (expected, 0)
    assert [name for name, _ in call.usage_doubts] == ([] if expected else ["usage.prompt_tokens"])


@pytest.mark.parametrize("how", list(REFUSALS))
def test_a_proxy_that_refuses_to_reach_the_target_is_a_connect_failure(how: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    with proxy_refusing(how, monkeypatch) as url:
        call = never_reached(url, timeout=5)
    assert (call.http_status, call.error_type) == (None, ErrorType.CONNECT), (call.error_type, call.error_message)
    assert call.error_message == f"connection failed: the proxy did not connect: ProxyError: {REFUSALS[how]}"


@pytest.mark.parametrize("answer", list(NOT_SOCKS))
def test_a_socks_proxy_that_breaks_its_handshake_is_a_connect_failure(answer: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """socksio's error came out of the embedder, into the analysis that asked for the vectors."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    with socks_broken(NOT_SOCKS[answer]) as proxy:
        monkeypatch.setenv("ALL_PROXY", proxy)
        call = never_reached("http://upstream.invalid", timeout=5)
    assert (call.http_status, call.error_type) == (None, ErrorType.CONNECT), (call.error_type, call.error_message)
    assert call.error_message == "connection failed: the SOCKS proxy's handshake failed: ProtocolError: Malformed reply"

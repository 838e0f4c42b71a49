"""Error replies whose body stalls: the status line and headers come, then part of the body, and the server keeps the
connection open until the call's timeout. Through the real SDKs over loopback to a server that writes them byte for
byte (`wire_server`): on the daemon's connections, on the HTTP library's own behind a proxy from the environment,
and on a provider built with no HTTP client of its own."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from monitor.domain import ErrorType
from monitor.providers import ChatRequest
from tests.support.jsonserver import wire_server
from tests.test_providers_encoding import provider
from tests.test_providers_errorbody import START
from tests.test_providers_replies import KINDS, Send, call, complete, head

TIMEOUT_S = 0.5  # each call below waits this long


@contextmanager
def holding(answer: Callable[[dict[str, Any], Send], None]) -> Iterator[str]:
    """A `wire_server` whose connections stay open after `answer` (until the test ends): nothing says the rest of the
    body will not come."""
    finished = threading.Event()

    def held(body: dict[str, Any], send: Send) -> None:
        answer(body, send)
        finished.wait(30)

    try:
        with wire_server(held) as url:
            yield url
    finally:
        finished.set()


def stalled(status: str) -> Callable[[dict[str, Any], Send], None]:
    def answer(body: dict[str, Any], send: Send) -> None:
        extra = "retry-after: 7\r\nx-request-id: req_1\r\nrequest-id: req_1\r\nx-ratelimit-remaining-requests: 0\r\n"
        send(head(False, 100_000, extra, status=status) + START)

    return answer


@pytest.mark.parametrize("path", ["daemon", "proxy", "bare"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("status", ["429 Too Many Requests", "500 Internal Server Error"])
async def test_an_error_reply_whose_body_stalls_is_a_timeout_that_keeps_its_status(
        kind: str, stream: bool, path: str, status: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 429 announces 100,000 bytes of error body, sends the start of it and goes quiet: a `timeout` (the caller
    waited the whole time; nothing says the rest will not come) whose status, Retry-After, request id and rate-limit
    headers are kept, the message saying which status came. On OpenAI it was of unknown status, "no response yet":
    the SDK reads the error body before it hands the response back, and the timeout came first."""
    with holding(stalled(status)) as url:
        r = await call(provider(kind, url, path, monkeypatch), stream, timeout_s=TIMEOUT_S)
    code = int(status.split()[0])
    assert (r.http_status, r.error_type) == (code, ErrorType.TIMEOUT), (r.http_status, r.error_type, r.error_message)
    assert r.error_message == f"no complete answer in {TIMEOUT_S:g}s: HTTP {code} came, its body did not end"
    assert r.retry_after_s == 7.0 and r.request_id == "req_1"
    assert r.ratelimit["x-ratelimit-remaining-requests"] == "0"
    assert r.send_wait_s is not None  # the request start was noted as for an error status read whole
    assert r.latency_s is not None and TIMEOUT_S * 0.9 <= r.latency_s < 5


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [True, False])
async def test_a_call_that_gets_no_response_still_says_so(kind: str, stream: bool,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The server takes the request and sends nothing: no status to keep."""
    with holding(lambda body, send: None) as url:
        r = await call(provider(kind, url, "daemon", monkeypatch), stream, timeout_s=TIMEOUT_S)
    assert (r.http_status, r.error_type) == (None, ErrorType.TIMEOUT), (r.http_status, r.error_message)
    assert r.error_message == f"no complete answer in {TIMEOUT_S:g}s: no response yet"


async def test_a_status_is_kept_for_its_own_request_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """An OpenAI-compatible server that rejects stream_options with a 400 gets the stream again without them; when
    that second request gets no response, the call says so (the 400 was the first request's). And calls in flight
    together on one provider keep each its own status: one whose error body stalls, one with no response."""

    def answer(body: dict[str, Any], send: Send) -> None:
        if "stream_options" in body:
            page = json.dumps({"error": {"message": "Unrecognized request argument supplied: stream_options"}})
            send(head(False, len(page), status="400 Bad Request") + page.encode())
            return
        if body["model"] == "stalls":
            stalled("429 Too Many Requests")(body, send)

    with holding(answer) as url:
        p = provider("openai", url, "daemon", monkeypatch)
        try:
            second = await complete(p, stream=True, timeout_s=TIMEOUT_S)
            silent, stalls = await asyncio.gather(*(p.complete(ChatRequest(
                model=m, messages=[{"role": "user", "content": "hi"}], stream=False, timeout_s=TIMEOUT_S))
                for m in ("silent", "stalls")))
        finally:
            await p.aclose()
    assert (second.http_status, second.error_message) == (
        None, f"no complete answer in {TIMEOUT_S:g}s: no response yet"), second.error_message
    assert (silent.http_status, silent.error_message) == (
        None, f"no complete answer in {TIMEOUT_S:g}s: no response yet"), silent.error_message
    assert (stalls.http_status, stalls.retry_after_s) == (429, 7.0), stalls.error_message

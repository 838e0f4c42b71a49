"""Error replies whose body breaks off before its Content-Length (the server closes the connection mid-body),
through the real SDKs over loopback to a server that writes them byte for byte (`wire_server`): on the daemon's
connections, on the HTTP library's own behind a proxy from the environment, and on a provider built with no HTTP
client of its own."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.domain import ErrorType
from tests.support.jsonserver import wire_server
from tests.test_providers_encoding import provider
from tests.test_providers_replies import KINDS, Send, call, head

BROKE_OFF = "the error body broke off: RemoteProtocolError: peer closed connection without sending complete message body"
START = b'{"error": {"type": "rate_limit_error", "message": "Rate limit reached for requests'  # 82 bytes of 100,000


@pytest.mark.parametrize("path", ["daemon", "proxy", "bare"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize(("status", "expected"), [
    ("429 Too Many Requests", ErrorType.RATE_LIMITED),
    ("500 Internal Server Error", ErrorType.SERVER_ERROR),
    ("401 Unauthorized", ErrorType.AUTH),
    ("404 Not Found", ErrorType.BAD_REQUEST),
])
async def test_an_error_reply_whose_body_breaks_off_keeps_its_status(
        kind: str, stream: bool, path: str, status: str, expected: ErrorType,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A 429 announces 100,000 bytes of error body, sends the start of it and closes the connection: the status,
    its headers and the error type it makes stand (a rate limit whose Retry-After and request id are kept); the
    message says the error body broke off. It was a `bad_response`, and on OpenAI of unknown status with the
    message "the answer is not valid HTTP": the SDK reads the body before it says the status."""

    def answer(request: dict[str, Any], send: Send) -> None:
        extra = "retry-after: 7\r\nx-request-id: req_1\r\nrequest-id: req_1\r\n"
        send(head(False, 100_000, extra, status=status) + START)

    with wire_server(answer) as url:
        r = await call(provider(kind, url, path, monkeypatch), stream)
    code = int(status.split()[0])
    assert (r.http_status, r.error_type) == (code, expected), (r.http_status, r.error_type, r.error_message)
    assert r.error_message and r.error_message.startswith(f"HTTP {code}: {BROKE_OFF}"), r.error_message
    assert f"(received {len(START)} bytes, expected 100000)" in r.error_message  # what was missing
    assert r.retry_after_s == 7.0 and r.request_id == "req_1"
    assert r.latency_s is not None and r.latency_s >= 0


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [True, False])
async def test_a_200_whose_body_breaks_off_is_still_an_answer_broken_off(kind: str, stream: bool,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The same bytes under a 200 (on a provider with no HTTP client of its own; the daemon's are in
    test_providers_replies): the answer itself broke off, a `bad_response`, its status kept."""

    def answer(request: dict[str, Any], send: Send) -> None:
        send(head(stream, 100_000) + START)

    with wire_server(answer) as url:
        r = await call(provider(kind, url, "bare", monkeypatch), stream)
    assert (r.http_status, r.error_type) == (200, ErrorType.BAD_RESPONSE), (r.error_type, r.error_message)
    assert r.error_message and r.error_message.startswith("response broken off: RemoteProtocolError: "), \
        r.error_message

"""Replies whose body does not decode as their Content-Encoding says, through the real SDKs over loopback to a server
that writes them byte for byte (`wire_server`): on the daemon's connections, on the HTTP library's own behind a
proxy from the environment, and on a provider built with no HTTP client of its own."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.domain import ErrorType
from monitor.providers import AnthropicProvider, OpenAIProvider, Provider
from tests.support.jsonserver import wire_server
from tests.test_providers_replies import KINDS, Send, build, call, head

UNDECODABLE = "the body does not decode as its Content-Encoding says: Error -3 while decompressing data"


def provider(kind: str, url: str, path: str, monkeypatch: pytest.MonkeyPatch) -> Provider:
    if path == "bare":  # as a caller that gives it no HTTP client builds it
        return OpenAIProvider(url + "/v1", "sk-test") if kind == "openai" else AnthropicProvider(url, "sk-test")
    return build(kind, url, path, monkeypatch)


@pytest.mark.parametrize("path", ["daemon", "proxy", "bare"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize(("status", "expected"), [
    ("429 Too Many Requests", ErrorType.RATE_LIMITED),
    ("500 Internal Server Error", ErrorType.SERVER_ERROR),
    ("404 Not Found", ErrorType.BAD_REQUEST),
])
async def test_an_error_reply_whose_body_does_not_decode_keeps_its_status(
        kind: str, stream: bool, path: str, status: str, expected: ErrorType,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy's error page sent as gzip that is not: the status, its headers and the error type it makes stand (a
    429 is a rate limit whose Retry-After is kept); the message says the body could not be decoded. It was a
    `bad_response`, and on OpenAI of unknown status: the SDK reads the body before it says the status."""
    body = b"<html>not gzip at all</html>"

    def answer(request: dict[str, Any], send: Send) -> None:
        extra = "content-encoding: gzip\r\nretry-after: 7\r\nx-request-id: req_1\r\nrequest-id: req_1\r\n"
        send(head(False, len(body), extra, status=status) + body)

    with wire_server(answer) as url:
        r = await call(provider(kind, url, path, monkeypatch), stream)
    code = int(status.split()[0])
    assert (r.http_status, r.error_type) == (code, expected), (r.http_status, r.error_type, r.error_message)
    assert r.error_message and r.error_message.startswith(f"HTTP {code}: {UNDECODABLE}"), r.error_message
    assert r.retry_after_s == 7.0 and r.request_id == "req_1"


@pytest.mark.parametrize("path", ["daemon", "bare"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [True, False])
async def test_a_200_whose_body_does_not_decode_is_still_a_bad_response(kind: str, stream: bool, path: str,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The answer itself cannot be read: a `bad_response`, its status kept."""
    body = b"not gzip at all"

    def answer(request: dict[str, Any], send: Send) -> None:
        send(head(stream, len(body), "content-encoding: gzip\r\n") + body)

    with wire_server(answer) as url:
        r = await call(provider(kind, url, path, monkeypatch), stream)
    assert (r.http_status, r.error_type) == (200, ErrorType.BAD_RESPONSE), (r.error_type, r.error_message)
    assert r.error_message and r.error_message.startswith(f"malformed response: {UNDECODABLE}"), r.error_message

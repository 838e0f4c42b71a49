"""Error replies whose body stalls: the status line and headers come, then part of the body, and the server keeps the
connection open until the call's timeout. Through the real SDKs over loopback to a server that writes them byte for
byte (`wire_server`): on the daemon's connections, on the HTTP library's own behind a proxy from the environment,
and on a provider built with no HTTP client of its own."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from monitor.config.models import Target
from monitor.domain import ErrorType
from monitor.providers import ChatRequest, build_provider
from tests.support.jsonserver import wire_server
from tests.test_providers_encoding import provider
from tests.test_providers_errorbody import START
from tests.test_providers_replies import KINDS, PROXY_VARS, Send, call, complete, head

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
    # the deadline counts from the call's start, the latency from the request's send (after send_wait_s, longer
    # on a loaded machine): together they cover the whole wait
    assert r.latency_s is not None and r.latency_s + r.send_wait_s >= TIMEOUT_S * 0.9 and r.latency_s < 5


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stream", [True, False])
async def test_a_call_that_gets_no_response_still_says_so(kind: str, stream: bool,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The server takes the request and sends nothing: no status to keep."""
    with holding(lambda body, send: None) as url:
        r = await call(provider(kind, url, "daemon", monkeypatch), stream, timeout_s=TIMEOUT_S)
    assert (r.http_status, r.error_type) == (None, ErrorType.TIMEOUT), (r.http_status, r.error_message)
    assert r.error_message == f"no complete answer in {TIMEOUT_S:g}s: no response yet"


@contextmanager
def unanswered() -> Iterator[str]:
    """A listener whose queue is full (Linux then drops a new connection's SYN, as a firewall that drops packets, a
    blackholed route or an address no host holds does): a URL no connection to which is ever made."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = listener.getsockname()[1]
    queued = [socket.create_connection(("127.0.0.1", port))]  # the queue holds one more than its backlog: full
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for s in [*queued, listener]:
            s.close()


@pytest.mark.parametrize("path", ["daemon", "proxy", "bare"])
@pytest.mark.parametrize("kind", KINDS)
async def test_a_host_that_never_takes_the_connection_is_a_connect_failure(
        kind: str, path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """No connection was made (README: `connect`), however long the call waited: the call's timeout struck before
    the HTTP library's connect timeout of the same length, and it was a `timeout` "no response yet", as a model slow
    to answer is. On the proxy path the proxy itself takes no connection."""
    with unanswered() as url:
        r = await call(provider(kind, url, path, monkeypatch), True, timeout_s=TIMEOUT_S)
    assert (r.http_status, r.error_type) == (None, ErrorType.CONNECT), (r.error_type, r.error_message)
    assert r.error_message == f"no connection in {TIMEOUT_S:g}s: connecting (DNS, TCP) did not finish"


@contextmanager
def raw_listener(handle: Callable[[socket.socket], None], scheme: str) -> Iterator[str]:
    """A loopback listener whose thread calls `handle` on each connection it takes (the connections are closed at the
    end, with the listener); the URL `scheme://127.0.0.1:PORT`."""
    listener = socket.create_server(("127.0.0.1", 0))
    taken: list[socket.socket] = []

    def take() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn = listener.accept()[0]
                taken.append(conn)
                handle(conn)

    threading.Thread(target=take, daemon=True).start()
    try:
        yield f"{scheme}://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        for s in [listener, *taken]:
            s.close()


def silent() -> contextlib.AbstractContextManager[str]:
    """A server that takes every connection and never says a byte (over TLS: never answers the handshake)."""
    return raw_listener(lambda conn: None, "https")


@pytest.mark.parametrize("kind", KINDS)
async def test_a_tls_handshake_that_never_ends_is_a_connect_failure(kind: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that takes the TCP connection and never answers the TLS handshake: no connection was made either
    (over plain HTTP the same silence is a `timeout`, `test_a_call_that_gets_no_response_still_says_so`)."""
    with silent() as url:
        r = await call(provider(kind, url, "daemon", monkeypatch), True, timeout_s=TIMEOUT_S)
    assert (r.http_status, r.error_type) == (None, ErrorType.CONNECT), (r.error_type, r.error_message)
    assert r.error_message == f"no connection in {TIMEOUT_S:g}s: the TLS handshake did not finish"


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


def tunnelling(answer: bytes | None) -> contextlib.AbstractContextManager[str]:
    """An HTTP proxy that reads each CONNECT and sends `answer` (None: nothing), then stays silent: through its
    tunnel the target never answers the TLS handshake (or, with no answer, the proxy never reaches the target)."""

    def handle(conn: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            head += conn.recv(4096)
        if answer is not None:
            conn.sendall(answer)

    return raw_listener(handle, "http")


@pytest.mark.parametrize(("answer", "step"), [
    (b"HTTP/1.1 200 Connection established\r\n\r\n", "the TLS handshake"),
    (None, "the proxy's CONNECT"),
], ids=["tls", "connect"])
@pytest.mark.parametrize("kind", KINDS)
async def test_a_target_never_reached_through_a_proxy_is_a_connect_failure(
        kind: str, answer: bytes | None, step: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind an HTTP proxy (HTTPS_PROXY) a connection to an https target is the proxy's CONNECT and then the TLS
    handshake through its tunnel: a target that never answers either was a `timeout`, "no response yet", as a model
    slow to answer is (httpcore names the tunnel's handshake `proxy.start_tls`, the CONNECT is a request)."""
    with tunnelling(answer) as proxy:
        for name in PROXY_VARS:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTPS_PROXY", proxy)
        target = Target(id="t", provider=kind, base_url="https://upstream.invalid" + ("/v1" if kind == "openai"
                                                                                      else ""), model="m")
        r = await call(build_provider(target, "sk-test"), True, timeout_s=TIMEOUT_S)
    assert (r.http_status, r.error_type) == (None, ErrorType.CONNECT), (r.error_type, r.error_message)
    assert r.error_message == f"no connection in {TIMEOUT_S:g}s: {step} did not finish"


def socks_mute() -> contextlib.AbstractContextManager[str]:
    """A SOCKS5 proxy that takes each TCP connection, reads the client's greeting and never answers it."""

    def handle(conn: socket.socket) -> None:
        conn.recv(64)  # the greeting: version 5 and the methods offered, then silence

    return raw_listener(handle, "socks5")


@pytest.mark.parametrize("kind", KINDS)
async def test_a_socks_proxy_that_never_answers_its_handshake_is_a_connect_failure(
        kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind a SOCKS5 proxy (ALL_PROXY=socks5://) a connection is the TCP connection to the proxy and then its
    handshake: a proxy that never answers it has reached nothing, and it was a `timeout`, "no response yet"."""
    with socks_mute() as proxy:
        for name in PROXY_VARS:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("ALL_PROXY", proxy)
        target = Target(id="t", provider=kind, base_url="http://upstream.invalid" + ("/v1" if kind == "openai"
                                                                                     else ""), model="m")
        r = await call(build_provider(target, "sk-test"), True, timeout_s=TIMEOUT_S)
    assert (r.http_status, r.error_type) == (None, ErrorType.CONNECT), (r.error_type, r.error_message)
    assert r.error_message == f"no connection in {TIMEOUT_S:g}s: the SOCKS proxy's handshake did not finish"


def socks_refusing(reply: bytes, method: bytes = b"\x00") -> contextlib.AbstractContextManager[str]:
    """A SOCKS5 proxy that answers the greeting choosing `method` and, when that is no authentication, each CONNECT
    with the reply code `reply` (0x05: the target refused the proxy's connection; 0x04: host unreachable)."""

    def handle(conn: socket.socket) -> None:
        conn.recv(64)
        conn.sendall(b"\x05" + method)
        if method == b"\x00":
            conn.recv(512)  # the CONNECT
            conn.sendall(b"\x05" + reply + b"\x00\x01" + bytes(6))  # bound to 0.0.0.0:0

    return raw_listener(handle, "socks5")


REFUSALS = {"socks_refused": "Proxy Server could not connect: Connection refused.",
            "socks_unreachable": "Proxy Server could not connect: Host unreachable.",
            "socks_auth": "Requested NO AUTHENTICATION REQUIRED from proxy server, but got USERNAME/PASSWORD.",
            "http_403": "403 Forbidden"}


@contextmanager
def proxy_refusing(how: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A proxy from the environment that refuses to reach the target (`how`: a key of REFUSALS); the target's URL."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    if how.startswith("socks"):
        reply, method = {"socks_refused": (b"\x05", b"\x00"), "socks_unreachable": (b"\x04", b"\x00"),
                         "socks_auth": (b"\x00", b"\x02")}[how]
        with socks_refusing(reply, method) as proxy:
            monkeypatch.setenv("ALL_PROXY", proxy)
            yield "http://upstream.invalid"
    else:
        with tunnelling(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n") as proxy:
            monkeypatch.setenv("HTTPS_PROXY", proxy)
            yield "https://upstream.invalid"


@pytest.mark.parametrize("how", list(REFUSALS))
@pytest.mark.parametrize("kind", KINDS)
async def test_a_proxy_that_refuses_to_reach_the_target_is_a_connect_failure(
        kind: str, how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A SOCKS proxy whose reply says it could not reach the target (or that wants a password), an HTTP proxy that
    answers the CONNECT with 403: no connection to the target was made. httpcore raises ProxyError, and the call was
    a `server_error`, "connection closed before an answer", as an upstream that crashed on the request is."""
    with proxy_refusing(how, monkeypatch) as url:
        target = Target(id="t", provider=kind, base_url=url + ("/v1" if kind == "openai" else ""), model="m")
        r = await call(build_provider(target, "sk-test"), True, timeout_s=5)
    assert (r.http_status, r.error_type) == (None, ErrorType.CONNECT), (r.error_type, r.error_message)
    assert r.error_message == f"connection failed: the proxy did not connect: ProxyError: {REFUSALS[how]}"


def socks_broken(answer: bytes) -> contextlib.AbstractContextManager[str]:
    """A "SOCKS5 proxy" that answers the greeting with `answer` and closes: an HTTP proxy's port given as a SOCKS one
    (ALL_PROXY=socks5://proxy:3128) answers HTTP; b"": a proxy that closes the connection at once."""

    def handle(conn: socket.socket) -> None:
        conn.recv(64)
        conn.sendall(answer)
        conn.close()

    return raw_listener(handle, "socks5")


NOT_SOCKS = {"http": b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n", "closed": b""}


@pytest.mark.parametrize("answer", list(NOT_SOCKS))
@pytest.mark.parametrize("kind", KINDS)
async def test_a_socks_proxy_that_breaks_its_handshake_is_a_connect_failure(
        kind: str, answer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """socksio's ProtocolError ("Malformed reply") is no HTTP library error: it came out of the provider, an
    `internal` failure logged with a traceback as a bug."""
    with socks_broken(NOT_SOCKS[answer]) as proxy:
        for name in PROXY_VARS:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("ALL_PROXY", proxy)
        target = Target(id="t", provider=kind, base_url="http://upstream.invalid" + ("/v1" if kind == "openai"
                                                                                     else ""), model="m")
        r = await call(build_provider(target, "sk-test"), True, timeout_s=5)
    assert (r.http_status, r.error_type) == (None, ErrorType.CONNECT), (r.error_type, r.error_message)
    assert r.error_message == "connection failed: the SOCKS proxy's handshake failed: ProtocolError: Malformed reply"

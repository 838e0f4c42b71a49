"""The network backend that notes when bytes arrive: real sockets on loopback, plain and TLS."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpcore
import httpcore2
import pytest

from monitor.providers import _proxied, arrival
from monitor.providers.arrival import ArrivalBackend, _interleave
from monitor.providers.base import began, received
from monitor.stamps import KERNEL_STAMPS, StampedSocket

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def serve(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=ssl_context)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.parametrize("errors", [httpcore, httpcore2])
async def test_bytes_are_stamped_when_they_arrive_not_when_read(errors) -> None:
    sent = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"first")
        await writer.drain()
        sent.set()
        await reader.read()  # hold the connection open until the client closes it
        writer.close()

    server, port = await serve(handler)
    stream = await ArrivalBackend(time.perf_counter, errors).connect_tcp("127.0.0.1", port, timeout=5)
    await sent.wait()
    await asyncio.sleep(0.05)  # the loop hands the bytes to the protocol in here
    assert stream.get_extra_info("is_readable") is True
    time.sleep(0.2)  # other tasks' work: the event loop is busy before this task reads
    data = await stream.read(65536, timeout=5)
    read_at = time.perf_counter()
    assert data == b"first"
    assert stream.last_arrival is not None and read_at - stream.last_arrival >= 0.2
    await stream.aclose()
    server.close()


@pytest.mark.skipif(sys.platform != "linux", reason="kernel receive timestamps are read on Linux only")
async def test_bytes_that_arrive_while_the_loop_is_blocked_get_the_kernels_arrival_time() -> None:
    """The event loop cannot even see the socket while it is blocked; the kernel's timestamp still tells."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    sent_at: list[float] = []

    def serve_one() -> None:  # a server on its own thread: it sends while the client's loop is blocked
        conn, _ = listener.accept()
        time.sleep(0.1)
        sent_at.append(time.perf_counter())
        conn.sendall(b"first")
        conn.recv(1)  # until the client closes
        conn.close()

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    stream = await ArrivalBackend(time.perf_counter, httpcore2).connect_tcp("127.0.0.1", port, timeout=5)
    time.sleep(0.4)  # blocked from before the bytes come until well after
    data = await stream.read(65536, timeout=5)
    read_at = time.perf_counter()
    assert data == b"first" and sent_at
    assert stream.last_arrival is not None
    assert read_at - sent_at[0] >= 0.25  # the read really was late ...
    assert abs(stream.last_arrival - sent_at[0]) < 0.05  # ... and the arrival time is still when it was sent
    await stream.aclose()
    thread.join(5)
    listener.close()


def test_a_stamped_socket_reads_like_a_socket() -> None:
    a, b = socket.socketpair()
    s = StampedSocket(a.family, a.type, fileno=a.detach())
    b.sendall(b"abcdef")
    buf = bytearray(4)
    assert s.recv_into(buf) == 4 and bytes(buf) == b"abcd"
    assert s.recv(10) == b"ef"
    b.close()
    assert s.recv(10) == b""
    s.close()


async def test_reads_split_at_max_bytes_keep_the_stamp_and_eof_reads_empty() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"abcdef")
        await writer.drain()
        writer.close()

    server, port = await serve(handler)
    stream = await ArrivalBackend(time.perf_counter, httpcore2).connect_tcp("127.0.0.1", port, timeout=5)
    first = await stream.read(4, timeout=5)
    stamp = stream.last_arrival
    rest = b""
    while len(first + rest) < 6:
        rest += await stream.read(4, timeout=5)
    assert first + rest == b"abcdef"
    assert await stream.read(4, timeout=5) == b""  # the server closed: end of stream, not an error
    assert stamp is not None and stream.last_arrival is not None and stream.last_arrival >= stamp
    await stream.aclose()
    server.close()


@pytest.mark.parametrize("errors", [httpcore, httpcore2])
async def test_failures_raise_the_given_librarys_errors(errors) -> None:
    backend = ArrivalBackend(time.perf_counter, errors)
    with pytest.raises(errors.ConnectError):
        await backend.connect_tcp("127.0.0.1", 9, timeout=2)

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server, port = await serve(silent)
    stream = await backend.connect_tcp("127.0.0.1", port, timeout=5)
    await stream.write(b"hello?", timeout=5)
    with pytest.raises(errors.ReadTimeout):
        await stream.read(100, timeout=0.1)
    await stream.aclose()
    server.close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True)
    return cert, key


async def test_tls_handshake_and_stamped_reads(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        writer.write(b"echo " + line)
        await writer.drain()
        writer.close()

    server, port = await serve(handler, server_ctx)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    backend = ArrivalBackend(time.perf_counter, httpcore2)
    stream = await backend.connect_tcp("127.0.0.1", port, timeout=5)
    stream = await stream.start_tls(client_ctx, server_hostname="localhost", timeout=5)
    assert stream.get_extra_info("ssl_object") is not None
    start = time.perf_counter()
    await stream.write(b"ping\n", timeout=5)
    data = b""
    while not data.endswith(b"\n"):
        data += await stream.read(1024, timeout=5)
    assert data == b"echo ping\n"
    assert stream.last_arrival is not None and start <= stream.last_arrival <= time.perf_counter()
    await stream.aclose()

    plain = await backend.connect_tcp("127.0.0.1", port, timeout=5)  # a certificate the client does not trust
    with pytest.raises(httpcore2.ConnectError):
        await plain.start_tls(ssl.create_default_context(), server_hostname="localhost", timeout=5)
    server.close()


@pytest.mark.parametrize("errors", [httpcore, httpcore2])
async def test_a_request_starts_when_connecting_began_then_when_its_first_bytes_left(errors) -> None:
    """One request at a time on a connection: a write after a read begins the next request."""
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):
            writer.write(b"answer")
            await writer.drain()
        writer.close()

    server, port = await serve(handler)
    before = time.perf_counter()
    stream = await ArrivalBackend(time.perf_counter, errors).connect_tcp("127.0.0.1", port, timeout=5)
    assert stream.requests == 0 and stream.sent_at is None
    assert stream.connecting_at is not None and before <= stream.connecting_at <= time.perf_counter()
    response = type("Response", (), {"extensions": {"network_stream": stream}})()
    assert arrival.sent_of(response) is None  # nothing sent yet

    await stream.write(b"GET / HTTP/1.1\r\n", timeout=5)
    first_write = stream.sent_at
    await stream.write(b"Host: x\r\n\r\n", timeout=5)  # same request: the stamp stays
    assert stream.requests == 1 and stream.sent_at == first_write
    assert arrival.sent_of(response) == stream.connecting_at  # set-up counts for the request it was opened for
    assert await stream.read(65536, timeout=5) == b"answer"

    await asyncio.sleep(0.1)  # the connection idles in the pool
    await stream.write(b"GET / HTTP/1.1\r\n\r\n", timeout=5)
    assert stream.requests == 2 and stream.sent_at is not None and stream.sent_at - first_write >= 0.1
    assert arrival.sent_of(response) == stream.sent_at
    assert arrival.sent_of(type("Response", (), {"extensions": {}})()) is None  # another kind of connection
    await stream.aclose()
    server.close()


def test_request_start_outside_the_call_falls_back_to_the_calls_start() -> None:
    assert began(4.5, 4.0, 6.0) == 4.5
    assert began(None, 4.0, 6.0) == 4.0
    assert began(3.0, 4.0, 6.0) == 4.0  # a connection opened before this call, for a request that never went
    assert began(7.0, 4.0, 6.0) == 4.0


def test_an_arrival_outside_the_call_is_not_used() -> None:
    assert received(5.0, 4.0, 6.0) == 5.0
    assert received(None, 4.0, 6.0) == 6.0
    assert received(3.0, 4.0, 6.0) == 6.0  # before the call started: a stale note of an earlier response
    assert received(7.0, 4.0, 6.0) == 6.0


def test_a_proxy_from_the_environment_keeps_the_librarys_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY",
                 "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert not _proxied("https://api.openai.com/v1")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert _proxied("https://api.openai.com/v1")
    assert not _proxied("http://127.0.0.1:8000/v1")  # only https goes through that proxy
    monkeypatch.setenv("NO_PROXY", "api.openai.com")
    assert not _proxied("https://api.openai.com/v1")


def test_addresses_alternate_between_families_in_resolver_order() -> None:
    v6 = [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (f"::{i}", 443, 0, 0)) for i in (1, 2)]
    v4 = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (f"10.0.0.{i}", 443)) for i in (1, 2, 3)]
    order = [info[4][0] for info in _interleave([*v6, *v4])]
    assert order == ["::1", "10.0.0.1", "::2", "10.0.0.2", "10.0.0.3"]


@pytest.mark.skipif(not KERNEL_STAMPS, reason="the racing connect serves the kernel-stamped sockets")
async def test_an_address_that_never_answers_does_not_stop_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    """Happy Eyeballs: a silent first address (a broken IPv6 route, say) yields to the next within 250 ms."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    good = (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))
    silent = (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.2", port))  # the test makes it hang
    refused = (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 9))
    real_attempt = arrival._attempt

    async def attempt(info, local_address):  # type: ignore[no-untyped-def]
        if info is silent:
            await asyncio.sleep(3600)
        return await real_attempt(info, local_address)

    async def resolve(host, port, **kwargs):  # type: ignore[no-untyped-def]
        return [refused, silent, good]

    monkeypatch.setattr(arrival, "_attempt", attempt)
    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", resolve)
    stream = await ArrivalBackend(time.perf_counter, httpcore2).connect_tcp("example.test", port, timeout=5)
    assert stream.get_extra_info("server_addr") == ("127.0.0.1", port)
    await stream.aclose()

    async def only_bad(host, port, **kwargs):  # type: ignore[no-untyped-def]
        return [refused]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", only_bad)
    with pytest.raises(httpcore2.ConnectError):
        await ArrivalBackend(time.perf_counter, httpcore2).connect_tcp("example.test", 9, timeout=5)
    listener.close()


async def test_localhost_connects_over_whichever_family_listens() -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # IPv4 only; "localhost" may resolve to ::1 first
    port = listener.getsockname()[1]
    stream = await ArrivalBackend(time.perf_counter, httpcore2).connect_tcp("localhost", port, timeout=5)
    assert stream.get_extra_info("server_addr")[0] == "127.0.0.1"
    await stream.aclose()
    listener.close()

"""Connections that note when each piece of an answer arrived, so the daemon's own load cannot skew TTFT.

With many streams in flight, first chunks that arrive together are parsed one task after another: the task that
parses the last of them runs after every other task the same turn of the event loop made ready, so a clock read
while parsing reports it up to tens of milliseconds after it arrived; and a loop busy with other work (or waiting
for the GIL) reads the socket late. Here every read of a TCP socket also fetches the kernel's receive timestamp
of the data (``SO_TIMESTAMPNS``, Linux), so an arrival time is when the bytes reached this host, whatever the
process was doing then; where the kernel gives none, the clock is read in the protocol's ``data_received``, which
the loop calls for every readable socket before it steps any task. A provider takes the arrival time of the bytes
that completed its first content event (``ArrivalStream.last_arrival``). With TLS the raw reads carry the
timestamps and the decrypted data takes the stamp of the read that completed it.

``ArrivalBackend`` is an httpcore network backend on plain asyncio (connect, TLS, reads with timeouts, writes
with back-pressure). It serves both the ``httpcore`` of httpx and the ``httpcore2`` of the openai SDK's httpx2:
the module whose exceptions it raises is passed in. ``arrival_transport`` builds an httpx transport on it.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

from monitor.stamps import KERNEL_STAMPS, StampedSocket, on_clock
from monitor.tls import default_context

HIGH_WATER = 256 * 1024  # bytes buffered before reading from the socket pauses


class _Protocol(asyncio.Protocol):
    """Queues what the socket delivers, each piece stamped with its arrival time on `clock`."""

    def __init__(self, clock: Callable[[], float], sock: StampedSocket | None = None):
        self.clock = clock
        self._sock = sock
        self.queue: deque[tuple[float, bytes]] = deque()
        self.buffered = 0
        self.eof = False
        self.error: BaseException | None = None
        self.transport: asyncio.Transport | None = None
        self._readable: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._paused_reading = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def stamp(self) -> float:
        """The arrival time of the data being delivered: the kernel's, moved onto `clock`, else now."""
        return on_clock(getattr(self._sock, "kernel_time", None), self.clock())  # unset until the first read

    def data_received(self, data: bytes) -> None:
        self.queue.append((self.stamp(), bytes(data)))
        self.buffered += len(data)
        if self.buffered > HIGH_WATER and not self._paused_reading and self.transport is not None:
            self._paused_reading = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return False  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake_reader()
        self.resume_writing()

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        waiter, self._writable = self._writable, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def consumed(self, n: int) -> None:
        self.buffered -= n
        if self._paused_reading and self.buffered <= HIGH_WATER // 4 and self.transport is not None:
            self._paused_reading = False
            self.transport.resume_reading()

    async def readable(self) -> None:
        if self.queue or self.eof:
            return
        self._readable = asyncio.get_running_loop().create_future()
        try:
            await self._readable
        finally:
            self._readable = None

    async def writable(self) -> None:
        if self._writable is not None:
            await asyncio.shield(self._writable)

    def _wake_reader(self) -> None:
        if self._readable is not None and not self._readable.done():
            self._readable.set_result(None)


class ArrivalStream:
    """An httpcore network stream that notes when requests left and answers arrived.

    ``last_arrival`` is when the bytes the last `read` returned arrived. ``sent_at`` is when the current request's
    first bytes were handed to the kernel: HTTP/1.1 sends one request at a time on a connection, so a write after
    a read begins the next request. ``requests`` counts them; ``connecting_at`` is when connecting began.
    """

    def __init__(self, protocol: _Protocol, errors: ModuleType, connecting_at: float | None = None):
        self._p = protocol
        self._errors = errors
        self.last_arrival: float | None = None
        self.connecting_at = connecting_at
        self.sent_at: float | None = None
        self.requests = 0
        self._between_requests = True

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        p = self._p
        if not p.queue and not p.eof:
            try:
                async with asyncio.timeout(timeout):
                    await p.readable()
            except TimeoutError:
                raise self._errors.ReadTimeout(f"no data in {timeout}s") from None
        if p.queue:
            stamp, data = p.queue.popleft()
            if len(data) > max_bytes:
                p.queue.appendleft((stamp, data[max_bytes:]))
                data = data[:max_bytes]
            p.consumed(len(data))
            self.last_arrival = stamp
            self._between_requests = True
            return data
        if p.error is not None:
            raise self._errors.ReadError(str(p.error) or type(p.error).__name__) from p.error
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        p = self._p
        if p.transport is None or p.transport.is_closing():
            raise self._errors.WriteError("connection closed")
        if self._between_requests:
            self._between_requests = False
            self.requests += 1
            self.sent_at = p.clock()
        p.transport.write(buffer)
        try:
            async with asyncio.timeout(timeout):
                await p.writable()
        except TimeoutError:
            raise self._errors.WriteTimeout(f"could not send in {timeout}s") from None
        if p.error is not None:
            raise self._errors.WriteError(str(p.error) or type(p.error).__name__) from p.error

    async def aclose(self) -> None:
        if self._p.transport is not None:
            self._p.transport.close()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> ArrivalStream:
        p = self._p
        assert p.transport is not None
        try:
            async with asyncio.timeout(timeout):
                tls = await asyncio.get_running_loop().start_tls(p.transport, p, ssl_context,
                                                                 server_hostname=server_hostname)
        except TimeoutError:
            p.transport.abort()
            raise self._errors.ConnectTimeout(f"TLS handshake took over {timeout}s") from None
        except (OSError, ssl.SSLError, ConnectionError) as e:
            p.transport.abort()
            raise self._errors.ConnectError(str(e)) from e
        if tls is None:
            raise self._errors.ConnectError("connection closed during the TLS handshake")
        p.transport = tls  # type: ignore[assignment]
        return self

    def get_extra_info(self, info: str) -> Any:
        p = self._p
        if info == "is_readable":  # an idle keep-alive connection that got data or EOF is no longer usable
            return bool(p.queue) or p.eof
        if p.transport is None:
            return None
        key = {"ssl_object": "ssl_object", "client_addr": "sockname", "server_addr": "peername",
               "socket": "socket"}.get(info)
        return p.transport.get_extra_info(key) if key else None


HAPPY_EYEBALLS_S = 0.25  # asyncio's and RFC 8305's recommended delay before racing the next address

AddrInfo = tuple[Any, Any, int, str, Any]


def _interleave(infos: list[AddrInfo]) -> list[AddrInfo]:
    """Resolver order, families alternating (the first family first), as RFC 8305 section 4 asks."""
    by_family: dict[Any, list[AddrInfo]] = {}
    for info in infos:
        by_family.setdefault(info[0], []).append(info)
    queues = list(by_family.values())
    out: list[AddrInfo] = []
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out


async def _attempt(info: AddrInfo, local_address: str | None) -> StampedSocket:
    family, kind, proto, _, address = info
    sock = StampedSocket(family, kind, proto)
    try:
        sock.setblocking(False)
        sock.enable_stamps()
        if local_address:
            sock.bind((local_address, 0))
        await asyncio.get_running_loop().sock_connect(sock, address)
    except BaseException:
        sock.close()
        raise
    return sock


def _first_connected(done: set[asyncio.Task[StampedSocket]], errors: list[BaseException]) -> StampedSocket | None:
    """The first attempt of `done` that connected (others that also did are closed); failures into `errors`."""
    won = None
    for task in done:
        if task.cancelled():
            continue
        if task.exception() is not None:
            errors.append(task.exception())  # type: ignore[arg-type]
        elif won is None:
            won = task.result()
        else:
            task.result().close()
    return won


def _close_connected(task: asyncio.Task[StampedSocket]) -> None:
    if not task.cancelled() and task.exception() is None:
        task.result().close()


class ArrivalBackend:
    """httpcore network backend on asyncio whose streams note arrival times with `clock`."""

    def __init__(self, clock: Callable[[], float], errors: ModuleType):
        self._clock = clock
        self._errors = errors

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> ArrivalStream:
        loop = asyncio.get_running_loop()
        connecting_at = self._clock()
        try:
            async with asyncio.timeout(timeout):
                if KERNEL_STAMPS:
                    sock = await self._connect_stamped(host, port, local_address)
                    protocol = _Protocol(self._clock, sock)
                    await loop.create_connection(lambda: protocol, sock=sock)
                else:
                    protocol = _Protocol(self._clock)
                    await loop.create_connection(lambda: protocol, host, port, happy_eyeballs_delay=HAPPY_EYEBALLS_S,
                                                 local_addr=(local_address, 0) if local_address else None)
        except TimeoutError:
            raise self._errors.ConnectTimeout(f"no connection to {host}:{port} in {timeout}s") from None
        except OSError as e:
            raise self._errors.ConnectError(str(e)) from e
        return self._stream(protocol, socket_options, connecting_at)

    @staticmethod
    async def _connect_stamped(host: str, port: int, local_address: str | None) -> StampedSocket:
        """Connect a `StampedSocket` to `host`, Happy Eyeballs style (RFC 8305), as asyncio does for its own.

        Addresses are tried in resolver order with the families interleaved; each attempt gets
        `HAPPY_EYEBALLS_S` before the next one starts beside it, and the first to connect wins. A host whose
        IPv6 route is broken still connects over IPv4 in a quarter of a second instead of timing out.
        """
        loop = asyncio.get_running_loop()
        infos = _interleave(await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        if not infos:
            raise OSError(f"{host} resolves to no address")
        errors: list[BaseException] = []
        pending: set[asyncio.Task[StampedSocket]] = set()
        won: StampedSocket | None = None
        try:
            for info in infos:
                pending.add(asyncio.ensure_future(_attempt(info, local_address)))
                done, pending = await asyncio.wait(pending, timeout=HAPPY_EYEBALLS_S,
                                                   return_when=asyncio.FIRST_COMPLETED)
                won = _first_connected(done, errors)
                if won is not None:
                    return won
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                won = _first_connected(done, errors)
                if won is not None:
                    return won
        finally:
            for task in pending:  # the losers: an attempt closes its socket when cancelled or after it connects
                task.cancel()
                task.add_done_callback(_close_connected)
        if len(errors) == 1 and isinstance(errors[0], OSError):
            raise errors[0]
        raise OSError(f"cannot connect to {host}:{port}: " + "; ".join(str(e) for e in errors))

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None) -> ArrivalStream:
        loop = asyncio.get_running_loop()
        protocol = _Protocol(self._clock)
        connecting_at = self._clock()
        try:
            async with asyncio.timeout(timeout):
                await loop.create_unix_connection(lambda: protocol, path)
        except TimeoutError:
            raise self._errors.ConnectTimeout(f"no connection to {path} in {timeout}s") from None
        except OSError as e:
            raise self._errors.ConnectError(str(e)) from e
        return self._stream(protocol, socket_options, connecting_at)

    def _stream(self, protocol: _Protocol, socket_options: Iterable[Any] | None, connecting_at: float) -> ArrivalStream:
        sock = protocol.transport.get_extra_info("socket") if protocol.transport else None
        for option in socket_options or ():
            if sock is not None:
                sock.setsockopt(*option)
        return ArrivalStream(protocol, self._errors, connecting_at)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


# How long a pooled connection may sit idle before we close it: under the 5 s after which many servers and load
# balancers close an idle keep-alive connection (Node's http server, uvicorn, several cloud balancers); at httpx's
# own 5 s a call could be sent on a connection just as the server closed it, and fail as a broken connection
KEEPALIVE_EXPIRY_S = 4.0


def arrival_transport(httpx_mod: ModuleType, httpcore_mod: ModuleType, clock: Callable[[], float], *,
                      max_connections: int, max_keepalive: int, keepalive_expiry: float = KEEPALIVE_EXPIRY_S) -> Any:
    """An ``AsyncHTTPTransport`` of `httpx_mod` whose connections are `ArrivalStream`s.

    httpx has no public hook for the network backend, so the transport's connection pool is replaced by one
    built on it (the limits are the pool's).
    """
    transport = httpx_mod.AsyncHTTPTransport(verify=default_context(httpx_mod))
    transport._pool = httpcore_mod.AsyncConnectionPool(
        ssl_context=default_context(httpx_mod), max_connections=max_connections,
        max_keepalive_connections=max_keepalive, keepalive_expiry=keepalive_expiry,
        network_backend=ArrivalBackend(clock, httpcore_mod))
    return transport


def _stream_of(response: Any) -> Any:
    return getattr(response, "extensions", {}).get("network_stream")


def arrival_of(response: Any) -> float | None:
    """When the bytes the response's connection last delivered arrived, or None on another kind of connection."""
    return getattr(_stream_of(response), "last_arrival", None)


def sent_of(response: Any) -> float | None:
    """When the response's request began on the wire, or None on another kind of connection.

    That is when its first bytes were handed to the kernel, or, on a connection opened for it, when connecting
    began (a new connection's set-up is part of what the caller waits for).
    """
    stream = _stream_of(response)
    if stream is None or getattr(stream, "sent_at", None) is None:
        return None
    if stream.requests == 1 and stream.connecting_at is not None:
        return stream.connecting_at
    return stream.sent_at

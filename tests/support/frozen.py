"""A TCP relay to a real server that can be frozen: the server as a client sees it once it stops answering.

Frozen, the relay still takes every connection and reads nothing more from either side: the bytes a client
sends are taken by the kernel, no answer ever comes (a stopped PostgreSQL, a VM paused, a proxy whose backend
hangs). A socket that takes connections and never answers is `FrozenRelay(None)`.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from typing import Any, Self


def pump(a: socket.socket, b: socket.socket, closed: threading.Event, frozen: threading.Event | None = None) -> None:
    """Pass bytes both ways between `a` and `b` until either ends, `closed` is set, or `frozen` is (then both
    sockets stay open: what either side sends is never passed on nor answered)."""
    peers = {a: b, b: a}
    while not closed.is_set():
        try:
            ready, _, _ = select.select([a, b], [], [], 0.1)
        except (OSError, ValueError):  # `close` closed the sockets (between two selects): the relay is done
            return
        if frozen is not None and frozen.is_set():
            return
        for s in ready:
            try:
                data = s.recv(65536)
            except OSError:
                data = b""
            if not data:
                with contextlib.suppress(OSError):
                    peers[s].shutdown(socket.SHUT_WR)
                return
            with contextlib.suppress(OSError):  # the other end gone: its own recv ends the pump
                peers[s].sendall(data)


class Relay:
    """Relay connections taken on `listener` to `upstream` (host, port), both ways, until `close`; a connection taken
    while `held()` is kept open and never read (nor relayed)."""

    def __init__(self, listener: socket.socket, upstream: tuple[str, int] | None,
                 frozen: threading.Event | None = None):
        self.upstream = upstream
        self.frozen = frozen
        self._listener = listener
        self.port = int(listener.getsockname()[1])
        self._sockets: list[socket.socket] = []
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def held(self) -> bool:
        return self.upstream is None or (self.frozen is not None and self.frozen.is_set())

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._sockets.append(client)  # kept open, never read while held
            if self.held() or self.upstream is None:
                continue
            server = socket.create_connection(self.upstream)  # from this thread: the host's own network
            self._sockets.append(server)
            threading.Thread(target=pump, args=(client, server, self._closed, self.frozen), daemon=True).start()

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        for s in self._sockets:
            with contextlib.suppress(OSError):
                s.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()


class FrozenRelay(Relay):
    """Relay 127.0.0.1:`port` to `upstream` (host, port) until `freeze`; with no upstream, frozen from the start."""

    def __init__(self, upstream: tuple[str, int] | None):
        super().__init__(socket.create_server(("127.0.0.1", 0)), upstream, threading.Event())
        if upstream is None:
            self.freeze()

    def freeze(self) -> None:
        assert self.frozen is not None
        self.frozen.set()

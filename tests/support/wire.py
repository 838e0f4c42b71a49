"""A TCP proxy in front of PostgreSQL that counts round trips: each time a client speaks after the server did.

Shared by the round-trip tests and `benchmarks/store_roundtrips.py` (which charges each round trip to the code
holding that connection, by the client's port). Standard library only: the benchmark imports it before it
imports `monitor` from the checkout it measures."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any


class RoundTrips:
    """Forward 127.0.0.1:`port` (0: any free port) to the server; `count` is the round trips of every connection
    so far, and `turn`, if given, is called with the client's port at each one."""

    def __init__(self, host: str, port: int, *, listen: int = 0, turn: Callable[[int], None] | None = None):
        self.upstream = (host, port)
        self.count = 0
        self.turn = turn
        self._lock = threading.Lock()
        self._sock = socket.create_server(("127.0.0.1", listen))
        self.port = int(self._sock.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, addr = self._sock.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            state = {"last": "server"}
            threading.Thread(target=self._pump, args=(client, server, state, addr[1]), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, state, None), daemon=True).start()

    def _pump(self, src: Any, dst: Any, state: dict[str, str], client_port: int | None) -> None:
        """Forward one direction; `client_port` is None for the server's."""
        side = "server" if client_port is None else "client"
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if client_port is not None and state["last"] != "client":
                    with self._lock:
                        self.count += 1  # before forwarding: counted before the answer can come back
                    if self.turn is not None:
                        self.turn(client_port)
                state["last"] = side
                dst.sendall(data)
        for s in (src, dst):  # shut down first: that wakes the other direction's recv and tells the peer
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def close(self) -> None:
        self._sock.close()

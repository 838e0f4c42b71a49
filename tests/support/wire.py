"""A TCP proxy in front of PostgreSQL that counts round trips: each time a client speaks after the server did."""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any


class RoundTrips:
    """Forward 127.0.0.1:`port` to the server; `count` is the round trips of every connection so far."""

    def __init__(self, host: str, port: int):
        self.upstream = (host, port)
        self.count = 0
        self._lock = threading.Lock()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            state = {"last": "server"}
            threading.Thread(target=self._pump, args=(client, server, state, "client"), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, state, "server"), daemon=True).start()

    def _pump(self, src: Any, dst: Any, state: dict[str, str], side: str) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                if side == "client" and state["last"] != "client":
                    with self._lock:
                        self.count += 1  # before forwarding: counted before the answer can come back
                state["last"] = side
                dst.sendall(data)
        for s in (src, dst):  # shut down first: that wakes the other direction's recv and tells the peer
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def close(self) -> None:
        self._sock.close()

"""A TCP relay to a real PostgreSQL that can stop an answer between its CommandComplete and its ReadyForQuery.

Run as its own process (`python -m tests.support.split_relay HOST PORT HOLD_S`; it prints its port): a client blocked
inside libpq may hold the GIL (psycopg's C build calls PQgetResult without releasing it), and a relay in the same
process would then never pass another byte. SIGUSR1 arms the connections open at that moment: on each, the next
`SELECT 1` answer is passed up to its CommandComplete and the rest (ReadyForQuery) held `HOLD_S` seconds, a server
that stopped answering mid-answer (its process stopped, a partition) as a client sees it, then passed on so that a
client waiting for good is released and a test fails rather than hangs. Connect with `sslmode=disable` and
`gssencmode=disable`: the relay reads the server's messages, which an encrypted session would hide.
"""

from __future__ import annotations

import contextlib
import select
import signal
import socket
import sys
import threading
import time

_pumps: list[_Pump] = []


class _Pump:
    def __init__(self, client: socket.socket, server: socket.socket, hold_s: float):
        self.client, self.server, self.hold_s = client, server, hold_s
        self.armed = False
        self._buf = b""
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            while True:
                ready, _, _ = select.select([self.client, self.server], [], [])
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    if s is self.client:
                        self.server.sendall(data)
                    else:
                        self._from_server(data)
        except OSError:
            return
        finally:
            for s in (self.client, self.server):
                with contextlib.suppress(OSError):
                    s.close()

    def _from_server(self, data: bytes) -> None:
        """Pass whole messages on; an armed pump passes a `SELECT 1` CommandComplete, then holds what follows."""
        self._buf += data
        at = 0
        while len(self._buf) - at >= 5:
            size = 1 + int.from_bytes(self._buf[at + 1:at + 5], "big")
            if len(self._buf) - at < size:
                break
            kind, body = self._buf[at:at + 1], self._buf[at + 5:at + size]
            at += size
            if self.armed and kind == b"C" and body.startswith(b"SELECT 1"):
                self.armed = False
                self.client.sendall(self._buf[:at])
                self._buf = self._buf[at:]
                at = 0
                time.sleep(self.hold_s)  # what the server sends meanwhile waits in the socket's buffer
        self.client.sendall(self._buf[:at])
        self._buf = self._buf[at:]


def main() -> None:
    host, port, hold_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    listener = socket.create_server(("127.0.0.1", 0))

    def arm(*_: object) -> None:
        for p in _pumps:
            p.armed = True

    signal.signal(signal.SIGUSR1, arm)
    print(listener.getsockname()[1], flush=True)
    while True:
        client, _ = listener.accept()
        _pumps.append(_Pump(client, socket.create_connection((host, port)), hold_s))


if __name__ == "__main__":
    main()

"""A TCP relay to a real server across a network path that can be cut: a partition, as a client sees one.

`FrozenRelay` (tests/support/frozen.py) stops answering but its kernel still acknowledges every byte and every
keepalive probe: a stopped server process. A path that goes silent (a partition, a dropped NAT or firewall entry, a
paused VM) acknowledges nothing. Made real here: the relay listens inside a network namespace of its own (made for
one thread with unshare(2): root or CAP_SYS_ADMIN, Linux) and `cut` takes that namespace's loopback down, so nothing
passes between the client and the relay any more, either way, and neither end is told. The relay's own connection to
the server stays up, as a server behind a partition keeps its end. Connect the client from `inside` (a socket stays
in the namespace it was made in, whichever thread uses it later), or from a thread that `enter`ed it.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import os
import socket
import subprocess
from collections.abc import Callable
from typing import TypeVar

from tests.support.frozen import Relay

T = TypeVar("T")
CLONE_NEWNET = 0x40000000


def _unshare_net() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True, capture_output=True)


def why_not() -> str | None:
    """Why a namespace cannot be made here (None: it can)."""
    if not os.path.exists("/proc/self/ns/net"):
        return "no network namespaces (not Linux)"
    with concurrent.futures.ThreadPoolExecutor(1, initializer=_unshare_net) as probe:
        try:
            probe.submit(lambda: None).result(10)
        except Exception as e:  # EPERM without CAP_SYS_ADMIN, or no `ip`
            return f"cannot make a network namespace: {e}"
    return None


class CutRelay(Relay):
    """Relay a port on the loopback of a network namespace of its own to `upstream` (host, port) until `cut`."""

    def __init__(self, upstream: tuple[str, int]):
        self._inside = concurrent.futures.ThreadPoolExecutor(1, initializer=_unshare_net)
        self._netns = self.inside(lambda: os.open("/proc/thread-self/ns/net", os.O_RDONLY))
        super().__init__(self.inside(lambda: socket.create_server(("127.0.0.1", 0))), upstream)

    def inside(self, fn: Callable[[], T]) -> T:
        """Run `fn` in the namespace (what it connects to 127.0.0.1 is the relay's side)."""
        return self._inside.submit(fn).result(60)

    def enter(self) -> None:
        """Move the calling thread into the namespace (what it connects to later goes there too)."""
        if ctypes.CDLL(None, use_errno=True).setns(self._netns, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))

    def cut(self) -> None:
        """From now on nothing passes between the client and the relay, and nothing tells either end."""
        self.inside(lambda: subprocess.run(["ip", "link", "set", "lo", "down"], check=True, capture_output=True))

    def close(self) -> None:
        super().close()
        self._inside.shutdown(wait=False)
        os.close(self._netns)

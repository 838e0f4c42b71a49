"""Kernel receive timestamps: when bytes reached this host, whatever the process was doing then.

A socket with ``SO_TIMESTAMPNS`` set gets, with every read, the time the kernel received the data (Linux). The
client's connections (`providers.arrival`) use it to time answers and the simulator uses it to time requests,
so that neither a busy event loop nor a process waiting for the CPU moves a measured time.
"""

from __future__ import annotations

import socket
import struct
import sys
import time
from typing import Any

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux's value (asm-generic); Python does not name it
KERNEL_STAMPS = sys.platform == "linux"
_ANCILLARY = socket.CMSG_SPACE(16) if hasattr(socket, "CMSG_SPACE") else 0
_MAX_LAG_S = 60.0  # a kernel stamp older than this is a wall-clock step, not a delay: ignore it


class StampedSocket(socket.socket):
    """A TCP socket whose reads also fetch the kernel's receive timestamp (wall clock) of what they return.

    asyncio's transports call ``recv`` (plain protocols) and ``recv_into`` (buffered ones, such as TLS); both
    go through ``recvmsg`` here. ``kernel_time`` is the timestamp of the last read, or None without one.
    """

    __slots__ = ("kernel_time",)
    kernel_time: float | None

    def enable_stamps(self) -> bool:
        """Ask the kernel to timestamp what this socket receives; False where it cannot."""
        self.kernel_time = None
        try:
            self.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError:
            return False
        return True

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        data, ancillary, _, _ = self.recvmsg(bufsize, _ANCILLARY, flags)
        self._note(ancillary)
        return data

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        view = memoryview(buffer)
        n, ancillary, _, _ = self.recvmsg_into([view[:nbytes] if nbytes else view], _ANCILLARY, flags)
        self._note(ancillary)
        return n

    def _note(self, ancillary: list[tuple[int, int, bytes]]) -> None:
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
                sec, nsec = struct.unpack_from("qq", data)
                self.kernel_time = sec + nsec * 1e-9
                return
        self.kernel_time = None


def on_clock(kernel_time: float | None, now: float) -> float:
    """A kernel timestamp (wall clock) moved onto the clock that reads `now`; `now` without a usable one."""
    if kernel_time is not None:
        lag = time.time() - kernel_time
        if 0.0 <= lag <= _MAX_LAG_S:
            return now - lag
    return now


class StampingListener(socket.socket):
    """A listening TCP socket whose accepted connections are `StampedSocket`s with timestamps on.

    asyncio's server accepts through ``accept``; each connection is also kept in ``accepted`` under its file
    descriptor until its protocol claims it (`claim`), since the transport hands protocols only a wrapper.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.accepted: dict[int, StampedSocket] = {}

    def accept(self) -> tuple[socket.socket, Any]:
        fd, addr = self._accept()  # type: ignore[attr-defined]
        sock = StampedSocket(self.family, self.type, self.proto, fileno=fd)
        if KERNEL_STAMPS and sock.enable_stamps():
            self.accepted[fd] = sock
        return sock, addr

    def claim(self, fd: int) -> StampedSocket | None:
        """The stamped socket accepted as `fd`, once (None if it has no timestamps)."""
        return self.accepted.pop(fd, None)

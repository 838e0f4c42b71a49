"""Play a timed response script over ASGI: headers, paced body parts, stalls, cuts and TCP resets.

The API modules turn a plan into a :class:`Script` (pure data); :class:`Script` is itself the ASGI response,
waiting on an absolute schedule from the request's arrival so pacing does not drift. A TCP reset needs the
connection's transport, which uvicorn does not expose to apps: :func:`protocol_class` makes an h11 protocol
that records each transport in a registry the app looks up by (client, server) address.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
from collections.abc import MutableMapping
from typing import Any

import h11
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from monitor.stamps import StampedSocket, StampingListener, on_clock

Transports = MutableMapping[tuple[Any, Any], asyncio.Transport]
T0_KEY = "sim.t0"


def protocol_class(registry: Transports, listener: StampingListener | None = None) -> type[H11Protocol]:
    """Return an h11 protocol class that records open transports in ``registry``.

    Each request's arrival time (``scope[T0_KEY]``) is when its first bytes reached the host: the kernel's
    receive timestamp where `listener` gives the connection one, else when the bytes were handed to the
    protocol. A burst of requests parsed one after another, or a process waiting for the CPU, then does not
    delay the answers' schedule.
    """

    class SimProtocol(H11Protocol):
        _t0: float | None = None  # when the first bytes of the request being received arrived
        _stamped: StampedSocket | None = None

        def data_received(self, data: bytes) -> None:
            # Only bytes that begin a request start the clock: not the rest of a body whose early answer (a 401,
            # a 404) is already complete.
            if self._t0 is None and self.conn.their_state is h11.IDLE:
                kernel = self._stamped.kernel_time if self._stamped is not None else None
                self._t0 = on_clock(kernel, self.loop.time())
            scope = getattr(self, "scope", None)
            super().data_received(data)
            if getattr(self, "scope", None) is not scope and self._t0 is not None:
                self.scope[T0_KEY] = self._t0  # type: ignore[literal-required]  # the app's task has not run yet
                self._t0 = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            registry[(self.client, self.server)] = transport
            sock = transport.get_extra_info("socket")
            if sock is not None and listener is not None:
                self._stamped = listener.claim(sock.fileno())
            if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
                # No Nagle: each event must leave when scheduled, not wait for the client's delayed ACK.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def connection_lost(self, exc: Exception | None) -> None:
            registry.pop((self.client, self.server), None)
            super().connection_lost(exc)

    return SimProtocol


def arrival(scope: Scope) -> float:
    """Return the loop time the request arrived (set by the app's entry wrapper)."""
    return scope.get(T0_KEY) or asyncio.get_running_loop().time()


class Script:
    """A response as a list of timed steps; call it as an ASGI app to play it.

    Steps: ``start`` (status, headers), ``at`` (wait until this many seconds after arrival), ``sleep``,
    ``send`` (a body part), ``end`` (finish the body), ``close`` (FIN mid-body), ``reset`` (RST) and ``mark``
    (note when the previous step really happened, for /_sim/pacing).
    """

    def __init__(self, request_id: str | None = None) -> None:
        self.steps: list[tuple[str, Any]] = []
        self.request_id = request_id  # the id the response carries in its request-id header, minus "req_"

    def start(self, status: int, headers: dict[str, str]) -> Script:
        """Send the status line and headers."""
        self.steps.append(("start", (status, headers)))
        return self

    def at(self, offset_s: float) -> Script:
        """Wait until ``offset_s`` seconds after the request arrived."""
        self.steps.append(("at", offset_s))
        return self

    def sleep(self, seconds: float) -> Script:
        """Wait ``seconds`` from now."""
        self.steps.append(("sleep", seconds))
        return self

    def send(self, data: bytes | str) -> Script:
        """Send a body part."""
        self.steps.append(("send", data.encode() if isinstance(data, str) else data))
        return self

    def end(self) -> Script:
        """Finish the body."""
        self.steps.append(("end", None))
        return self

    def close(self) -> Script:
        """Close the connection mid-body (FIN, no reset)."""
        self.steps.append(("close", None))
        return self

    def reset(self) -> Script:
        """Abort the TCP connection with a reset."""
        self.steps.append(("reset", None))
        return self

    def mark(self, name: str) -> Script:
        """Record when the step before this one was played (loop time), next to when it was scheduled."""
        self.steps.append(("mark", name))
        return self

    def json(self, status: int, body: Any, headers: dict[str, str], delay_s: float = 0.0) -> Script:
        """Send a whole JSON response after ``delay_s`` seconds from arrival."""
        data = json.dumps(body).encode()
        hdrs = {**headers, "content-type": "application/json", "content-length": str(len(data))}
        return self.at(delay_s).start(status, hdrs).send(data).end()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        play = asyncio.ensure_future(self._play(scope, send))
        watch = asyncio.ensure_future(_until_disconnect(receive))
        try:
            await asyncio.wait({play, watch}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            play.cancel()
            watch.cancel()
        if play.done() and not play.cancelled():
            play.result()  # re-raise what went wrong while playing

    async def _play(self, scope: Scope, send: Send) -> None:
        loop = asyncio.get_running_loop()
        t0 = arrival(scope)
        due = t0
        for kind, arg in self.steps:
            if kind == "at":
                due = t0 + arg
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif kind == "mark":
                log = getattr(getattr(scope.get("app"), "state", None), "sim_pacing", None)
                if log is not None:  # the log build_app keeps; a Script played on its own has none
                    log.append({"request_id": self.request_id, "mark": arg, "arrived": t0, "scheduled": due,
                                "sent": loop.time()})
            elif kind == "sleep":
                await asyncio.sleep(arg)
            elif kind == "start":
                status, headers = arg
                raw = [(k.lower().encode(), str(v).encode()) for k, v in headers.items()]
                await send({"type": "http.response.start", "status": status, "headers": raw})
            elif kind == "send":
                await send({"type": "http.response.body", "body": arg, "more_body": True})
            elif kind == "end":
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            else:
                await _drop(scope, hard=kind == "reset")
                return


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _drop(scope: Scope, hard: bool) -> None:
    app = scope.get("app")
    registry: Transports | None = getattr(getattr(app, "state", None), "sim_transports", None)
    key = (_addr(scope.get("client")), _addr(scope.get("server")))
    transport = registry.get(key) if registry is not None else None
    if transport is None:
        # Served by something other than SimServer/serve: an exception is the closest we can get.
        raise ConnectionAbortedError("simulated connection drop")
    await asyncio.sleep(0.005)  # let what was sent reach the client first
    sock = transport.get_extra_info("socket")
    if hard and sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    else:
        transport.close()
    for _ in range(3):  # let uvicorn see the disconnect so it does not log an incomplete response
        await asyncio.sleep(0)


def _addr(value: Any) -> tuple[str, int] | None:
    return (str(value[0]), int(value[1])) if value else None

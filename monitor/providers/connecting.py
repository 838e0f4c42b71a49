"""Whether a call got as far as a connection: one whose time ran out while it was still connecting is a `connect`
failure, not a slow answer.

A call's timeout (one `asyncio.timeout` round the whole call) strikes before the HTTP library's own connect timeout
of the same length, which starts later. So a host that never answers the connection attempt (a firewall that drops
it, a blackholed route, an address nothing holds any more) or a TLS handshake that never ends was a `timeout` with
"no response yet", as a model slow to answer is. httpcore reports each step of making a connection to a request's
``trace`` extension (public API of both httpx flavours, whatever the transport); `watch_connecting` gives a client a
request hook that puts one on every request, which notes in the calling task's `watching` the step under way
(`watch_connecting_sync` does the same for a synchronous client, the embeddings one: its connect timeout strikes
first, and the SDK reports it as a timeout as it does a model slow to answer). Behind an HTTP proxy an https
target's connection is also the proxy's CONNECT and the TLS handshake through its tunnel; behind a SOCKS5 proxy
(``ALL_PROXY=socks5://``), the proxy's handshake.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Any

from monitor.providers.hooks import add_hooks, noting

# httpcore's connection steps (named after the module that takes them: connection., or proxy. for the TLS handshake
# through an HTTP proxy's tunnel, socks. for a SOCKS5 proxy's), and what each is in a message; CONNECT is the request
# that opens the tunnel
_STEPS = {"connect_tcp": "connecting (DNS, TCP)", "connect_unix_socket": "connecting", "start_tls": "the TLS handshake",
          "CONNECT": "the proxy's CONNECT", "setup_socks5_connection": "the SOCKS proxy's handshake"}


class Connecting:
    """The connection step a call's latest request is in (None: none, or it connected)."""

    step: str | None = None


_STATE: ContextVar[Connecting | None] = ContextVar("monitor_connecting", default=None)


def watching() -> contextlib.AbstractContextManager[Connecting]:
    """Note the connection steps of the requests made inside (in this task only) through a client with the hook."""
    return noting(_STATE, Connecting())


def never_connected(state: Connecting, timeout_s: float) -> str | None:
    """The message of a call whose `timeout_s` ran out in a connection step, else None."""
    return None if state.step is None else f"no connection in {timeout_s:g}s: {_STEPS[state.step]} did not finish"


def watch_connecting(client: Any) -> Any:
    """Add the hook to `client` (an async client of httpx or of the SDK's httpx2), its other hooks kept; return it."""
    return add_hooks(client, request=_traced)


def watch_connecting_sync(client: Any) -> Any:
    """Add the hook to `client`, a synchronous client of httpx or of the SDK's httpx2; return it."""
    return add_hooks(client, request=_traced_sync)


async def _traced(request: Any) -> None:
    _traced_sync(request, _trace)


def _traced_sync(request: Any, trace: Any = None) -> None:
    if (state := _STATE.get()) is not None:
        state.step = None  # a new request (a server that rejects stream_options is asked again)
        request.extensions["trace"] = trace or _note  # httpcore awaits an async client's trace, calls a sync one's


async def _trace(name: str, info: dict[str, Any]) -> None:
    _note(name, info)


def _note(name: str, info: dict[str, Any]) -> None:
    where, _, phase = name.rpartition(".")
    step = where.rpartition(".")[2]
    if (state := _STATE.get()) is None:
        return
    if step == "send_request_headers" and getattr(info.get("request"), "method", None) == b"CONNECT":
        step = "CONNECT"  # a proxy that never answers it has not reached the target (its answer ends the step)
    elif step == "receive_response_headers" and state.step == "CONNECT":
        step = "CONNECT"
    if step in _STEPS:
        # a step that failed raises its own error (typed as it is), or was cut by the call's timeout: it stays noted
        if phase == "started":
            state.step = step
        elif phase == "complete":
            state.step = None

"""An error reply whose body cannot be read, through the openai SDK: it does not decode as its Content-Encoding says
(gzip that is not), it breaks off (the server closes the connection before its Content-Length), or it stalls (the
server keeps the connection open partway through it until the call's timeout).

The SDK reads an error reply's body before it raises the status error that carries the status and headers. A body
that cannot be read fails that read with the HTTP library's error (a `DecodingError`, a `RemoteProtocolError`),
which carries neither: the call was a `bad_response` of unknown status, whatever the status said (a 429 was no
longer a rate limit). `keep_status` gives the SDK's HTTP client a response hook after which that failure is an
`UnreadStatus`, a status error of the SDK's own kind: the call is typed by its status as if the body had been read,
and its message says why the body was not. A body that stalls raises nothing the hook could turn: the call's
timeout cancels the read. So the hook also notes each response for `hearing` (forgotten at the next request), and
the timeout still knows which status and headers came. `keep_status_sync` does the same for a synchronous client
(the embeddings client), whose SDK reads the body inside the request and raises the HTTP library's error wrapped.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar
from typing import Any

import openai

from monitor.providers.hooks import add_hooks, noting
from monitor.providers.sse import TIMEOUTS, UNDECODABLE, broken


class UnreadStatus(openai.APIStatusError):
    """An HTTP error reply whose body could not be read; `cause` is the HTTP library's error (it did not decode, or
    it broke off)."""

    def __init__(self, response: Any, cause: Exception):
        super().__init__(f"Error code: {response.status_code}", response=response, body=None)
        self.cause = cause


class Heard:
    """What a call's latest request got back: `response` once its status line and headers came, None before (and
    again from the call's next request on: a server that rejects stream_options is asked again without them)."""

    response: Any = None


_HEARD: ContextVar[Heard | None] = ContextVar("monitor_heard", default=None)


def hearing() -> contextlib.AbstractContextManager[Heard]:
    """Note the responses of the requests made inside (in this task or thread only) through a client with the hook."""
    return noting(_HEARD, Heard())


def keep_status(client: Any) -> Any:
    """Add the hooks to `client` (an async client of httpx or of the SDK's httpx2), its other hooks kept; return it."""
    return add_hooks(client, request=_forget_async, response=_unread_error)


def keep_status_sync(client: Any) -> Any:
    """The same for a synchronous client (the embeddings client, which runs on a worker thread)."""
    return add_hooks(client, request=_forget, response=_unread_error_sync)


def _forget(request: Any) -> None:
    if (heard := _HEARD.get()) is not None:
        heard.response = None


async def _forget_async(request: Any) -> None:
    _forget(request)


def _noted(response: Any) -> bool:
    """Note `response` for `hearing`; whether it is an error reply."""
    if (heard := _HEARD.get()) is not None:
        heard.response = response
    return response.status_code >= 400


async def _unread_error(response: Any) -> None:
    """Make a failure to read an error reply's body an `UnreadStatus` (the body is read later, by the SDK, through
    `aiter_bytes`; the libraries have no public hook after the decoder). A timeout is left as it is: the body may
    not have broken off, only been slow."""
    if not _noted(response):
        return
    decoded = response.aiter_bytes

    async def aiter_bytes(chunk_size: int | None = None) -> AsyncIterator[bytes]:
        try:
            async with contextlib.aclosing(decoded(chunk_size)) as parts:
                async for part in parts:
                    yield part
        except TIMEOUTS:
            raise
        except (*UNDECODABLE, *broken()) as e:
            raise UnreadStatus(response, e) from e

    response.aiter_bytes = aiter_bytes


def _unread_error_sync(response: Any) -> None:
    """`_unread_error` for a synchronous client, whose `send` reads the body through `iter_bytes`."""
    if not _noted(response):
        return
    decoded = response.iter_bytes

    def iter_bytes(chunk_size: int | None = None) -> Iterator[bytes]:
        try:
            yield from decoded(chunk_size)  # closed with this generator
        except TIMEOUTS:
            raise
        except (*UNDECODABLE, *broken()) as e:
            raise UnreadStatus(response, e) from e

    response.iter_bytes = iter_bytes

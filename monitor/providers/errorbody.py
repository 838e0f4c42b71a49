"""An error reply whose body cannot be read, through the openai SDK: it does not decode as its Content-Encoding says
(gzip that is not), or it breaks off (the server closes the connection before its Content-Length).

The SDK reads an error reply's body before it raises the status error that carries the status and headers. A body
that cannot be read fails that read with the HTTP library's error (a `DecodingError`, a `RemoteProtocolError`),
which carries neither: the call was a `bad_response` of unknown status, whatever the status said (a 429 was no
longer a rate limit). `keep_status` gives the SDK's HTTP client a response hook after which that failure is an
`UnreadStatus`, a status error of the SDK's own kind: the call is typed by its status as if the body had been read,
and its message says why the body was not.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import openai

from monitor.providers.sse import BROKEN, TIMEOUTS, UNDECODABLE


class UnreadStatus(openai.APIStatusError):
    """An HTTP error reply whose body could not be read; `cause` is the HTTP library's error (it did not decode, or
    it broke off)."""

    def __init__(self, response: Any, cause: Exception):
        super().__init__(f"Error code: {response.status_code}", response=response, body=None)
        self.cause = cause


def keep_status(client: Any) -> Any:
    """Add the hook to `client` (an async client of httpx or of the SDK's httpx2), its other hooks kept; return it."""
    hooks = client.event_hooks
    client.event_hooks = {**hooks, "response": [*hooks.get("response", []), _unread_error]}
    return client


async def _unread_error(response: Any) -> None:
    """Make a failure to read an error reply's body an `UnreadStatus` (the body is read later, by the SDK, through
    `aiter_bytes`; the libraries have no public hook after the decoder). A timeout is left as it is: the body may
    not have broken off, only been slow."""
    if response.status_code < 400:
        return
    unread = (*UNDECODABLE, *BROKEN)
    decoded = response.aiter_bytes

    async def aiter_bytes(chunk_size: int | None = None) -> AsyncIterator[bytes]:
        try:
            async with contextlib.aclosing(decoded(chunk_size)) as parts:
                async for part in parts:
                    yield part
        except TIMEOUTS:
            raise
        except unread as e:
            raise UnreadStatus(response, e) from e

    response.aiter_bytes = aiter_bytes

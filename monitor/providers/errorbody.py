"""An error reply whose body does not decode as its Content-Encoding says (gzip that is not), through the openai SDK.

The SDK reads an error reply's body before it raises the status error that carries the status and headers. A body
that does not decode fails that read with the HTTP library's `DecodingError`, which carries neither: the call was a
`bad_response` of unknown status, whatever the status said (a 429 was no longer a rate limit). `keep_status` gives
the SDK's HTTP client a response hook after which that failure is an `UndecodableStatus`, a status error of the SDK's
own kind: the call is typed by its status as if the body had been read, and its message says the body was not.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import openai

from monitor.providers.sse import UNDECODABLE


class UndecodableStatus(openai.APIStatusError):
    """An HTTP error reply whose body does not decode as its Content-Encoding says; `cause` is the decoding error."""

    def __init__(self, response: Any, cause: Exception):
        super().__init__(f"Error code: {response.status_code}", response=response, body=None)
        self.cause = cause


def keep_status(client: Any) -> Any:
    """Add the hook to `client` (an async client of httpx or of the SDK's httpx2), its other hooks kept; return it."""
    hooks = client.event_hooks
    client.event_hooks = {**hooks, "response": [*hooks.get("response", []), _undecodable_error]}
    return client


async def _undecodable_error(response: Any) -> None:
    """Make a decoding failure of an encoded error reply's body an `UndecodableStatus` (the body is read later,
    by the SDK, through `aiter_bytes`; the libraries have no public hook after the decoder)."""
    if response.status_code < 400 or \
            response.headers.get("content-encoding", "").strip().lower() in ("", "identity"):
        return
    decoded = response.aiter_bytes

    async def aiter_bytes(chunk_size: int | None = None) -> AsyncIterator[bytes]:
        try:
            async with contextlib.aclosing(decoded(chunk_size)) as parts:
                async for part in parts:
                    yield part
        except UNDECODABLE as e:
            raise UndecodableStatus(response, e) from e

    response.aiter_bytes = aiter_bytes

"""A cap on the bytes read from one upstream reply, so that a hostile or broken upstream cannot fill memory.

The SDKs read a whole (non-streamed) answer into memory before it is parsed, and a stream ends only when the server
ends it: a proxy's 500 MB error page, or a body that never ends, would be buffered (or read) without bound. Every
provider's HTTP client has `reply_cap`'s response hook, which wraps each response's byte stream before any of it
is read: past the limit, reading raises `ReplyTooLarge` instead of going on, and the response is closed with its
connection (one left in the middle of a body is never reused). A compressed reply is counted once decompressed
too: gzip inflates up to a thousandfold, so its raw bytes say little about the memory it takes.

A response hook rather than a transport, so that it holds whatever transport the client uses: the connections
of `providers.arrival`, or the HTTP library's own with the proxies it takes from the environment (an httpx client
given a transport ignores those).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import ModuleType
from typing import Any

MIB = 1024 * 1024


class ReplyTooLarge(Exception):
    """An upstream reply went past the byte cap; raised while it was read (the call is a `bad_response`)."""

    def __init__(self, limit: int, status: int, decompressed: bool = False):
        self.limit, self.status = limit, status
        once = " once decompressed" if decompressed else ""
        super().__init__(f"HTTP {status} reply larger than {size(limit)}{once} (max_reply_bytes): not read further")


def size(n: int) -> str:
    """`n` bytes for people: whole mebibytes as such, else the count."""
    return f"{n // MIB} MiB" if n % MIB == 0 else f"{n:,} bytes"


def reply_cap(httpx_mod: ModuleType, limit: int) -> Callable[[Any], Awaitable[None]]:
    """A response hook for an async client of `httpx_mod` (httpx, or the SDK's httpx2): replies end at `limit`."""
    capped = _stream_class(httpx_mod.AsyncByteStream)

    async def hook(response: Any) -> None:
        response.stream = capped(response.stream, limit, response.status_code)
        if response.headers.get("content-encoding", "").strip().lower() not in ("", "identity"):
            _cap_decoded(response, limit)

    return hook


def reply_cap_sync(httpx_mod: ModuleType, limit: int) -> Callable[[Any], None]:
    """The same cap for a synchronous client of `httpx_mod` (the embeddings client, which runs on a worker thread)."""
    capped = _sync_stream_class(httpx_mod.SyncByteStream)

    def hook(response: Any) -> None:
        response.stream = capped(response.stream, limit, response.status_code)
        if response.headers.get("content-encoding", "").strip().lower() not in ("", "identity"):
            decoded = response.iter_bytes

            def iter_bytes(chunk_size: int | None = None) -> Iterator[bytes]:
                n = 0
                for part in decoded(chunk_size):
                    n += len(part)
                    if n > limit:
                        raise ReplyTooLarge(limit, response.status_code, decompressed=True)
                    yield part

            response.iter_bytes = iter_bytes

    return hook


@functools.cache
def _sync_stream_class(base: Any) -> Any:
    class CappedSyncStream(base):  # type: ignore[misc]  # httpx's or httpx2's SyncByteStream
        def __init__(self, inner: Any, limit: int, status: int):
            self._inner, self._limit, self._status = inner, limit, status
            self.received = 0

        def __iter__(self) -> Iterator[bytes]:
            for chunk in self._inner:
                self.received += len(chunk)
                if self.received > self._limit:
                    raise ReplyTooLarge(self._limit, self._status)
                yield chunk

        def close(self) -> None:
            self._inner.close()

        @property
        def elapsed(self) -> Any:
            return getattr(self._inner, "elapsed", None)

    return CappedSyncStream


@functools.cache
def _stream_class(base: Any) -> Any:
    """A byte stream of the HTTP library's own type (its responses check it) that counts what it hands on."""

    class CappedStream(base):  # type: ignore[misc]  # httpx's or httpx2's AsyncByteStream
        def __init__(self, inner: Any, limit: int, status: int):
            self._inner, self._limit, self._status = inner, limit, status
            self.received = 0

        async def __aiter__(self) -> AsyncIterator[bytes]:
            chunks = self._inner.__aiter__()
            try:
                async for chunk in chunks:
                    self.received += len(chunk)
                    if self.received > self._limit:
                        raise ReplyTooLarge(self._limit, self._status)
                    yield chunk
            finally:
                if hasattr(chunks, "aclose"):
                    await chunks.aclose()

        async def aclose(self) -> None:
            await self._inner.aclose()

        @property
        def elapsed(self) -> Any:  # httpx2 reads the response's elapsed time off its stream
            return getattr(self._inner, "elapsed", None)

    return CappedStream


def _cap_decoded(response: Any, limit: int) -> None:
    """Count what the response's decoder makes of its body: everything reads the body through `aiter_bytes`
    (`aread`, `aiter_text`, `aiter_lines`), and the libraries have no public hook after the decoder."""
    decoded = response.aiter_bytes

    async def aiter_bytes(chunk_size: int | None = None) -> AsyncIterator[bytes]:
        n = 0
        async with contextlib.aclosing(decoded(chunk_size)) as parts:
            async for part in parts:
                n += len(part)
                if n > limit:
                    raise ReplyTooLarge(limit, response.status_code, decompressed=True)
                yield part

    response.aiter_bytes = aiter_bytes

"""A whole-call deadline for the replies of a synchronous client (the embeddings client).

The HTTP libraries' timeouts bound each read, not the call: a server that sends a byte every few seconds, each
within the read timeout, keeps a reply going until `max_reply_bytes`, hours at that pace. The providers' async calls
have a deadline of their own (the runner's `asyncio.timeout`); the embeddings client runs on the analysis thread,
where a reply that never ends would hold up every stream's analysis. `within(seconds)` sets a deadline for the calls
made inside it (this thread only), and `deadline_hook` makes a reply read past it fail as the library's read
timeout would, which the SDK reports as a timeout.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from types import ModuleType
from typing import Any

_UNTIL: ContextVar[float | None] = ContextVar("monitor_reply_deadline", default=None)


@contextlib.contextmanager
def within(seconds: float, clock: Callable[[], float] = time.monotonic) -> Iterator[None]:
    """Replies read inside (through a client with `deadline_hook`, in this thread) end `seconds` from now."""
    token = _UNTIL.set(clock() + seconds)
    try:
        yield
    finally:
        _UNTIL.reset(token)


def deadline_hook(httpx_mod: ModuleType, clock: Callable[[], float] = time.monotonic) -> Callable[[Any], None]:
    """A response hook for a synchronous client of `httpx_mod`: past the deadline `within` set, reading the reply
    raises `httpx_mod.ReadTimeout` (no deadline set: nothing changes)."""
    timed = _timed_class(httpx_mod.SyncByteStream)

    def hook(response: Any) -> None:
        until = _UNTIL.get()
        if until is not None:
            response.stream = timed(response.stream, until, clock, response.request, httpx_mod.ReadTimeout)

    return hook


@functools.cache
def _timed_class(base: Any) -> Any:
    class TimedSyncStream(base):  # type: ignore[misc]  # httpx's or httpx2's SyncByteStream
        def __init__(self, inner: Any, until: float, clock: Callable[[], float], request: Any, timeout: Any):
            self._inner, self._until, self._clock = inner, until, clock
            self._request, self._timeout = request, timeout

        def __iter__(self) -> Iterator[bytes]:
            for chunk in self._inner:
                if self._clock() > self._until:
                    raise self._timeout("the reply did not end within the call's timeout", request=self._request)
                yield chunk

        def close(self) -> None:
            self._inner.close()

    return TimedSyncStream

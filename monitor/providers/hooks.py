"""What the per-call watchers of an HTTP client share (`errorbody`'s status keeper, `connecting`'s connection
steps): hooks added to a client beside its own, and a note a context variable holds for one call (its task or
thread only)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")


def add_hooks(client: Any, *, request: Any = None, response: Any = None) -> Any:
    """Add a request and/or response hook to `client` (httpx or the SDK's httpx2), its other hooks kept; return it."""
    hooks = dict(client.event_hooks)
    for kind, hook in (("request", request), ("response", response)):
        if hook is not None:
            hooks[kind] = [*hooks.get(kind, []), hook]
    client.event_hooks = hooks
    return client


@contextlib.contextmanager
def noting(var: ContextVar[T | None], note: T) -> Iterator[T]:
    """Set `var` to `note` for the requests made inside, and back after."""
    token = var.set(note)
    try:
        yield note
    finally:
        var.reset(token)

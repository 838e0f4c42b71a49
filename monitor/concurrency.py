"""A target's max_concurrency: how many of its calls may be on the wire at once, a bound a reload can change.

An asyncio.Semaphore cannot be resized, and one built afresh at a reload forgot the calls in flight: they held
slots of the old one while as many again went out on the new one. A `Limit` is kept across reloads and resized:
the calls holding a slot still count, so lowered below them, no call goes until enough have ended.
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class Limit:
    """At most `size` holders at once (`async with limit:`); `resize` changes the bound, holders kept."""

    def __init__(self, size: int):
        self.size = size
        self.held = 0
        self._waiters: list[asyncio.Future[None]] = []

    def locked(self) -> bool:
        """Whether a caller would wait for a slot."""
        return self.held >= self.size

    def resize(self, size: int) -> None:
        self.size = size
        self._wake()

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, kind: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.release()

    async def acquire(self) -> None:
        """Take a slot, waiting for one to be free."""
        while self.held >= self.size:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:  # cancelled while waiting
                    self._waiters.remove(waiter)
        self.held += 1

    def release(self) -> None:
        """Give a slot back."""
        self.held -= 1
        self._wake()

    def _wake(self) -> None:
        """Let every waiter look again (in the order they came): those that find a slot free take it."""
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

"""A SIGTERM while the daemon starts begins the exit watch: a start blocked on a store that stopped answering (its
migration's or take-over's reads: no timeout of the server's ends them) was never ended by SIGTERM, twice or more,
since `serve` looked at `stop` only once the start was done."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from monitor.commands.run import EXIT_OK, serve


class _Starting:
    """An app whose start waits until `started` is set (a store that never answers: for good)."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.leadership_lost = asyncio.Event()
        self.config: Any = SimpleNamespace(daemon=SimpleNamespace(grace_period=1.0), drift=SimpleNamespace(
            enabled=False, embeddings=None), service_pairs=set, empty_probe_folders=())
        self.runner = SimpleNamespace(in_flight=set())
        self.stopped = False
        self.writes_lost = 0

    async def start(self) -> None:
        await self.started.wait()

    async def stop(self, asked: asyncio.Event | None = None) -> None:
        self.stopped = True

    def spawn(self, _coro: Any) -> None:  # SIGHUP
        pass


async def test_a_sigterm_while_the_start_waits_on_the_store_begins_the_exit_watch() -> None:
    app, stop, watches, cancelled = _Starting(), asyncio.Event(), [], []

    def watch(bound: float) -> Any:
        watches.append(bound)
        return lambda: cancelled.append(bound)

    serving = asyncio.create_task(serve(app, stop, on_stopping=watch))  # type: ignore[arg-type]
    await asyncio.sleep(0.1)
    stop.set()  # SIGTERM
    await asyncio.sleep(0.1)
    assert watches, "a SIGTERM while the start waited began no exit watch: the daemon waited for good"
    app.started.set()  # the start ends after all: the shutdown's own watch replaces the start's
    assert await asyncio.wait_for(serving, 10) == EXIT_OK
    assert app.stopped and len(watches) == 2 and cancelled == watches[:1]


async def test_a_start_with_no_sigterm_begins_no_watch_before_the_shutdown() -> None:
    app, stop, watches = _Starting(), asyncio.Event(), []
    app.started.set()
    serving = asyncio.create_task(serve(app, stop, on_stopping=lambda b: watches.append(b)))  # type: ignore[arg-type]
    await asyncio.sleep(0.1)
    assert watches == []
    stop.set()
    assert await asyncio.wait_for(serving, 10) == EXIT_OK
    assert len(watches) == 1

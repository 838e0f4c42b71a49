"""A call cut by a shutdown is stored from a worker thread, not on the event loop (Unsaved.put_now).

The runner stores a call cancelled at the end of the grace period from its CancelledError handler, where it cannot
await. It wrote it there synchronously, on the event loop: a store that answered slowly stopped the loop that long
per cancelled call, and a store that stopped answering (a stopped server: no timeout of its own ends the wait)
stopped it for good, with the HTTP server, the other calls' timing and the shutdown's bounds. Made real with a
relay to a real PostgreSQL server that stops passing bytes on (tests/support/frozen.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy.engine import make_url

from monitor.domain import CallResult, ErrorType, Observation, utcnow
from monitor.store import Run, Store
from monitor.telemetry.metrics import Metrics
from monitor.unsaved import Unsaved
from tests.support.frozen import FrozenRelay

HANGS = 60.0  # a loop still blocked after this long is blocked for good


def _obs(i: int, error: ErrorType | None = None) -> Observation:
    return Observation(canary="c", target="t", provider="openai", request_model="m", started_at=utcnow(),
                       call=CallResult(text=f"answer {i}", error_type=error), id=f"o{i}")


async def _cancelled_with(unsaved: Unsaved, item: Observation | Run) -> None:
    """A probe task cancelled while it waits (the shutdown past its grace), storing `item` as the runner does."""
    async def probe() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            unsaved.put_now(item)
            raise

    task = asyncio.create_task(probe())
    await asyncio.sleep(0)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def test_a_cancelled_call_on_a_store_that_stopped_answering_does_not_stop_the_event_loop(pg_url: str) -> None:
    Store(pg_url).migrate()
    u = make_url(pg_url)
    with FrozenRelay((u.host or "127.0.0.1", u.port or 5432)) as relay:
        store = Store(u.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False))
        store.reach()  # a pooled connection, then the server stops answering on it
        relay.freeze()
        out: list[Any] = []

        async def shutdown() -> int:
            async def heard(_obs: Observation) -> None:
                pass

            unsaved = Unsaved(store.save_observation, store.save_run, heard, Metrics(CollectorRegistry()))
            await _cancelled_with(unsaved, _obs(1, ErrorType.CANCELLED))
            ticks = 0
            for _ in range(5):  # the loop goes on: timers fire, other tasks run
                await asyncio.sleep(0.01)
                ticks += 1
            out.append((ticks, len(unsaved)))  # still waiting for the store, in memory
            return await unsaved.close(0.5)  # the shutdown's last try gives up on it: counted, not waited on

        loop = asyncio.new_event_loop()

        def run() -> None:
            out.append(loop.run_until_complete(shutdown()))

        t = threading.Thread(target=run, daemon=True)  # left behind if the loop is blocked: the test says so
        t.start()
        t.join(HANGS)
        assert not t.is_alive(), "storing a cancelled call on a store that stopped answering blocked the event loop"
        assert out == [(5, 1), 1]
        relay.close()  # the worker thread still waiting on the store gets its answer (a closed connection)
        loop.close()
        store.close()


async def test_a_cancelled_call_is_stored_in_order_and_not_passed_to_the_listeners(sqlite_store: Store) -> None:
    heard: list[str] = []

    async def listener(obs: Observation) -> None:
        heard.append(obs.id)

    unsaved = Unsaved(sqlite_store.save_observation, sqlite_store.save_run, listener, Metrics(CollectorRegistry()))
    run = Run(id="r1", canary="c", target="t", started_at=utcnow(), status="cancelled")
    await _cancelled_with(unsaved, _obs(1, ErrorType.CANCELLED))
    await _cancelled_with(unsaved, run)
    assert await unsaved.put(_obs(2)) is False  # queued behind the cancelled ones, not stored ahead of them
    assert await unsaved.close(30) == 0
    assert heard == ["o2"]  # a call cut by the shutdown says nothing about the upstream: not analysed
    assert sorted(o.id for o in sqlite_store.observations()) == ["o1", "o2"]
    assert [(r.id, r.status) for r in sqlite_store.runs()] == [("r1", "cancelled")]


async def test_a_run_finished_while_its_held_record_is_being_written_is_written_again(sqlite_store: Store) -> None:
    # Found by review: a run held again waited once, "in its latest state", but the retry task may be writing it
    # at that moment from a state read before the change (running): the finished record (done, or cancelled at a
    # shutdown) was dropped as a repeat, and the run stayed `running` until the next start called it interrupted.
    read, release = threading.Event(), threading.Event()

    def save_run(run: Run) -> None:
        state = Run(**run.__dict__)  # what the write sends: the run as it is now
        if state.status == "running":
            read.set()
            release.wait(30)
        sqlite_store.save_run(state)

    async def heard(_obs: Observation) -> None:
        pass

    unsaved = Unsaved(sqlite_store.save_observation, save_run, heard, Metrics(CollectorRegistry()))
    run = Run(id="r1", canary="c", target="t", started_at=utcnow())
    unsaved.hold(run)  # its first write failed: held
    assert await asyncio.to_thread(read.wait, 30)  # the retry task is writing it as running
    run.finished_at, run.status = utcnow(), "done"
    unsaved.hold(run)  # finished meanwhile (`put` holds it: something waits)
    release.set()
    assert await unsaved.close(30) == 0
    assert [(r.id, r.status) for r in sqlite_store.runs()] == [("r1", "done")]

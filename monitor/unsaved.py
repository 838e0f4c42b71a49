"""Writes the store could not take: held in memory, in order, and retried until it answers.

A store that is briefly unavailable (a PostgreSQL restart or fail-over, a full disk, a SQLite lock held past
its busy timeout) must not lose calls already made and paid for. The runner hands each finished observation
and each run record to :meth:`Unsaved.put`: stored at once while nothing waits, otherwise queued behind what
waits, so the store and the listeners (drift analysis) see observations in the order they were made. A task
retries the oldest with backoff and passes each observation it stores to the listeners. A call cut by a shutdown
(:meth:`Unsaved.put_now`: its task, being cancelled, cannot await) is queued for that task, never stored on the
event loop, and not passed to the listeners. At most ``limit``
writes wait; beyond that the oldest are given up on, and so is whatever still waits when the daemon stops
(both counted in ``llm_monitor_store_dropped_writes_total`` and logged), as is a write handed over after the final
:meth:`Unsaved.close` (a task that outlived the shutdown's bounds: no retry task would store it). A write the store refuses for its
data rather than its availability (a ``DataError``: a value the column cannot hold) would fail on every retry
and hold up everything behind it: it is given up on at once, counted and logged with its id and the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from monitor.domain import Observation
from monitor.store import Run
from monitor.store.repository import driver_message
from monitor.telemetry.metrics import Metrics

log = logging.getLogger("monitor.unsaved")

Item = Observation | Run
LIMIT = 10_000  # writes held at most (about 10-30 MB of completions)
FIRST_DELAY_S, MAX_DELAY_S = 0.5, 30.0
UNSAVED_GRACE_S = 10.0  # at shutdown, how long writes held while the store was down get to be stored
# ... at the stop of a leader that lost the lock, mostly to a store away (a managed fail-over: 30-60 s): its held
# observations and run records are rows of their own, harmless stored late, and a restart now would only stand by
LOST_LEAD_UNSAVED_S = 60.0


class Unsaved:
    """The queue of writes waiting for the store, and the task that retries them."""

    def __init__(self, save_observation: Callable[[Observation], None], save_run: Callable[[Run], None],
                 on_stored: Callable[[Observation], Awaitable[None]], metrics: Metrics, *, limit: int = LIMIT,
                 max_delay_s: float = MAX_DELAY_S):
        self._save_observation = save_observation
        self._save_run = save_run
        self._on_stored = on_stored
        self.metrics = metrics
        self.limit = limit
        self.max_delay_s = max_delay_s
        self._queue: deque[Item] = deque()
        # the runs waiting, by id, and how many times: a run held again waits once, in its latest state, unless the
        # retry task is writing it (from a state it may have read before the change): then it waits once more
        self._runs: dict[str, int] = {}
        self._writing: Item | None = None  # what the retry task is writing now
        self._untold: set[str] = set()  # ids of the observations waiting that the listeners are not to get
        self._task: asyncio.Task[None] | None = None
        self._since: float | None = None  # monotonic start of the current outage
        self._dropped = 0  # writes given up on past the limit since the store last took one (logged once)
        self.hurried_until: float | None = None  # the loop time `close` was cut to by its `hurry` (a SIGTERM)
        self.closed = False  # the final `close` has run: later writes are given up on, counted and logged
        self.lost_at_stop = 0  # writes given up on by a `close` or after the final one (`run` then exits 1)
        self._cut: set[asyncio.Future[bool]] = set()  # writes going on in their threads whose `put` was cancelled

    def __len__(self) -> int:
        return len(self._queue)

    def _save(self, item: Item) -> bool:
        """Write one item (in a worker thread); return False if the store refused it for its data (given up on:
        retrying would only hold up the rest). An observation already there was stored by an earlier try whose
        answer was lost with the connection: that is success, not a conflict. Raises while the store is away."""
        try:
            if isinstance(item, Run):
                self._save_run(item)  # an upsert: a repeat is harmless
            else:
                self._save_observation(item)
        except IntegrityError:
            log.info("observation %s was already stored (an earlier try's answer was lost)", item.id)
        except DataError as e:
            self._refused(item, e)
            return False
        return True

    async def put(self, item: Item) -> bool:
        """Store `item` now if nothing waits and the store takes it (True); else queue it, or give it up if the
        store refuses its data (False). After the final close, stored only if nothing waits and the store takes it at
        once: there is no retry left to hand it to (`hold` gives it up)."""
        if not self._queue:
            writing = asyncio.ensure_future(asyncio.to_thread(self._save, item))
            try:
                return await asyncio.shield(writing)
            except asyncio.CancelledError:
                # a shutdown past its grace cancels the task while the write goes on in its thread: one that then
                # fails is held as `put_now` holds (not lost with no one to hand it to); `close` waits for it
                self._cut.add(writing)
                writing.add_done_callback(lambda done: self._cut_write_done(item, done))
                raise
            except SQLAlchemyError as e:
                if self.closed:  # no retry left: not "holding ... and retrying", but given up on, with why
                    self.metrics.store_write_failures.inc()
                    self._too_late(item, driver_message(e))
                    return False
                self._failed(e)
        self.hold(item)
        return False

    def _cut_write_done(self, item: Item, done: asyncio.Future[bool]) -> None:
        self._cut.discard(done)
        if done.cancelled() or isinstance(done.exception(), SQLAlchemyError):
            if not done.cancelled():
                self._failed(done.exception())  # type: ignore[arg-type]
            self.hold(item, tell=False)
        elif done.exception() is not None:
            log.error("storing %s failed", item.id, exc_info=done.exception())

    def put_now(self, item: Item) -> None:
        """`put` without awaiting, for a task being cancelled (a shutdown past its grace period): queued for the
        retry task, which stores it from a worker thread, in order behind what waits; an observation is not passed
        to the listeners (a call cut by the shutdown says nothing about the upstream). Stored here, on the event
        loop, a store that answered slowly or not at all stopped the loop for as long, once per cancelled call:
        the other calls' timing, the HTTP server and the shutdown's own bounds with it."""
        self.hold(item, tell=False)

    def hold(self, item: Item, *, tell: bool = True) -> None:
        """Queue `item` for the retry task (synchronous: also for a run being cancelled at shutdown); an observation
        stored so is passed to the listeners unless `tell` is False."""
        if self.closed:
            self._too_late(item)
            return
        if isinstance(item, Run) and self._runs.get(item.id, 0) > (1 if item is self._writing else 0):
            return  # the same object waits already, not only in the write under way: written as it is by then
        self._queue.append(item)
        if isinstance(item, Run):
            self._runs[item.id] = self._runs.get(item.id, 0) + 1
        elif not tell:
            self._untold.add(item.id)
        while len(self._queue) > self.limit:
            self._pop()
            self.metrics.store_dropped.inc()
            self._dropped += 1
            if self._dropped == 1:  # once an outage (each was a line: 20 a second at 20 calls a second)
                log.error("store unavailable and %d writes already wait: the oldest is given up on, and so is the "
                          "oldest at every new write until it answers (counted in "
                          "llm_monitor_store_dropped_writes_total; the count when it answers)", self.limit)
        self.metrics.store_pending.set(len(self._queue))
        if self._task is None or self._task.done():
            with contextlib.suppress(RuntimeError):  # no running loop: a shutdown path; close() counts it
                self._task = asyncio.get_running_loop().create_task(self._retry(), name="store-retry")

    def _pop(self) -> None:
        item = self._queue.popleft()
        if isinstance(item, Run):
            if self._runs.get(item.id, 0) > 1:
                self._runs[item.id] -= 1
            else:
                self._runs.pop(item.id, None)
        else:
            self._untold.discard(item.id)

    def _too_late(self, item: Item, failed: str = "") -> None:
        """Give up on a write that came after the final close: queued, it waited for a retry task the end of the
        event loop cancels (not stored, not counted, not logged, the pending gauge left up). `failed`: why the store
        did not take it at once."""
        self.metrics.store_dropped.inc()
        self.lost_at_stop += 1
        log.error("%s %s not stored: it came after the store's last write at shutdown%s", _what(item), item.id,
                  f" and the store failed it ({failed})" if failed else "",
                  extra={"canary": item.canary, "target": item.target})

    def _refused(self, item: Item, e: DataError) -> None:
        """Give up on a write the store refuses for what it holds: retrying it would only block the others."""
        self.metrics.store_dropped.inc()
        log.error("the store refused %s %s for its data, not for being unavailable: given up on (%s)", _what(item),
                  item.id, driver_message(e), extra={"canary": item.canary, "target": item.target})

    def _failed(self, e: SQLAlchemyError) -> None:
        self.metrics.store_write_failures.inc()
        if self._since is None:
            self._since = time.monotonic()
            log.error("cannot write to the store: holding observations in memory and retrying until it answers "
                      "(%s)", driver_message(e))

    async def _retry(self) -> None:
        delay = FIRST_DELAY_S
        stored = 0
        while self._queue:
            item = self._queue[0]
            tell = item.id not in self._untold  # a run record is never passed on
            try:
                self._writing = item
                try:
                    saved = await asyncio.to_thread(self._save, item)
                finally:
                    self._writing = None
            except SQLAlchemyError as e:
                self._failed(e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_delay_s)
                continue
            if self._queue and self._queue[0] is item:  # not given up on meanwhile
                self._pop()
            self.metrics.store_pending.set(len(self._queue))
            delay = FIRST_DELAY_S
            if not saved:
                continue
            stored += 1
            if tell and isinstance(item, Observation):
                try:
                    await self._on_stored(item)
                except Exception:
                    log.exception("observation listener failed")
        if self._since is not None:
            log.warning("store writes resumed: %d held writes stored after %.0f s%s", stored,
                        time.monotonic() - self._since,
                        f"; {self._dropped} oldest given up on meanwhile (more than {self.limit} waited)"
                        if self._dropped else "")
        self._since = None
        self._dropped = 0

    async def close(self, timeout_s: float, hurry: asyncio.Event | None = None, hurried_s: float = 0.0, *,
                    final: bool = False) -> int:
        """At shutdown: let the retry task store what it can within `timeout_s`, or within `hurried_s` of `hurry`
        being set if that comes first (a SIGTERM during a leader's long wait for a store away); give up on the rest
        (counted and logged); a later close keeps to the time a `hurry` cut an earlier one to (`hurried_until`).
        After the `final` one, writes handed over are given up on at once (`_too_late`). Return how many writes
        were given up on."""
        loop = asyncio.get_running_loop()
        if self._cut:  # what they do not store they hold, for the retry task below
            began = loop.time()
            await asyncio.wait(set(self._cut), timeout=timeout_s)
            timeout_s = max(0.0, timeout_s - (loop.time() - began))
        if self._task is not None and not self._task.done():
            deadline = loop.time() + timeout_s
            hurried = asyncio.ensure_future(hurry.wait()) if hurry is not None else None
            try:
                while not self._task.done() and (left := deadline - loop.time()) > 0:
                    waiting: set[asyncio.Future[Any]] = {self._task}
                    if hurried is not None and not hurried.done():
                        waiting.add(hurried)
                    await asyncio.wait(waiting, timeout=left, return_when=asyncio.FIRST_COMPLETED)
                    if hurried is not None and hurried.done():
                        if self.hurried_until is None:
                            self.hurried_until = loop.time() + hurried_s
                        deadline, hurried = min(deadline, self.hurried_until), None
            finally:
                if hurried is not None:
                    hurried.cancel()
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        lost = len(self._queue)
        self.lost_at_stop += lost
        if lost:
            observations = sum(isinstance(i, Observation) for i in self._queue)
            self.metrics.store_dropped.inc(lost)
            log.error("stopping with the store unavailable: %d observations and %d run records were not stored",
                      observations, lost - observations)
            self._queue.clear()
            self._runs.clear()
            self._untold.clear()
            self.metrics.store_pending.set(0)
        self.closed = self.closed or final
        return lost


def _what(item: Item) -> str:
    return "observation" if isinstance(item, Observation) else "run record"

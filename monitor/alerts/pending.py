"""Alert messages the store has not taken yet: held in memory, in order, and written by one task until it does.

A canary.down that a store error (a SQLite lock held past its busy timeout, a PostgreSQL restart or fail-over)
keeps out of the outbox must not be lost: the health watch has moved on and will not say it again, and the
receiver would later get the recovery of an outage it never heard of. Every write of :class:`Alerting` that has
no transaction of its own (`publish`, `ensure_firing`) is a :class:`Write` handed to :meth:`Pending.put`; one task
takes them oldest first and retries the oldest with backoff (0.5 s doubling to 30 s) for as long as the store
refuses, so a `canary.recovered` is never written before the `canary.down` still waiting ahead of it. Its caller
waits for the first try only (the run that made the event goes on once the store is known to be away). What still
waits when the daemon stops is logged, message by message, as not sent.

A store away for days would have the queue grow with every flap of every canary. Past `COMPACT_AT` events waiting,
each alert keeps its first event and, if it says otherwise, its last (down, recovered ... down, recovered: the first
down and the last recovered; down ... down: the first down), in order, and each one-off notice (`budget.exceeded` of
a target) its latest; the rest are superseded (logged, counted in
`llm_monitor_alert_events_superseded_total`). So the queue holds at most about two events per alert, and a receiver
still gets each outage's down and its recovery, in order, and never two downs without a recovery between them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from monitor.alerts.events import FIRING, ONE_SHOT, AlertEvent, Notification
from monitor.store.repository import driver_message
from monitor.unsaved import FIRST_DELAY_S, MAX_DELAY_S  # the held observations' backoff, for the same store

log = logging.getLogger("monitor.alerts")

CLOSE_GRACE_S = 10.0  # at shutdown, how long what waits gets for a last try
COMPACT_AT = 1000  # events waiting past which each alert's superseded ones go (then past twice what is left)
_FENCED = "this replica lost the leader lock: the leader pages what it sees"


@dataclass
class Write:
    """One batch of alert messages on its way to the outbox: the events (planned into notifications on its first
    try) or the notifications already planned; `keys` are the cooldown keys marked as being written meanwhile."""

    events: list[AlertEvent] = field(default_factory=list)
    out: list[Notification] | None = None  # None: not planned yet
    undo: dict[Any, Any] = field(default_factory=dict)
    keys: list[Any] = field(default_factory=list)
    downs: set[tuple[str, str]] = field(default_factory=set)  # the canary x target pairs whose canary.down it writes
    fresh: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # id -> status, last error as planned
    written: bool = False
    unmarked: bool = False  # its keys' marks are gone (written, or given up on)
    tries: int = 0
    write_tries: int = 0  # of those, the ones that got as far as writing
    settled: asyncio.Future[None] | None = None  # done once written, or once it waits for the store

    def what(self) -> list[str]:
        """Each message (or event, if not planned yet) as `kind canary@target [sink]`, for the logs."""
        if self.out is not None:
            return [f"{n.kind} {n.payload.get('canary')}@{n.payload.get('target')} [{n.sink}]" for n in self.out]
        return [f"{e.kind} {e.canary}@{e.target}" for e in self.events]


class Pending:
    """The queue of alert writes and the task that makes them, oldest first.

    `attempt` makes one try at a write (raising SQLAlchemyError while the store is away), `abandon` lets go of one
    never written (its cooldown marks and memory put back).
    """

    def __init__(self, attempt: Callable[[Write], Awaitable[None]], abandon: Callable[[Write], None], *,
                 first_delay_s: float = FIRST_DELAY_S, max_delay_s: float = MAX_DELAY_S, compact_at: int = COMPACT_AT,
                 superseded: Callable[[int], None] = lambda n: None):
        self._attempt = attempt
        self._abandon = abandon
        self.compact_at = compact_at
        self._next_compact = compact_at
        self._superseded = superseded  # told how many events a compaction let go
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self._queue: deque[Write] = deque()
        self._task: asyncio.Task[None] | None = None
        self._since: float | None = None  # monotonic start of the current store outage
        self._written = 0  # writes made since it began
        self._hurry = asyncio.Event()  # set at shutdown: the backoff ends for a last try
        self._closing = False
        # Only the leader writes (see monitor.store.leader): a try waits for a lock confirmed recently (a process
        # waking from a freeze, before its watch has asked the store), and once the lock is lost (`fence`) what
        # waits is given up on. Written later, after a new leader had read the outbox, an old leader's canary.down
        # was a page no one ends (the new leader does not know the pair is down), its canary.recovered a second one.
        self.confirmed: Callable[[], bool] = lambda: True
        self._fenced = False

    def __len__(self) -> int:
        return len(self._queue)

    def unplanned(self) -> list[AlertEvent]:
        """The events of the writes still waiting to be planned (no cooldown key of theirs is marked yet)."""
        return [e for w in self._queue if w.out is None for e in w.events]

    def fence(self) -> None:
        """Write nothing more: this replica lost the leader lock and another may lead (what waits is given up on)."""
        self._fenced = True
        self._hurry.set()

    async def put(self, w: Write) -> bool:
        """Queue `w` behind what waits and wait for its first try (not for the store: once a write fails, every
        caller goes on and the task keeps trying); return whether it is written."""
        loop = asyncio.get_running_loop()
        w.settled = loop.create_future()
        if self._fenced:
            self._lost([w], _FENCED)
            return False
        if self._closing:
            self._lost([w], "the daemon is stopping")
            return False
        self._queue.append(w)
        if self._events() > self._next_compact:
            self._next_compact = max(self.compact_at, 2 * (self._events() - self._compact()))
        if self._since is not None:
            self._settle(w)  # the store is away: the caller does not wait for it (settled if compacted away)
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain(), name="alert-writes")
        # shielded: a caller cancelled (a run at shutdown) leaves its write to the task, which finishes it
        await asyncio.shield(w.settled)
        return w.written

    def _events(self) -> int:
        return sum(len(w.events) if w.out is None else len(w.out) for w in self._queue)

    def _compact(self) -> int:
        """Let go of each alert's events superseded by a later one (see the module's doc); return how many.

        Only writes not planned yet lose events (a planned one has cooldown keys marked, and a sequence is compacted
        between planned writes only), and never the oldest, which the task may be trying."""
        runs: list[dict[tuple[str, str, str], list[tuple[Write, AlertEvent]]]] = [{}]
        for w in self._queue:
            if w.out is not None:
                runs.append({})
                continue
            for e in w.events:
                family = e.kind if e.kind in ONE_SHOT else "state"
                runs[-1].setdefault((family, e.group_key, e.signal), []).append((w, e))
        head = self._queue[0]
        drop: dict[int, set[int]] = {}  # id(write) -> ids of its events let go
        for run in runs:
            for seq in run.values():
                first, last = seq[0][1], seq[-1][1]
                if last.kind in ONE_SHOT:  # a one-off notice: the latest (the first may be days old)
                    keep = {id(last)}
                else:
                    keep = {id(first)} | ({id(last)} if (last.kind in FIRING) != (first.kind in FIRING) else set())
                for w, e in seq:
                    if id(e) not in keep and w is not head:
                        drop.setdefault(id(w), set()).add(id(e))
        if not drop:
            return 0
        gone, emptied = 0, []
        for w in self._queue:
            if id(w) in drop:
                left = [e for e in w.events if id(e) not in drop[id(w)]]
                gone += len(w.events) - len(left)
                w.events = left
                if not left:
                    emptied.append(w)
        for w in emptied:
            self._queue.remove(w)
            self._abandon(w)  # nothing of it to write: its pairs' marks go
            self._settle(w)
        log.warning("alert writes still wait for the store: %d events superseded by a later one of the same alert "
                    "let go (kept: each alert's first and, if it says otherwise, last)", gone,
                    extra={"superseded": gone, "waiting": self._events()})
        self._superseded(gone)
        return gone

    def _settle(self, w: Write) -> None:
        if w.settled is not None and not w.settled.done():
            w.settled.set_result(None)

    async def _drain(self) -> None:
        delay = self.first_delay_s
        while self._queue:
            if self._fenced:
                lost = list(self._queue)
                self._queue.clear()
                self._lost(lost, _FENCED)
                return
            if not self.confirmed():  # the lock's next check decides: written, or given up on
                for waiting in self._queue:
                    self._settle(waiting)
                if self._closing:
                    return
                await self._sleep(self.first_delay_s)
                continue
            w = self._queue[0]
            w.tries += 1
            try:
                await self._attempt(w)
            except (IntegrityError, DataError) as e:  # wrong for the store, not the store away: so is every retry
                self._refused(w, e)
            except SQLAlchemyError as e:
                self._failed(e)
                if self._closing:
                    return
                await self._sleep(delay)
                delay = min(delay * 2, self.max_delay_s)
                continue
            except Exception:
                log.exception("writing alert messages failed (not sent: %s)", "; ".join(w.what()))
                self._abandon(w)
            else:
                self._written += 1
            if self._queue and self._queue[0] is w:
                self._queue.popleft()
            self._settle(w)
            delay = self.first_delay_s
        if self._since is not None:
            log.warning("alert writes resumed: %d held writes written after %.0f s", self._written,
                        time.monotonic() - self._since)
        self._since = None

    async def _sleep(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._hurry.wait(), delay)

    def _failed(self, e: SQLAlchemyError) -> None:
        for w in self._queue:  # their callers go on: the task keeps trying
            self._settle(w)
        if self._since is None and not self._closing:  # the last try at shutdown: `close` says what was not written
            self._since, self._written = time.monotonic(), 0
            log.warning("cannot write alert messages to the store: holding them in memory, in order, and retrying "
                        "until it answers (%s)", driver_message(e), extra={"waiting": len(self._queue)})

    def _refused(self, w: Write, e: SQLAlchemyError) -> None:
        log.error("the store refused alert messages for what they hold, not for being away: not sent (%s): %s",
                  driver_message(e), "; ".join(w.what()))
        self._abandon(w)

    def _lost(self, writes: list[Write], why: str) -> None:
        for w in writes:
            log.error("alert messages not written (%s): %s", why, "; ".join(w.what()),
                      extra={"messages": w.what()})
            if not w.written:
                self._abandon(w)
            self._settle(w)

    async def close(self, timeout_s: float = CLOSE_GRACE_S) -> int:
        """At shutdown: give what waits a last try within `timeout_s`, then log what is still not written, message
        by message (kind, canary, target, sink); return how many writes that is."""
        self._closing = True
        self._hurry.set()
        why = "the store was unavailable as the daemon stopped"
        if self._task is not None and not self._task.done():
            await asyncio.wait([self._task], timeout=timeout_s)
            if not self._task.done():
                why += f"; the oldest was still being tried after {timeout_s:g} s, and may yet land"
            self._task.cancel()  # a try still in its thread finishes there (and unmarks what it writes)
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        left = [w for w in self._queue if not w.written]
        self._queue.clear()
        self._lost(left, why)
        return len(left)

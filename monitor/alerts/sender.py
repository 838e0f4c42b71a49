"""Deliver the outbox: at-least-once, retries with full-jitter backoff, Retry-After, 410 disables a sink.

The sender owns no state that matters across a crash: every notification is a row, claimed with a lease
before it is sent and marked after. A crash between sending and marking sends the row again after its lease
(receivers de-duplicate on `webhook-id`). Time comes from the injected `now`, randomness from `rand`, HTTP
from the injected transport (each POST is `monitor.alerts.attempt`), so tests drive it without sleeping.

Each sink is delivered by a loop of its own that claims only that sink's rows and re-sends that sink's firing
alerts, so a slow or unreachable receiver delays only itself; a supervisor starts and ends the loops as sinks
come and go, drops rows of sinks no longer configured and keeps the pending gauge current.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.exc import SQLAlchemyError

from monitor.alerts.attempt import Attempt, attempt, said
from monitor.alerts.config import AlertsConfig
from monitor.alerts.delivery import (  # noqa: F401 (FlushResult, refreshes and the reasons are imported from here)
    DROP_REASONS,
    GAVE_UP,
    GONE,
    IDLE_POLLS,
    UNCONFIGURED,
    UNCONFIGURED_GRACE,
    Delivering,
    FlushResult,
    refreshes,
)
from monitor.alerts.events import Notification
from monitor.alerts.outbox import Outbox
from monitor.alerts.sinks import Sink
from monitor.alerts.sinks.alertmanager import VALID_FOR_RESENDS
from monitor.alerts.suppressed import SUPPRESS_REASONS
from monitor.domain import utcnow
from monitor.store.repository import driver_message
from monitor.tls import default_context

log = logging.getLogger("monitor.alerts")


# The supervisor's housekeeping (rows of sinks no longer configured, the pending gauge) runs every this many poll
# intervals (30 s by default), and whenever rows are added or sinks change.
HOUSEKEEPING_POLLS = 15


class Sender(Delivering):
    """Sends due outbox rows to their sinks; run it as background tasks with :meth:`start`/:meth:`stop`."""

    def __init__(self, outbox: Outbox, sinks: Mapping[str, Sink], cfg: AlertsConfig, *, metrics: Any = None,
                 transport: httpx.AsyncBaseTransport | None = None, now: Callable[[], datetime] = utcnow,
                 rand: Callable[[], float] = random.random, batch: int = 50, lease: float = 120.0,
                 poll_interval: float = 2.0):
        self.outbox = outbox
        self.cfg = cfg
        self.metrics = metrics
        self.now = now
        self.rand = rand
        self.batch = batch
        self.lease = lease
        self.poll_interval = poll_interval
        self.sinks: dict[str, Sink] = {}
        self.disabled: dict[str, str] = {}  # sink -> why (a 410 Gone)
        self._client = httpx.AsyncClient(transport=transport, follow_redirects=False, verify=default_context())
        self._wake = asyncio.Event()
        self._wakes: dict[str, asyncio.Event] = {}
        self._store_failing: set[str] = set()  # rounds whose store error was logged (once per outage)
        self._sink_failing: set[str] = set()  # sinks whose failing deliveries were logged (once per outage)
        self._refresh_failing: set[str] = set()  # sinks whose firing alerts could not be rendered (logged once)
        self._ends_given_up: set[str] = set()  # see Delivering
        self._firing_given_up: set[str] = set()  # see Delivering
        self._sink_took: set[str] = set()  # see Delivering
        self._reload_logged: set[str] = set()  # see Delivering
        self._task: asyncio.Task[None] | None = None  # the supervisor
        self._loops: dict[str, asyncio.Task[None]] = {}  # one per sink
        self._stopping = False
        self._fenced = False  # for good: see `fence`
        self._next_refresh: dict[str, datetime] = {}
        self._next_due: dict[str, datetime | None] = {}  # per sink: when its next waiting row falls due, if known
        # told of each row given up on, after it is marked dead; returns how many rows that released (the alerting
        # layer's: a canary.down given up on no longer holds the drift at its sink)
        self.on_dead: Callable[[Notification], int] | None = None
        self.set_sinks(sinks, cfg)

    def set_sinks(self, sinks: Mapping[str, Sink], cfg: AlertsConfig | None = None) -> None:
        """Swap the sinks (and settings) after a config reload; a reload re-enables disabled sinks."""
        removed = set(self.sinks) - set(sinks)
        self._ends_given_up |= set(sinks) - set(self.sinks)  # a start, or a sink added: its first delivery looks
        self._firing_given_up |= set(sinks) - set(self.sinks)
        self.sinks = dict(sinks)
        self.cfg = cfg or self.cfg
        self.disabled = {}
        self._reload_logged.clear()
        if self.metrics is not None:
            for name in self.sinks:
                self.metrics.sent.labels(name)
                self.metrics.send_failures.labels(name)
                self.metrics.held.labels(name)
                self.metrics.inhibited.labels(name)
                for reason in DROP_REASONS:
                    self.metrics.dropped.labels(name, reason)
                for reason in SUPPRESS_REASONS:
                    self.metrics.suppressed.labels(name, reason)
                self.metrics.sink_disabled.labels(name).set(0)
            for name in removed:
                for gauge in (self.metrics.sink_disabled, self.metrics.pending):
                    with contextlib.suppress(KeyError):
                        gauge.remove(name)
        self.wake()  # the supervisor starts loops for new sinks; loops of removed sinks end

    async def send_now(self, sink_name: str, n: Notification) -> Attempt:
        """Send one notification through a sink right away, bypassing the outbox (alerts test)."""
        sink = self.sinks[sink_name]
        try:
            req = sink.render(n, self.now())
        except Exception as e:  # failures as data: `alerts test` names the sink and exits 1, no traceback
            return Attempt(False, None, sink.redact(f"cannot render the message: {said(e)}"))
        return await attempt(self._client, sink, req, self.now)

    async def flush_sink(self, name: str, res: FlushResult | None = None, max_rounds: int = 100) -> FlushResult:
        """Deliver one sink's rows due now, in order (retries that fall due later stay for later)."""
        res = res if res is not None else FlushResult()
        for _ in range(max_rounds):
            if name not in self.sinks or self._stopping:
                break
            due, self._next_due[name] = await asyncio.to_thread(self.outbox.claim, self.now(), self.batch,
                                                                lease=self.lease, sink=name)
            if not due:
                break
            merged: set[str] = set()
            for i, n in enumerate(due):
                if self._stopping:
                    # A delivery started now could be cut by the stop's grace after the receiver took it, and be
                    # sent again after its lease: give the rest of the batch back for the next leader, at once.
                    await asyncio.to_thread(self.outbox.release, [m for m in due[i:] if m.id not in merged],
                                            self.now())
                    break
                # Rows of one group can fall due together (opened in one analysis round, or retried after an
                # outage): the first one's message carries the others, which are not sent again on their own.
                if n.id not in merged:
                    merged |= await self._deliver(n, res)
            await self._update_pending()
        return res

    async def drop_unconfigured(self, res: FlushResult | None = None) -> FlushResult:
        """Give up on waiting rows whose sink has not been configured for `UNCONFIGURED_GRACE` (no loop would ever
        send them)."""
        res = res if res is not None else FlushResult()
        dropped = await asyncio.to_thread(self.outbox.drop_unconfigured, list(self.sinks),
                                          "sink no longer configured", self.now() - UNCONFIGURED_GRACE)
        for sink, count in dropped.items():
            res.dead += count
            if self.metrics is not None:
                self.metrics.dropped.labels(sink, UNCONFIGURED).inc(count)
            log.warning("notifications dropped: their sink is no longer configured",
                        extra={"sink": sink, "count": count})
        return res

    async def flush(self, max_rounds: int = 100) -> FlushResult:
        """Deliver everything due now, every sink independently; return the counts."""
        res = FlushResult()
        await self.drop_unconfigured(res)
        await asyncio.gather(*(self.flush_sink(name, res, max_rounds) for name in list(self.sinks)))
        await self._update_pending()
        return res

    async def _update_pending(self) -> None:
        """Set the pending gauge of every configured sink (0 when none wait; removed sinks' go in `set_sinks`)."""
        if self.metrics is None:
            return
        waiting = await asyncio.to_thread(self.outbox.pending_by_sink)
        for name in self.sinks:
            self.metrics.pending.labels(name).set(waiting.get(name, 0))

    async def refresh_sink(self, name: str) -> int:
        """Re-send the alerts still firing at one sink if it needs that (Alertmanager); return requests made. At a push
        sink, make the firing messages given up on there whose alerts still fire due again (sent by its loop)."""
        sink = self.sinks.get(name)
        if sink is None or name in self.disabled:
            return 0
        if not refreshes(sink):
            if name in self._firing_given_up:
                await self._resend_firing(name)
            return 0
        firing = await asyncio.to_thread(self.outbox.firing, name)
        try:
            req = sink.refresh(firing, self.now())
        except Exception as e:  # a row this build cannot render: one line per outage, not a traceback every loop
            if name not in self._refresh_failing:
                self._refresh_failing.add(name)
                log.warning("cannot render the firing alerts to re-send; retrying at each re-send",
                            extra={"sink": name, "alerts": len(firing), "error": sink.redact(said(e))})
            return 0
        if name in self._refresh_failing:
            self._refresh_failing.discard(name)
            log.info("alert sink %s: the firing alerts render again", name, extra={"sink": name})
        if req is None:
            return 0
        a = await attempt(self._client, sink, req, self.now)
        if not a.ok:
            if self.metrics is not None:
                self.metrics.send_failures.labels(name).inc()
            if a.gone:  # as a 410 to a first send: re-sent every resend_interval for good, it was only a warning
                self._gone(name, a.error, {"sink": name, "alerts": len(firing), "error": a.error})
            elif name in self._sink_failing:  # one warning per sink and outage, as a failing delivery's
                log.debug("re-sending firing alerts failed", extra={"sink": name, "alerts": len(firing),
                                                                   "error": a.error})
            else:
                self._sink_failing.add(name)
                log.warning("re-sending firing alerts failed (logged once until the sink delivers again)",
                            extra={"sink": name, "alerts": len(firing), "error": a.error})
            if a.retry_after_s is not None:
                # a 429's or 503's Retry-After, as a first send's retry takes it: a floor (never sooner than the
                # resend_interval), capped at retry.max_retry_after and at one resend_interval short of the endsAt the
                # last re-send gave the alerts: waited out longer, Alertmanager would resolve them meanwhile
                resend = self.cfg.resend_interval
                wait = max(resend, min(a.retry_after_s, self.cfg.retry.max_retry_after,
                                       (VALID_FOR_RESENDS - 1) * resend))
                self._next_refresh[name] = max(self._next_refresh.get(name, self.now()),
                                               self.now() + timedelta(seconds=wait))
        elif name in self._sink_failing:
            self._sink_failing.discard(name)
            log.info("alert sink %s delivers again", name, extra={"sink": name})
        return 1

    async def refresh_due(self, name: str) -> int:
        """Re-send the firing alerts of one sink (`refresh_sink`) if due: at its first look, then a `resend_interval`
        after the last; return requests made."""
        now = self.now()
        due = self._next_refresh.get(name)
        if due is not None and now < due:
            return 0
        self._next_refresh[name] = now + timedelta(seconds=self.cfg.resend_interval)
        return await self.refresh_sink(name)

    async def refresh(self) -> int:
        """Re-send every alert still firing to sinks that need it (Alertmanager); return requests made."""
        return sum(await asyncio.gather(*(self.refresh_sink(name) for name in list(self.sinks))))

    # the background tasks
    def _failed(self, what: str, e: Exception, extra: dict[str, Any]) -> None:
        """Log a failed round: a store error once per outage, on one line (the store's, not a bug, and retried every
        poll); anything else with its traceback."""
        if not isinstance(e, SQLAlchemyError):
            log.exception("%s failed; retrying", what, extra=extra)
        elif what not in self._store_failing:
            self._store_failing.add(what)
            log.error("%s failed, the store did not answer; retrying: %s", what, driver_message(e), extra=extra)

    def _answered(self, what: str) -> None:
        if what in self._store_failing:
            self._store_failing.discard(what)
            log.info("%s: the store answers again", what)

    def wake(self) -> None:
        """Look at the outbox now rather than at the next poll (call after committing new rows)."""
        self._wake.set()
        for event in self._wakes.values():
            event.set()

    async def _sink_loop(self, name: str) -> None:
        """Deliver one sink's rows and re-send its firing alerts until stopped or the sink is removed."""
        wake = self._wakes.setdefault(name, asyncio.Event())
        idle = 0  # rounds in a row that found nothing to send
        while not self._stopping and name in self.sinks:
            wake.clear()  # before looking, so a wake() during the flush is not lost
            res = FlushResult()
            try:
                await self.flush_sink(name, res)
                if not self._stopping:
                    await self.refresh_due(name)
            except Exception as e:  # the store may be briefly unreachable: log, keep going, rows stay put
                self._failed(f"alert delivery to {name}", e, {"sink": name})
            else:
                self._answered(f"alert delivery to {name}")
            idle = 0 if res.delivered or res.retried or res.dead else idle + 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self._idle_wait(name, idle))

    def _idle_wait(self, name: str, idle: int) -> float:
        """How long a sink's loop waits before it looks again: `poll_interval` after a round that sent something,
        doubling with each empty round up to IDLE_POLLS intervals, and never past when its next row falls due or
        its firing alerts are re-sent."""
        wait = self.poll_interval * min(2 ** max(idle - 1, 0), IDLE_POLLS)
        now = self.now()
        sink = self.sinks.get(name)  # None: removed by a reload meanwhile (the loop ends at its next look)
        for at in (self._next_due.get(name), self._next_refresh.get(name) if sink and refreshes(sink) else None):
            if at is not None and at > now:
                wait = min(wait, (at - now).total_seconds())
        return max(wait, 0.0)

    async def run(self) -> None:
        """Supervise one delivery loop per sink, drop rows of removed sinks, keep the pending gauge current."""
        while not self._stopping:
            self._wake.clear()
            for name in self.sinks:
                task = self._loops.get(name)
                if task is None or task.done():
                    self._loops[name] = asyncio.create_task(self._sink_loop(name), name=f"alerts-sink-{name}")
            for name in [n for n, t in self._loops.items() if t.done()]:
                del self._loops[name]
            try:
                await self.drop_unconfigured()
                await self._update_pending()
            except Exception as e:
                self._failed("alert outbox housekeeping", e, {})
            else:
                self._answered("alert outbox housekeeping")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval * HOUSEKEEPING_POLLS)

    def start(self) -> asyncio.Task[None]:
        """Start the background delivery tasks on the running loop (once fenced, they end at once)."""
        self._stopping = self._fenced  # fenced as the alerting started (its outbox reads): it stays fenced
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name="alerts-sender")
        return self._task

    def fence(self) -> None:
        """Claim nothing more: this replica lost the leader lock and the next leader sends what waits (a send on the
        wire ends; the rest of its batch is given back). Claims are leases on this host's clock: going on through
        the shutdown, it sent rows the new leader had claimed when their clocks differed by a lease. For good: a
        later `start` does not undo it."""
        self._fenced = self._stopping = True
        self.wake()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop the tasks (sends in flight get `grace` seconds) and close the HTTP client."""
        self._stopping = True
        self.wake()
        tasks = [t for t in (self._task, *self._loops.values()) if t is not None]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            for t in late:
                t.cancel()  # leased rows are sent again after their lease: nothing is lost
            for t in late:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
        self._task = None
        self._loops.clear()
        await self._client.aclose()

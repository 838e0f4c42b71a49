"""Deliver the outbox: at-least-once, retries with full-jitter backoff, Retry-After, 410 disables a sink.

The sender owns no state that matters across a crash: every notification is a row, claimed with a lease
before it is sent and marked after. A crash between sending and marking sends the row again after its lease
(receivers de-duplicate on `webhook-id`). Time comes from the injected `now`, randomness from `rand`, HTTP
from the injected transport, so tests drive it without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from monitor.alerts.backoff import full_jitter, retry_after
from monitor.alerts.config import AlertsConfig
from monitor.alerts.events import Notification
from monitor.alerts.outbox import Outbox
from monitor.alerts.sinks import Rendered, Sink
from monitor.domain import utcnow
from monitor.tls import default_context

log = logging.getLogger("monitor.alerts")
_BODY_SNIPPET = 200


@dataclass(frozen=True)
class Attempt:
    """The outcome of one HTTP attempt; a failing receiver is an outcome, not an exception."""

    ok: bool
    status: int | None = None
    error: str = ""
    retry_after_s: float | None = None
    elapsed_s: float = 0.0

    @property
    def gone(self) -> bool:
        return self.status == 410


@dataclass
class FlushResult:
    """How many notifications a flush delivered, scheduled for retry and gave up on."""

    delivered: int = 0
    retried: int = 0
    dead: int = 0


class Sender:
    """Sends due outbox rows to their sinks; run it as a background task with :meth:`start`/:meth:`stop`."""

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
        self.disabled: dict[str, str] = {}  # sink -> why (a 410 Gone)
        self._client = httpx.AsyncClient(transport=transport, follow_redirects=False, verify=default_context())
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._next_refresh: datetime | None = None
        self.set_sinks(sinks, cfg)

    def set_sinks(self, sinks: Mapping[str, Sink], cfg: AlertsConfig | None = None) -> None:
        """Swap the sinks (and settings) after a config reload; a reload re-enables disabled sinks."""
        self.sinks = dict(sinks)
        self.cfg = cfg or self.cfg
        self.disabled = {}
        if self.metrics is not None:
            for name in self.sinks:
                self.metrics.sent.labels(name)
                self.metrics.send_failures.labels(name)

    # one request
    async def attempt(self, sink: Sink, req: Rendered) -> Attempt:
        """POST one rendered request; return what happened (never raises for receiver failures)."""
        started = asyncio.get_running_loop().time()
        try:
            resp = await self._client.post(req.url, content=req.body, headers=req.headers, timeout=sink.timeout)
        except httpx.HTTPError as e:
            err = sink.redact(f"{e.__class__.__name__}: {e}" if str(e) else e.__class__.__name__)
            return Attempt(False, None, err, None, asyncio.get_running_loop().time() - started)
        elapsed = asyncio.get_running_loop().time() - started
        if 200 <= resp.status_code < 300:
            return Attempt(True, resp.status_code, "", None, elapsed)
        snippet = resp.text[:_BODY_SNIPPET].strip().replace("\n", " ")
        err = sink.redact(f"HTTP {resp.status_code}" + (f": {snippet}" if snippet else ""))
        ra = retry_after(resp.headers.get("retry-after"), self.now()) if resp.status_code in (429, 503) else None
        return Attempt(False, resp.status_code, err, ra, elapsed)

    async def send_now(self, sink_name: str, n: Notification) -> Attempt:
        """Send one notification through a sink right away, bypassing the outbox (alerts test)."""
        sink = self.sinks[sink_name]
        return await self.attempt(sink, sink.render(n, self.now()))

    # the outbox
    def _delay(self, n: Notification, a: Attempt) -> float:
        r = self.cfg.retry
        if a.retry_after_s is not None:
            return min(a.retry_after_s, r.max_retry_after)
        return full_jitter(n.attempts, r.initial, r.max, self.rand)

    async def _deliver(self, n: Notification, res: FlushResult) -> None:
        sink = self.sinks.get(n.sink)
        if sink is None or n.sink in self.disabled:
            why = self.disabled.get(n.sink) or f"sink {n.sink!r} is no longer configured"
            await asyncio.to_thread(self.outbox.mark_dead, n.id, why)
            res.dead += 1
            return
        now = self.now()
        try:
            req = sink.render(n, now)
        except Exception as e:  # a row this build cannot render would otherwise block its sink forever
            log.exception("cannot render a notification", extra={"sink": n.sink, "message_id": n.message_id})
            await asyncio.to_thread(self.outbox.mark_dead, n.id, sink.redact(f"cannot render: {e!r}"))
            res.dead += 1
            return
        a = await self.attempt(sink, req)
        if a.ok:
            await asyncio.to_thread(self.outbox.mark_delivered, n.id, self.now())
            res.delivered += 1
            if self.metrics is not None:
                self.metrics.sent.labels(n.sink).inc()
            return
        if self.metrics is not None:
            self.metrics.send_failures.labels(n.sink).inc()
        extra = {"sink": n.sink, "message_id": n.message_id, "kind": n.kind, "attempt": n.attempts + 1,
                 "error": a.error}
        if a.gone:
            self.disabled[n.sink] = f"sink disabled: the endpoint answered 410 Gone ({a.error})"
            log.error("alert sink %s answered 410 Gone: disabled until the config is reloaded", n.sink,
                      extra=extra)
            await asyncio.to_thread(self.outbox.mark_dead, n.id, a.error)
            res.dead += 1
            return
        delay = self._delay(n, a)
        next_at = now + timedelta(seconds=delay)
        if next_at > n.created_at + timedelta(seconds=self.cfg.retry.give_up_after):
            log.error("gave up delivering a notification", extra=extra)
            await asyncio.to_thread(self.outbox.mark_dead, n.id, f"gave up after {n.attempts + 1} attempts: "
                                                                 f"{a.error}")
            res.dead += 1
            return
        log.warning("notification delivery failed, will retry", extra={**extra, "retry_in_s": round(delay, 3)})
        await asyncio.to_thread(self.outbox.mark_retry, n.id, next_at, a.error)
        res.retried += 1

    async def _deliver_sink(self, items: list[Notification], res: FlushResult) -> None:
        for n in items:  # one sink's messages in order; sinks in parallel
            await self._deliver(n, res)

    async def flush(self, max_rounds: int = 100) -> FlushResult:
        """Deliver everything due now (retries that fall due later stay for later); return the counts."""
        res = FlushResult()
        for _ in range(max_rounds):
            due = await asyncio.to_thread(self.outbox.due, self.now(), self.batch, lease=self.lease)
            if not due:
                break
            by_sink: dict[str, list[Notification]] = defaultdict(list)
            for n in due:
                by_sink[n.sink].append(n)
            await asyncio.gather(*(self._deliver_sink(items, res) for items in by_sink.values()))
        await self._update_pending()
        return res

    async def _update_pending(self) -> None:
        if self.metrics is not None:
            self.metrics.pending.set(await asyncio.to_thread(self.outbox.pending_count))

    async def refresh(self) -> int:
        """Re-send every alert still firing to sinks that need it (Alertmanager); return requests made."""
        sent = 0
        for name, sink in self.sinks.items():
            if name in self.disabled:
                continue
            firing = await asyncio.to_thread(self.outbox.firing, name)
            req = sink.refresh(firing, self.now())
            if req is None:
                continue
            a = await self.attempt(sink, req)
            sent += 1
            if not a.ok:
                if self.metrics is not None:
                    self.metrics.send_failures.labels(name).inc()
                log.warning("re-sending firing alerts failed", extra={"sink": name, "alerts": len(firing),
                                                                     "error": a.error})
        return sent

    # the background task
    def wake(self) -> None:
        """Look at the outbox now rather than at the next poll (call after committing new rows)."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver due rows and re-send firing alerts until cancelled or stopped."""
        while not self._stopping:
            self._wake.clear()  # before looking, so a wake() during the flush is not lost
            try:
                await self.flush()
                now = self.now()
                if self._next_refresh is None or now >= self._next_refresh:
                    self._next_refresh = now + timedelta(seconds=self.cfg.resend_interval)
                    await self.refresh()
            except Exception:  # the store may be briefly unreachable: log, keep going, rows stay put
                log.exception("alert delivery loop failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)

    def start(self) -> asyncio.Task[None]:
        """Start the background delivery task on the running loop."""
        self._stopping = False
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name="alerts-sender")
        return self._task

    async def stop(self, grace: float = 5.0) -> None:
        """Stop the task (sends in flight get `grace` seconds) and close the HTTP client."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            done, _ = await asyncio.wait([self._task], timeout=grace)
            if not done:
                self._task.cancel()  # leased rows are sent again after their lease: nothing is lost
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._task
            self._task = None
        await self._client.aclose()

"""Alerting as the daemon uses it: policy, outbox and sender built from one config, started and stopped."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import event as sa_event
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session

from monitor.alerts.config import AlertsConfig
from monitor.alerts.events import RESOLVING, AlertEvent, Notification
from monitor.alerts.held_rows import HEALTH_KINDS
from monitor.alerts.inhibit import Inhibitor
from monitor.alerts.outbox import Outbox, alert_key, enqueue, told_firing
from monitor.alerts.pending import CLOSE_GRACE_S, Pending, Write
from monitor.alerts.policy import CooldownEntry, CooldownKey, Policy, Suppressed, route
from monitor.alerts.reconcile import Reconciling
from monitor.alerts.sender import Sender
from monitor.alerts.sinks import build_sinks
from monitor.alerts.suppressed import report
from monitor.domain import utcnow
from monitor.store.drift_repo import DriftRepository
from monitor.store.repository import driver_message

log = logging.getLogger("monitor.alerts")


class Alerting(Reconciling):
    """The alerting layer of a running daemon.

    Call :meth:`enqueue` inside the transaction that records an event (drift persistence does), or
    :meth:`publish` for events that have no transaction of their own. :meth:`start` seeds the cooldown memory
    from the outbox and starts the sender task; :meth:`stop` ends it. Build it with :func:`build_alerting`.
    """

    def __init__(self, cfg: AlertsConfig, outbox: Outbox, sender: Sender, now: Callable[[], datetime],
                 metrics: Any = None):
        self.cfg = cfg
        self.outbox = outbox
        self.sender = sender
        self.policy = Policy(cfg)
        self.inhibitor = Inhibitor(cfg, metrics)  # one page per outage: error drift held while a canary is down
        self.now = now
        self.metrics = metrics
        # the canary x target pairs configured, as the latest `retire` was told (None: not told, all are): a health
        # message of another is not written (the job of a run in flight as a reload removed its pair)
        self.monitored: set[tuple[str, str]] | None = None
        # `resync` and the writers of the cooldown memory on the event loop: the keys whose rows are being written
        # (memory updated, not committed yet) and when each key's memory last changed (a count, not a clock). A
        # resync leaves those alone: its outbox read from before the commit would put back the state before them
        # (the canary.recovered of a canary.down then dropped as not firing; a new canary.down as a repeat).
        self._memory_lock = threading.Lock()
        self._writing: Counter[CooldownKey] = Counter()
        self._changed: dict[CooldownKey, int] = {}
        self._changes = 0
        # the pairs with a canary.down waiting for the store (planned or not): the answers of such a pair release
        # nothing its failures held, the sinks not told yet that it is down (see `release_answered`)
        self._downs_waiting: Counter[tuple[str, str]] = Counter()
        # writes without a transaction of their own, in order, retried while the store refuses them
        self.pending = Pending(self._attempt, lambda w: self._unmark(w, written=False),
                               superseded=metrics.alert_events_superseded.inc if metrics is not None else lambda n: None)
        if sender is not None:  # None: the CLI's, which writes rows and sends none
            sender.on_dead = lambda n: self.inhibitor.given_up(self.outbox.engine, n, self.now())

    def notifications(self, event: AlertEvent, also: Iterable[str] = (),
                      undo: dict[CooldownKey, CooldownEntry | None] | None = None) -> list[Notification]:
        """Return the notifications an event produces now (routing and cooldown applied; `also`: see `_paged`;
        `undo`: see `Policy.notifications`); what the cooldown kept from a sink is logged and counted."""
        suppressed: list[Suppressed] = []
        out = self.policy.notifications(event, self.now(), undo, also, suppressed=suppressed)
        report(suppressed, self.metrics)
        return out

    def _paged(self, session: Any, event: AlertEvent) -> list[str]:
        """The sinks an end goes to though its routes no longer name them: those told its alert fires (a reload
        that changed the routes mid-outage left their page open, with nothing to resolve it)."""
        if event.kind not in RESOLVING:
            return []
        routed = set(route(event, self.cfg))
        return [s.name for s in self.cfg.sinks
                if s.name not in routed
                and told_firing(session, s.name, event.group_key, event.signal)]

    def _paged_all(self, events: list[AlertEvent]) -> list[list[str]]:
        """`_paged` of each of `events`, in a session of its own."""
        with Session(self.outbox.engine) as s:
            return [self._paged(s, e) for e in events]

    def _told(self, session: Any, event: AlertEvent) -> list[str]:
        """The sinks told that an end's alert fires (none for an event that does not end one)."""
        if event.kind not in RESOLVING:
            return []
        return [s.name for s in self.cfg.sinks if told_firing(session, s.name, event.group_key, event.signal)]

    def enqueue(self, session: Any, events: Iterable[AlertEvent],
                undo: dict[CooldownKey, CooldownEntry | None] | None = None,
                told_only: bool = False) -> list[Notification]:
        """Add the notifications for `events` to the caller's open session (committed with it). A caller whose
        transaction may fail passes `undo` and, if it does, :meth:`forget` s it: else the cooldown would drop
        the same notifications when the events are written again. `told_only`: events of a pair the config no
        longer routes (an operator ending a removed pair's event, or one of a check its pair no longer has): only an
        end, and only to the sinks still told its alert fires (the removal resolved it at the others; the routes, its
        canary's tags gone, no longer say where it went)."""
        now = self.now()
        suppressed: list[Suppressed] = []
        out = [n for e in events for n in (
            self.policy.notifications(e, now, undo, only=self._told(session, e), suppressed=suppressed) if told_only
            else self.policy.notifications(e, now, undo, self._paged(session, e), suppressed=suppressed))]
        if suppressed:  # said once the transaction commits: one rolled back is planned again when written again
            sa_event.listen(session, "after_commit", lambda _: report(suppressed, self.metrics), once=True)
        self.inhibitor.apply(session, out, now)
        enqueue(session, out)
        return out

    def _write(self, out: list[Notification], removed: Iterable[tuple[str, str]] = ()) -> None:
        """Store notifications in a transaction of their own, holding or releasing as the inhibitor decides (and
        ending the held rows of `removed` pairs unsent); never while the inhibitor releases rows. A canary.down or
        canary.recovered of a pair no longer monitored is left out: written after `retire` looked (under the same
        lock), it would fire for a pair whose alerts were resolved, and with the pair added back still failing,
        come before a second canary.down."""
        with self.inhibitor.lock, Session(self.outbox.engine) as s:
            self._monitored_only(out)
            self._store(s, out, removed)

    def _monitored_only(self, out: list[Notification]) -> None:
        """Drop from `out` the health messages of pairs no longer monitored (see `_write`)."""
        if self.monitored is not None:
            for n in [n for n in out if n.kind in HEALTH_KINDS]:
                canary, target = n.payload.get("canary", ""), n.payload.get("target", "")
                if (canary, target) not in self.monitored:
                    log.info("%s of %s@%s not sent: no longer monitored (a reload removed it as its run ended)",
                             n.kind, canary, target, extra={"sink": n.sink})
                    out.remove(n)

    def _store(self, s: Session, out: list[Notification], removed: Iterable[tuple[str, str]] = ()) -> None:
        """`_write` in an open session, holding the inhibitor's lock."""
        self.inhibitor.apply(s, out, self.now())
        for canary, target in removed:
            self.inhibitor.drop(s, canary, target)
        enqueue(s, out)
        s.commit()

    def release_answered(self, canary: str, target: str, settled: Mapping[str, int | None]) -> int:
        """Send the rows a pair held that its answers release (see `Inhibitor.release`); return how many. None while
        its canary.down waits for the store: the sinks read as not told it is down, and one answer among the failures
        sent the drift as "not an outage", two pages for one once the canary.down was written."""
        with self._memory_lock:
            if self._downs_waiting[(canary, target)]:
                return 0  # the pair's next answer looks again
        released = self.inhibitor.release(self.outbox.engine, canary, target, self.now(), settled)
        if released and self.sender is not None:
            self.sender.wake()
        return released

    def resync(self) -> None:
        """Read the cooldown memory back from the outbox: another process (`baseline accept` or `reset`) resolved
        alerts this one remembers as firing, and their next firing message is not a repeat to drop."""
        since = self.now() - timedelta(seconds=max(self.cfg.cooldown, 1.0))
        with self._memory_lock:
            read_at = self._changes
        fresh, announced = self.outbox.last_firing(since), self.outbox.model_announced(since)
        with self._memory_lock:
            self.policy.seed({k: v for k, v in fresh.items()
                              if not self._writing[k] and self._changed.get(k, 0) <= read_at}, announced)

    def _touch(self, keys: Iterable[CooldownKey], writing: int) -> None:
        """Note that the memory of `keys` changed (holding `_memory_lock`); `writing`: +1 as their rows are
        about to be written, -1 once written (or not), 0 for a change after the write."""
        self._changes += 1
        for k in keys:
            self._changed[k] = self._changes
            self._writing[k] += writing
            if not self._writing[k]:
                del self._writing[k]

    async def _attempt(self, w: Write) -> None:
        """One try at a pending write (see monitor.alerts.pending): planned on its first try that reads the store
        (marking its keys as being written), then written; raises SQLAlchemyError while the store is away."""
        if w.out is None:
            paged: list[list[str]] = [[] for _ in w.events]
            if any(e.kind in RESOLVING for e in w.events):  # a store read only for an end
                paged = await asyncio.to_thread(self._paged_all, w.events)
            with self._memory_lock:
                w.out = [n for e, also in zip(w.events, paged, strict=True)
                         for n in self.notifications(e, also, w.undo)]
                self._staged(w)
        for n in w.out:  # what the inhibitor decided on a failed try is decided again
            n.status, n.last_error = w.fresh[n.id]
        if not w.out:
            self._unmark(w, written=True)
            return
        await asyncio.to_thread(self._write_then_unmark, w)
        if self.sender is not None:
            self.sender.wake()

    def _staged(self, w: Write) -> None:
        """Mark the keys of the notifications `w` just planned as being written (holding `_memory_lock`)."""
        assert w.out is not None
        w.keys = [alert_key(n) for n in w.out]
        w.fresh = {n.id: (n.status, n.last_error) for n in w.out}
        self._touch(w.keys, +1)

    def _write_then_unmark(self, w: Write) -> None:
        """`_write` a pending write and unmark its keys, in the writing thread: the mark goes when the rows are
        committed, not when an awaiting task is cancelled (a shutdown) while the thread may still commit them. A
        key conflict on a retry means the try before committed, its answer lost with the connection."""
        assert w.out is not None
        w.write_tries += 1
        self._drop_ended(w.out)
        try:
            self._write(w.out)
        except IntegrityError:
            if w.write_tries < 2:
                raise
            log.info("alert messages were already written (an earlier try's answer was lost)")
        self._unmark(w, written=True)

    def _drop_ended(self, out: list[Notification]) -> None:
        """Leave out of `out` the drift openings (fired again by `ensure_firing`) whose event the store has ended
        since: one that waited for the store was written after its event's end (sent to the same sink, its memory
        told the opening), and was the sink's last word of it, a page no resolve follows."""
        ids = sorted({str(n.payload["event_id"]) for n in out
                      if n.kind == "drift.opened" and n.payload.get("event_id")})
        ended = DriftRepository(self.outbox.engine).ended(ids) if ids else set()
        for n in [n for n in out if n.kind == "drift.opened" and n.payload.get("event_id") in ended]:
            log.info("%s of %s@%s not sent: its event ended while it waited for the store", n.kind,
                     n.payload.get("canary"), n.payload.get("target"), extra={"sink": n.sink})
            out.remove(n)

    def _unmark(self, w: Write, written: bool) -> None:
        """Unmark the keys of `w` once written (or given up on), once. Those not written (left out by `_write`, their
        pair no longer monitored, or all of them if given up on) get back the memory `w.undo` holds of before them:
        else a canary.down never sent was remembered as firing, and with the pair added back within the cooldown its
        next canary.down was dropped as a repeat (its outage never paged, its recovery sent alone)."""
        with self._memory_lock:
            if w.unmarked:
                return
            w.unmarked, w.written = True, written
            kept = {alert_key(n) for n in w.out or []} if written else set()
            self.policy.restore({k: w.undo[k] for k in w.keys if k not in kept and k in w.undo})
            self._touch(w.keys, -1)
            self._downs_waiting -= Counter(w.downs)

    def forget(self, undo: Mapping[CooldownKey, CooldownEntry | None]) -> None:
        """Undo the cooldown memory of notifications whose transaction rolled back (see :meth:`enqueue`)."""
        self.policy.restore(undo)

    async def publish(self, events: Iterable[AlertEvent]) -> list[Notification]:
        """Write the notifications for events in a transaction of their own and wake the sender; return those
        written. While the store refuses the write, it waits in order behind the others (`self.pending`) and is
        retried until it lands; the caller goes on once the first try failed (nothing is returned then)."""
        w = Write(events=list(events))
        if not w.events:
            return []
        w.downs = {(e.canary, e.target) for e in w.events if e.kind == "canary.down"}
        with self._memory_lock:
            self._downs_waiting.update(w.downs)
        return (w.out or []) if await self.pending.put(w) else []

    async def start(self, pairs: Iterable[tuple[str, str]] | None = None,
                    checks: Iterable[tuple[str, str, str]] | None = None) -> None:
        """Seed the cooldown memory from the outbox, resolve alerts of pairs not in `pairs` (and the drift alerts
        of checks not in `checks`: see `retire`), start delivering."""
        try:
            moved = await asyncio.to_thread(self.outbox.adopt_legacy_health)
        except SQLAlchemyError as e:  # a store not writable yet must not keep the daemon from starting
            log.warning("could not move canary health alerts an older release wrote (tried again at the next "
                        "start): %s", driver_message(e))
            moved = 0
        if moved:
            log.info("canary health alerts an older release wrote moved to signal health", extra={"rows": moved})
        since = self.now() - timedelta(seconds=max(self.cfg.cooldown, 1.0))
        self.policy.seed(await asyncio.to_thread(self.outbox.last_firing, since),
                         await asyncio.to_thread(self.outbox.model_announced, since))
        await asyncio.to_thread(self.inhibitor.seed, self.outbox.engine, self.now())
        if pairs is not None:
            await self.retire(pairs, checks)
        self.sender.start()

    async def stop(self, last_try_s: float = CLOSE_GRACE_S) -> int:
        """Give the writes still waiting for the store a last try of `last_try_s` (what is left is logged as not
        sent), then stop the sender task; undelivered rows stay in the outbox for the next start. Return how many
        writes were given up on."""
        lost = await self.pending.close(last_try_s)
        await self.sender.stop()
        return lost

    def reload(self, cfg: AlertsConfig, environ: Mapping[str, str] | None = None) -> None:
        """Apply a new alerts config (raises SecretError before changing anything if a secret is missing)."""
        sinks = build_sinks(cfg, environ)
        policy = Policy(cfg)
        with self._memory_lock:  # built whole, then put in place: a resync never sees it without its memory
            policy.memory = self.policy.memory
            self.cfg = cfg
            self.policy = policy
        self.inhibitor.cfg = cfg
        self.sender.set_sinks(sinks, cfg)


def build_alerting(cfg: AlertsConfig, store: Any, *, environ: Mapping[str, str] | None = None,
                   metrics: Any = None, transport: httpx.AsyncBaseTransport | None = None,
                   now: Callable[[], datetime] = utcnow, **sender_options: Any) -> Alerting:
    """Build the alerting layer over a migrated Store; raises SecretError when a sink's secret is missing."""
    outbox = Outbox(store.engine)
    sender = Sender(outbox, build_sinks(cfg, environ), cfg, metrics=metrics, transport=transport, now=now,
                    **sender_options)
    return Alerting(cfg, outbox, sender, now, metrics)

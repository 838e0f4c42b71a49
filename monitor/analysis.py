"""Drift analysis inside the daemon: signals, drift events, baselines and their notifications.

Analysis runs on one dedicated worker thread, in the order observations finish, so it never delays the event
loop (and so never skews the latency of calls in flight). Each batch of event updates is written in one
transaction together with the notifications it causes (the outbox), so an event is never stored without its
alert, nor an alert sent for an event that was not stored. A batch the store does not take (a lock held past
its timeout, a full disk, a deadlock, a fail-over) stays in memory and is written with the next batch, its
opening and resolving notifications included: the engine has already moved on, and would otherwise only ever
store the event's later updates, which notify no one.

Only the leader writes what analysis finds (see monitor.store.leader). A replica whose lock the server ended
still analyses the observations of the runs it had in flight while it shuts down; a new leader has already
loaded the open events by then, so an event that replica opened would be a second open event for the same
canary x target x signal, which no one resolves. Once the lock is lost (`fence`) nothing more is written:
the new leader sees the same change in its own observations. While the lock is not confirmed recently
(`confirmed`: a process waking from a freeze, before its watch has asked the store), updates wait in memory.

Only the pairs configured now are analysed (`configured`): an observation of a pair a reload removed while it
waited is stored, but opens no event and sends no notification for a pair no one watches any longer.

What an event update tells the alert receivers is monitor.drift_alerts; how the stored baselines are kept
current as they complete and learn, monitor.stored_baselines.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from monitor.alerts import AlertEvent, Alerting
from monitor.alerts.inhibit import HELD_SIGNALS
from monitor.domain import Observation, utcnow
from monitor.drift import DriftEngine, DriftEvent, DriftSettings, EventUpdate
from monitor.drift_alerts import alert_event, notifies
from monitor.store import Store
from monitor.store.drift_repo import DriftRepository
from monitor.store.repository import driver_message
from monitor.stored_baselines import StoredBaselines
from monitor.telemetry.metrics import Metrics

log = logging.getLogger("monitor.analysis")

MAX_LAG_S = 5.0  # once the oldest observation waiting for analysis has waited this long, a run waits for its own
MAX_BACKLOG = 1000  # or once this many wait (memory stays bounded whatever analyses cost)
CONFIRM_WAIT_S = 3.0  # how long a write waits for the leader lock's next confirmation before its updates wait
CONFIRM_POLL_S = 0.02


def _failed(e: Exception, message: str, *args: Any) -> None:
    """Log a failed write: a store error on one line (it is the store's, not a bug), anything else with its trace."""
    if isinstance(e, SQLAlchemyError):
        log.error(message + ": %s", *args, driver_message(e))
    else:
        log.exception(message, *args)


def _compact(updates: list[EventUpdate]) -> list[EventUpdate]:
    """Updates still to write, without the repeated "updated" ones: an event's data is written as it is now
    anyway, so per event only its openings, resolutions and acceptances (for their notifications) must stay."""
    told = {u.event.id for u in updates if u.action != "updated"}
    seen: set[str] = set()
    out = []
    for u in updates:
        if u.action != "updated":
            out.append(u)
        elif u.event.id not in told and u.event.id not in seen:
            seen.add(u.event.id)
            out.append(u)
    return out


class Analysis:
    """Feeds finished observations to the drift engine and persists what it learns."""

    def __init__(self, store: Store, metrics: Metrics, settings: DriftSettings, *, alerting: Alerting | None = None,
                 tags: Callable[[str], tuple[str, ...]] = lambda canary: (),
                 listeners: list[Callable[[EventUpdate], None]] | None = None,
                 configured: Callable[[str, str], bool] = lambda canary, target: True,
                 now: Callable[[], datetime] = utcnow, monotonic: Callable[[], float] = time.monotonic):
        self.store = store
        self.now = now
        self.repo = DriftRepository(store.engine)
        self.metrics = metrics
        self.engine = DriftEngine(settings, clock=now)
        self.alerting = alerting
        self.tags = tags
        self.listeners = listeners or []
        self.configured = configured  # whether (canary, target) is configured now (read on the analysis thread)
        self.unconfigured = 0  # observations not analysed: a reload removed their pair while they waited
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drift")
        self.baselines = StoredBaselines(self.engine, self.repo)
        self._unwritten: list[EventUpdate] = []  # event updates the store did not take yet, oldest first
        self._monotonic = monotonic
        self._queued: deque[float] = deque()  # when each observation not analysed yet was handed over, oldest first
        self.max_lag_s, self.max_backlog = MAX_LAG_S, MAX_BACKLOG
        self.confirmed: Callable[[], bool] = lambda: True  # the leader lock confirmed recently: writes may go
        self.fenced = False  # the leader lock is lost: nothing more is written (set once, from the event loop)
        self.confirm_wait_s = CONFIRM_WAIT_S
        self._ended_seen: set[str] = set()  # open events here the store had ended at the latest `close_ended`
        metrics.analysis_delay.set_function(self.delay)

    def fence(self) -> None:
        """Write nothing more: this replica lost the leader lock and another may lead (analyses go on unstored)."""
        self.fenced = True

    # -- start-up ----------------------------------------------------------------------------------------
    def restore(self, pairs: list[tuple[str, str]]) -> int:
        """Rebuild engine state from the store: baselines and open events; finish incomplete baselines.

        Sequential statistics and windows start afresh after a restart (no replay of old history: its cost
        would grow with history, and re-analysing it could reopen settled events).
        """
        collecting = self.baselines.load()  # pair -> when its baseline (being collected) began
        # every open event, however many a fleet-wide change opened: one left out would be opened again
        self.engine.restore_events(DriftEvent.from_json(d) for d in self.repo.events(state="open", limit=None))
        fed = 0
        limit = self.engine.settings.baseline_size * 3
        for canary, target in pairs:
            if (canary, target) in self.baselines.ready:
                continue
            # a reset baseline forms from what came after the reset, never from the history before it
            for obs in self.store.observations(canary=canary, target=target, limit=limit, oldest_first=True,
                                               since=collecting.get((canary, target))):
                self.engine.observe(obs)
                fed += 1
                if self.engine.baseline(canary, target).ready:
                    self.baselines.progress(canary, target)
                    break
        self.show_open(None)
        return fed

    def declare(self, pairs: list[tuple[str, str]]) -> None:
        """Pre-initialise drift series for the commonly watched signals so dashboards have data."""
        self.metrics.declare_drift(pairs)

    def show_open(self, pairs: set[tuple[str, str]] | None) -> None:
        """Set the gauge of the open events of `pairs` (all with None: at start-up; after a reload, the pairs back
        in the configuration, whose series the removal dropped). Run on the analysis thread."""
        for e in self.engine.events(state="open"):
            if pairs is None or (e.canary, e.target) in pairs:
                self.metrics.drift_active.set(e.canary, e.target, e.signal, value=1)

    def open_alert_events(self, pairs: set[tuple[str, str]]) -> list[AlertEvent]:
        """Return the alert events of the open behaviour events of `pairs` (a model change is told once, never
        resolved, so it is left out), for `Alerting.ensure_firing`. Run on the analysis thread."""
        return [alert_event(EventUpdate("opened", e), self.tags(e.canary)) for e in self.engine.events(state="open")
                if (e.canary, e.target) in pairs and e.kind != "model"]

    # -- the hot path (off the event loop) --------------------------------------------------------------
    async def in_worker(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn` on the analysis thread (serialised with the analyses)."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def on_observation(self, obs: Observation) -> None:
        """Queue a stored observation for analysis. The run that made it goes on at once: a burst of slow analyses
        (an event storm writing evidence, an exact permutation test) must not hold runs up until they overrun their
        interval. Once analysis lags `max_lag_s` behind (or `max_backlog` wait), the run waits for its own: that
        bounds how late a change is seen, the memory the queue takes and how long a shutdown spends on it."""
        future = asyncio.get_running_loop().run_in_executor(self._pool, self._analyse, obs)
        self._queued.append(self._monotonic())
        future.add_done_callback(self._analysed)
        if self.delay() > self.max_lag_s or len(self._queued) > self.max_backlog:
            await asyncio.shield(future)  # shielded: a run cancelled meanwhile must not cancel the analysis

    def _analysed(self, future: asyncio.Future[list[EventUpdate]]) -> None:
        self._queued.popleft()  # the thread takes them in order
        if not future.cancelled() and future.exception() is not None:
            log.error("drift analysis failed", exc_info=future.exception())
        elif not future.cancelled() and self.alerting is not None and notifies(future.result()):
            # only when notifications were written: every wake is a round of outbox reads on the store
            self.alerting.sender.wake()

    def delay(self) -> float:
        """How long the oldest observation waiting for analysis has waited (0 when none waits)."""
        try:
            return max(0.0, self._monotonic() - self._queued[0])
        except IndexError:  # none waits (or, read from a scrape's thread, the last one just finished)
            return 0.0

    async def drain(self) -> None:
        """Wait until the observations queued so far are analysed (the thread takes them in order)."""
        await self.in_worker(lambda: None)

    def _analyse(self, obs: Observation) -> list[EventUpdate]:
        if not self.configured(obs.canary, obs.target):  # not even its signals: an embeddings call costs
            self.unconfigured += 1
            log.debug("observation not analysed: %s@%s is no longer configured", obs.canary, obs.target,
                      extra={"observation": obs.id})
            return []
        try:
            signals = self.engine.compute_signals(obs)
            updates = self.engine.observe(obs, signals)
        except Exception:
            log.exception("drift analysis failed for %s@%s", obs.canary, obs.target)
            return []
        # Each write below is tried on its own: a failed one must not cost the others (the updates above are
        # already the engine's state; dropped here they would never be stored or told).
        try:
            self.store.save_signals(obs.id, signals)
        except Exception as e:
            _failed(e, "storing the signals of observation %s failed", obs.id)
        if self.fenced:
            self._drop(updates)
            return []
        # before its updates are written: an error event this failed call opens is held as a suspected outage
        answered = self.alerting is not None and self.alerting.inhibitor.saw(obs.canary, obs.target, obs.ok)
        try:
            updates = self.persist(updates)
        except Exception as e:
            _failed(e, "storing drift events failed; %d updates wait in memory and are written with the next "
                    "analysis", len(self._unwritten))
            updates = []
        if answered and self.alerting is not None and not self.fenced:
            try:  # what the pair's failed calls held, sent now, or once its events outlive a recovered outage
                self.alerting.release_answered(obs.canary, obs.target, self.engine.answers_to_resolve(
                    obs.canary, obs.target, HELD_SIGNALS))
            except Exception as e:
                _failed(e, "releasing the held notifications of %s@%s failed; tried again at its next answer",
                        obs.canary, obs.target)
        try:
            self.baselines.progress(obs.canary, obs.target)
        except Exception as e:
            _failed(e, "storing the baseline of %s@%s failed; tried again with its next observation", obs.canary,
                    obs.target)
        return updates

    def retry_unwritten(self) -> bool:
        """Write the event updates the store did not take (run on the analysis thread); return whether that wrote
        notifications (the caller wakes the sender)."""
        if self._unwritten:
            try:
                return notifies(self.persist([]))
            except Exception as e:
                _failed(e, "storing drift events failed again; %d updates wait in memory", len(self._unwritten))
        return False

    def _drop(self, updates: list[EventUpdate]) -> None:
        """Let go of event updates a replica that lost the leader lock made (and of any still waiting)."""
        dropped = [u for u in [*self._unwritten, *updates] if u.action != "updated"]
        self._unwritten = []
        if dropped:
            log.warning("drift event updates not stored: this replica lost the leader lock (the leader sees the "
                        "change in its own observations)", extra={"updates": len(dropped),
                                                                   "events": sorted({u.event.id for u in dropped})})

    def _await_confirmed(self) -> bool:
        """Wait (briefly, on the analysis thread) for the leader lock to be confirmed recently; False if it is not."""
        deadline = self._monotonic() + self.confirm_wait_s
        while not self.fenced and not self.confirmed():
            if self._monotonic() >= deadline:
                return False
            time.sleep(CONFIRM_POLL_S)
        return not self.fenced

    def persist(self, updates: list[EventUpdate]) -> list[EventUpdate]:
        """Store event updates (and their notifications) with any the store did not take before; return those
        written (see DriftRepository.save_events). On a store error they all wait for the next call, and it raises.
        While the leader lock is not confirmed they wait too (nothing raised); once it is lost they are dropped."""
        if self.fenced:
            self._drop(updates)
            return []
        pending, self._unwritten = [*self._unwritten, *updates], []
        if not pending:
            return []
        if not self._await_confirmed():
            self._unwritten = _compact(pending)
            if self.fenced:  # lost while it waited
                self._drop([])
            return []
        hook = None
        undo: dict[Any, Any] = {}
        if self.alerting is not None:
            alerting = self.alerting
            tags = self.tags

            def hook(session: Any, written: set[str]) -> None:
                alerting.enqueue(session, [alert_event(u, tags(u.event.canary)) for u in pending
                                           if u.action != "updated" and u.event.id in written], undo)

        latest = {u.event.id: u.event for u in pending}  # an event's data as it is now, once
        try:
            written = self.repo.save_events([e.to_json() for e in latest.values()], hook)
        except Exception:
            self._unwritten = _compact(pending)
            if self.alerting is not None:
                self.alerting.forget(undo)  # not sent: the next try's notifications must not count as repeats
            raise
        updates = [u for u in pending if u.event.id in written]
        # this engine's end of an event the store ended already (an old leader's, written after this replica loaded
        # it open): not written, but the gauge follows (one still open here is let go by `close_ended` alone)
        self._ended_elsewhere(list({u.event.id: u.event for u in pending if u.action != "updated"
                                    and u.event.id not in written and self.repo.holder(u.event.id) is None}.values()))
        for u in updates:
            e = u.event
            if u.action == "opened":
                self.metrics.drift_active.set(e.canary, e.target, e.signal, value=1)
                self.metrics.drift_events.inc(e.canary, e.target, e.signal, e.kind)
                log.warning("drift opened", extra={"canary": e.canary, "target": e.target, "signal": e.signal,
                                                   "kind": e.kind, "baseline": e.baseline_value,
                                                   "current": e.current_value, "p_value": e.p_value})
            elif u.action in ("resolved", "accepted"):
                self.metrics.drift_active.set(e.canary, e.target, e.signal, value=0)
                log.info("drift %s", u.action, extra={"canary": e.canary, "target": e.target, "signal": e.signal})
            for listener in self.listeners:
                listener(u)
        try:
            self._adopt([u.event for u in pending if u.action == "opened" and u.event.id not in written])
        except Exception as e:
            _failed(e, "reading the open event that kept a new one from being stored failed")
        return updates

    def close_ended(self) -> int:
        """Let go of the open events the store has ended since this engine loaded them (an old leader's end written
        just after this replica took over and read them open): return how many. Run on the analysis thread, after
        `refresh_baselines`, and only for an event seen ended at the previous call too: `baseline accept` (and
        `reset`, `pin`) ends events in one transaction and stores their new baseline in the next, and an event let go
        between the two, its baseline not installed, was opened again by the next call (a page after "accepted");
        by the next call here `refresh_baselines` has installed the baseline and closed the event itself."""
        held = self.engine.events(state="open")
        ended = self.repo.ended([e.id for e in held])
        seen, self._ended_seen = self._ended_seen, ended
        return self._ended_elsewhere([e for e in held if e.id in ended and e.id in seen])

    def _ended_elsewhere(self, events: list[DriftEvent]) -> int:
        """Follow the store for `events`, which it has as ended: the engine holds them open no longer (it would
        keep its key from opening again, and the store refuses its end) and their gauge says 0 unless another event
        of their key is open. Return how many the engine still held open."""
        let_go = 0
        for e in events:
            stream = self.engine.stream(e.canary, e.target)
            entry = stream.open.get(e.signal)
            if entry is not None and entry.event.id == e.id:
                del stream.open[e.signal]
                self.engine.drop_event(e.id)
                let_go += 1
                log.info("drift event ended by another process: let go", extra={"event": e.id, "signal": e.signal})
            if entry is None or entry.event.id == e.id:
                self.metrics.drift_active.set(e.canary, e.target, e.signal, value=0)
        if events and self.alerting is not None:
            self.alerting.resync()  # its end is in the outbox: a new opening of the key is no repeat to drop
        return let_go

    def _adopt(self, refused: list[DriftEvent]) -> None:
        """Go on with the open event another replica stored for the key of an event the store refused (one open
        event per canary x target x signal): this engine then updates and resolves that one, as after a restart."""
        for e in refused:
            holder = self.repo.holder(e.id)
            stored = self.repo.event(holder) if holder is not None else None
            if stored is None or stored.get("state") != "open":
                continue
            self.engine.drop_event(e.id)
            self.engine.restore_events([DriftEvent.from_json(stored)])
            self.metrics.drift_active.set(e.canary, e.target, e.signal, value=1)
            log.warning("drift event already open in the store: going on with it", extra={
                "canary": e.canary, "target": e.target, "signal": e.signal, "event": holder, "not_stored": e.id})

    def save_learned(self) -> None:
        """Store every reference that learned anything since it was stored (at shutdown; on the analysis thread)."""
        if self.fenced:
            return
        for key in list(self.baselines.ready):
            try:
                self.baselines.save_learned(key, 0.0)
            except Exception as e:
                _failed(e, "storing the learned reference of %s@%s failed", *key)

    def refresh_baselines(self) -> int:
        """Install baselines another process (the CLI, a replica) stored since; return how many changed."""
        changed = 0
        closed = False
        for key in self.baselines.newer():
            stream = self.engine.stream(*key)
            for signal, entry in list(stream.open.items()):
                stored = self.repo.event(entry.event.id)
                if stored is not None and stored["state"] != "open":
                    del stream.open[signal]  # accepted or resolved elsewhere: this copy says so too, else a reload
                    ev = entry.event        # would fire it again as still open (`open_alert_events`)
                    ev.state, ev.note = stored["state"], stored.get("note") or ""
                    ev.resolved_at, ev.accepted_at = stored.get("resolved_at"), stored.get("accepted_at")
                    self.engine.drop_event(ev.id)
                    self.metrics.drift_active.set(key[0], key[1], signal, value=0)
                    closed = True
                elif stored is not None:  # kept open by a pin: measured against the new baseline from now on
                    del stream.open[signal]
                    self.engine.restore_events([DriftEvent.from_json(stored)])
            changed += 1
        if closed and self.alerting is not None:
            # the CLI told the receivers "accepted" / "resolved": a new event on these signals must reach them
            self.alerting.resync()
        return changed

    def close(self) -> None:
        self._pool.submit(self.retry_unwritten)  # a last try, after the analyses still queued
        self._pool.submit(self.save_learned)
        self._pool.shutdown(wait=True)
        if self._unwritten:
            log.error("stopping with %d drift event updates the store did not take: not stored",
                      len(self._unwritten))

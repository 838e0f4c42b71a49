"""Drift event updates written with their notifications, only by the leader, kept in memory while the store refuses.

Each batch of event updates is written in one transaction together with the notifications it causes (the
outbox), so an event is never stored without its alert, nor an alert sent for an event that was not stored. A
batch the store does not take (a lock held past its timeout, a full disk, a deadlock, a fail-over) stays in memory
and is written with the next batch, its opening and resolving notifications included: the engine has already moved
on, and would otherwise only ever store the event's later updates, which notify no one.

Only the leader writes what analysis finds (see monitor.store.leader). A replica whose lock the server ended
still analyses the observations of the runs it had in flight while it shuts down; a new leader has already
loaded the open events by then, so an event that replica opened would be a second open event for the same
canary x target x signal, which no one resolves. Once the lock is lost (`fence`) nothing more is written:
the new leader sees the same change in its own observations. While the lock is not confirmed recently
(`confirmed`: a process waking from a freeze, before its watch has asked the store), updates wait in memory.

`DriftWrites` is a part of monitor.analysis.Analysis, which holds the state it names; what the store already holds
from another process (an event it ended, or one it keeps open for the same key) is monitor.drift_takeover.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from monitor.alerts import Alerting
from monitor.drift import EventUpdate
from monitor.drift_alerts import alert_event, notifies
from monitor.drift_takeover import StoreFollowing
from monitor.store.drift_repo import DriftRepository
from monitor.store.repository import driver_message
from monitor.telemetry.metrics import Metrics

log = logging.getLogger("monitor.analysis")  # the analysis's lines, under the one name they have always had

CONFIRM_WAIT_S = 3.0  # how long a write waits for the leader lock's next confirmation before its updates wait
CONFIRM_POLL_S = 0.02


def failed(e: Exception, message: str, *args: Any) -> None:
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


class DriftWrites(StoreFollowing):
    """The write path of `Analysis`: event updates and their notifications in one transaction, only while this
    replica leads; what the store refuses waits in `_unwritten` for the next write."""

    repo: DriftRepository
    metrics: Metrics
    alerting: Alerting | None
    tags: Callable[[str], tuple[str, ...]]
    # whether the config routes the notifications of a pair's signal: not those of a pair, or a check (`check:NAME`),
    # it no longer has (see `Alerting.enqueue`'s `told_only`)
    routed: Callable[[str, str, str], bool]
    listeners: list[Callable[[EventUpdate], None]]
    confirmed: Callable[[], bool]  # the leader lock confirmed recently: writes may go
    fenced: bool  # the leader lock is lost: nothing more is written (set once, from the event loop)
    confirm_wait_s: float
    _unwritten: list[EventUpdate]  # event updates the store did not take yet, oldest first
    _monotonic: Callable[[], float]

    def fence(self) -> None:
        """Write nothing more: this replica lost the leader lock and another may lead (analyses go on unstored)."""
        self.fenced = True

    def retry_unwritten(self) -> bool:
        """Write the event updates the store did not take (run on the analysis thread); return whether that wrote
        notifications (the caller wakes the sender)."""
        if self._unwritten:
            try:
                return notifies(self.persist([]))
            except Exception as e:
                failed(e, "storing drift events failed again; %d updates wait in memory", len(self._unwritten))
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
            tags, routed = self.tags, self.routed

            def hook(session: Any, written: set[str]) -> None:
                told = [u for u in pending if u.action != "updated" and u.event.id in written]
                for told_only in (False, True):
                    events = [alert_event(u, tags(u.event.canary)) for u in told
                              if routed(u.event.canary, u.event.target, u.event.signal) != told_only]
                    if events:
                        alerting.enqueue(session, events, undo, told_only=told_only)

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
                # since: the change's estimated start, which a log search dates it by (not when it was detected)
                log.warning("drift opened", extra={"canary": e.canary, "target": e.target, "signal": e.signal,
                                                   "kind": e.kind, "baseline": e.baseline_value,
                                                   "current": e.current_value, "p_value": e.p_value,
                                                   "since": e.first_obs_at, "event_id": e.id})
            elif u.action in ("resolved", "accepted"):
                self.metrics.drift_active.set(e.canary, e.target, e.signal, value=0)
                log.info("drift %s", u.action, extra={"canary": e.canary, "target": e.target, "signal": e.signal})
            for listener in self.listeners:
                listener(u)
        try:
            self._adopt([u.event for u in pending if u.action == "opened" and u.event.id not in written])
        except Exception as e:
            failed(e, "reading the open event that kept a new one from being stored failed")
        return updates

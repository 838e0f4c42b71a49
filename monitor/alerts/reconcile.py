"""What the outbox says fires, brought in line with what the config routes: the alerts of pairs a reload removed
are resolved (`retire`), sinks a reload or restart routes to an open drift event or a down pair are told it fires
(`ensure_firing`), and which pairs fire at all is read across sinks (`open_pairs`).

`Reconciling` is a part of monitor.alerts.service.Alerting, which holds the state it names.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlmodel import Session

from monitor.alerts.config import AlertsConfig
from monitor.alerts.events import HELD, RESOLVING, AlertEvent, Notification
from monitor.alerts.inhibit import Inhibitor
from monitor.alerts.outbox import Outbox, alert_key, given_up_firing
from monitor.alerts.pending import Pending, Write
from monitor.alerts.policy import (
    CHECK_RETIRED_NOTE,
    REMOVED_CHECK,
    REMOVED_PAIR,
    RETIRED,
    RETIRED_NOTE,
    CooldownEntry,
    CooldownKey,
    Policy,
    plan,
    route,
)
from monitor.alerts.sender import Sender, refreshes
from monitor.alerts.suppressed import report
from monitor.drift.names import check_of
from monitor.store.drift_repo import DriftRepository


class Reconciling:
    """The part of `Alerting` that ends, or fires again, what a config change leaves out of line."""

    cfg: AlertsConfig
    outbox: Outbox
    sender: Sender
    policy: Policy
    inhibitor: Inhibitor
    pending: Pending
    now: Callable[[], datetime]
    metrics: Any
    monitored: set[tuple[str, str]] | None
    _memory_lock: threading.Lock
    _writing: Counter[CooldownKey]
    _changed: dict[CooldownKey, int]
    _changes: int
    _downs_waiting: Counter[tuple[str, str]]

    if TYPE_CHECKING:  # Alerting's own, named here for the type checker
        def _touch(self, keys: Iterable[CooldownKey], writing: int) -> None: ...
        def _staged(self, w: Write) -> None: ...
        def _store(self, s: Session, out: list[Notification], removed: Iterable[tuple[str, str]] = ()) -> None: ...

    def open_pairs(self, kind: str) -> set[tuple[str, str]]:
        """Return the canary x target pairs whose latest word of `kind`'s alert, at any sink, is that it fires (told,
        or to be told). Across sinks: a sink removed while the alert fired keeps that as its last row for good (none
        is sent to it), and read alone it said "still firing" after the sinks configured were told it ended. A firing
        message given up on fires there too, re-sent to Alertmanager (`Outbox.firing`) and sent a push receiver once
        more (`Outbox.resend_given_up_firing`): read as not down, a restart never sent the pair's recovery (the alert
        was re-sent as firing for good), and paged the pair anew at its next failed run besides the re-send."""
        rows = {alert_key(n): n for n in self.outbox.latest_states()}
        rows.update({alert_key(n): n for n in self.outbox.newest_states() if given_up_firing(n)})
        latest: dict[tuple[str, str], str] = {}
        for n in sorted(rows.values(), key=lambda n: (n.created_at, n.id)):  # the latest of each pair wins
            if n.kind in (kind, _ENDS.get(kind)):
                latest[(n.payload.get("canary", ""), n.payload.get("target", ""))] = n.kind
        return {pair for pair, k in latest.items() if k == kind}

    async def retire(self, pairs: Iterable[tuple[str, str]],
                     checks: Iterable[tuple[str, str, str]] | None = None) -> list[Notification]:
        """Resolve the firing alerts of canary x target pairs no longer configured, and with `checks` (canary,
        target, result name: those configured) the drift alerts on a signal `check:NAME` of a check a kept pair no
        longer has; return the notifications.

        Nothing else would ever end them (no more runs, no drift analysis; a removed check's signal is no longer
        computed), so Alertmanager would get them re-sent forever and push receivers would keep them open. Sinks no
        longer configured are left out. From now on a health message of a pair not in `pairs` is not written (see
        `_store`).
        """
        keep = set(pairs)
        self.monitored = keep
        now = self.now()
        out, unheld, resolved = await asyncio.to_thread(self._retire, keep, now,
                                                        None if checks is None else set(checks))
        with self._memory_lock:
            for key in unheld:  # never sent: ended unsent, no resolve follows it (nor is a later opening a repeat)
                self.policy.memory.pop(key, None)
            for key in resolved:
                last = self.policy.memory.get(key)
                self.policy.memory[key] = CooldownEntry(last.fired_at if last else now, open=False, resolved=True)
            self._touch([*unheld, *resolved], 0)
        if out or unheld:
            self.sender.wake()
        return out

    def _retire(self, keep: set[tuple[str, str]], now: datetime, checks: set[tuple[str, str, str]] | None = None
                ) -> tuple[list[Notification], list[Any], list[Any]]:
        """`retire` in the store: the open alerts are read and their ends written under the inhibitor's lock, in
        turn with `_write` (a canary.down a run's job writes meanwhile is read here and resolved, or written after
        and left out); return the notifications, and the cooldown keys of the held rows ended unsent and of the
        alerts resolved."""
        sinks = {s.name for s in self.cfg.sinks}
        out: list[Notification] = []
        held: set[tuple[str, str]] = set()
        unheld: list[Any] = []
        resolved: list[Any] = []
        with self.inhibitor.lock, Session(self.outbox.engine) as s:
            # and the firing messages given up on, which a sink is re-sent (Alertmanager: `Outbox.firing`; a push
            # receiver once more, `Outbox.resend_given_up_firing`): else re-sent for a pair no longer monitored
            candidates = {alert_key(n): n for n in self.outbox.open_alerts()}
            candidates.update({alert_key(n): n for n in self.outbox.newest_states() if given_up_firing(n)})
            for n in candidates.values():
                p = n.payload
                canary, target = p.get("canary", ""), p.get("target", "")
                if n.sink not in sinks or n.kind not in _ENDS:
                    continue
                check = check_of(n.signal)
                if (canary, target) in keep:
                    if check is None or checks is None or (canary, target, check) in checks:
                        continue
                    if n.status == HELD:  # never: behaviour drift (checks among it) is not held under an outage
                        continue
                key = alert_key(n)
                if n.status == HELD:
                    held.add((canary, target))
                    unheld.append(key)
                    continue
                event = AlertEvent(
                    kind=_ENDS[n.kind], canary=canary, target=target, signal=n.signal,
                    severity=p.get("severity") or "warning", tags=tuple(p.get("tags") or ()),
                    event_id=p.get("event_id") or "", resolved_at=now,
                    opened_at=datetime.fromisoformat(p["opened_at"]) if p.get("opened_at") else None,
                    summary=f"{canary}@{target}: {RETIRED_NOTE}" if (canary, target) not in keep else
                    f"{canary}@{target}: {n.signal} {CHECK_RETIRED_NOTE}",
                    evidence={"signal": n.signal, "reason": RETIRED,
                              "removed": REMOVED_PAIR if (canary, target) not in keep else REMOVED_CHECK})
                # The receiver was told "firing" (the row is there): tell it "resolved", cooldown or not.
                out += plan(event, self.cfg, now, {}, sinks=[n.sink], round_=now.isoformat()).notifications
                resolved.append(key)
            if out or held:
                self._store(s, out, held)
        return out, unheld, resolved

    def _re_sent(self, name: str) -> bool:
        """Whether a sink is re-sent the alerts firing there (`Sender.refresh_sink`)."""
        sink = self.sender.sinks.get(name) if self.sender is not None else None  # None: the CLI's, which sends none
        return sink is not None and refreshes(sink)

    async def ensure_firing(self, events: Iterable[AlertEvent],
                            current: Callable[[AlertEvent], bool] = lambda e: True) -> list[Notification]:
        """Fire open drift events (``drift.opened``) and pairs down (``canary.down``) at each routed sink that has
        no open alert for them; return the notifications written (those waiting for the store: none).

        A reload or restart that removed the canary resolved its alerts (`retire`) while the event stayed open in
        the store; when the canary is back, or a new sink is configured, the event is paged again. Events the store
        has ended (resolved or accepted since the caller read them open) are not. A sink a reload (or a restart)
        routes a down pair to is told it is down, as Alertmanager tells a receiver added while an alert fires: its
        `canary.recovered` then ends a page it has. `current` is asked as they are planned, on the event loop:
        a pair that recovered since the caller looked is not told down (its recovery comes after).
        """
        with self._memory_lock:
            read_at = self._changes
        opened = await asyncio.to_thread(self.outbox.open_alerts)
        newest = await asyncio.to_thread(self.outbox.newest_states)  # dead rows too
        # A sink re-sent what fires (Alertmanager) is not re-sent an alert whose resolve was given up on: it ended
        # there (a retired pair's, say), and is told anew if its pair is back with the event still open.
        given_up = {alert_key(n) for n in newest if n.kind in RESOLVING}  # of those open: a resolve given up on
        firing = {(n.sink, n.payload.get("canary"), n.payload.get("target"), n.signal)
                  for n in opened if n.kind in _ENDS and not (alert_key(n) in given_up and self._re_sent(n.sink))}
        # A firing message given up on (the receiver down past retry.give_up_after) was decided: a reload does not
        # page it again (it did, at each one). Alertmanager gets it at its re-sends (`Outbox.firing`); a push
        # receiver has the drift its outage held, the drop counted (llm_monitor_notifications_dropped_total).
        firing |= {(n.sink, n.payload.get("canary"), n.payload.get("target"), n.signal)
                   for n in newest if given_up_firing(n)}
        downs = {(n.payload.get("canary"), n.payload.get("target")): n.payload
                 for n in opened if n.kind == "canary.down"}
        events = [_as_paged(e, downs.get((e.canary, e.target))) for e in events]
        wanted = [(e, [s for s in route(e, self.cfg) if (s, e.canary, e.target, e.signal) not in firing])
                  for e in events]
        # Read after the alerts: an event the caller read open may have ended since (a take-over as the old
        # leader's end of it was written), its end then among the alerts read, and its opening sent again paged an
        # ended event no resolve follows. Ended later, its opening was among them, and nothing is sent.
        ended = await asyncio.to_thread(DriftRepository(self.outbox.engine).ended,
                                        [e.event_id for e, s in wanted if s and e.event_id])
        now = self.now()
        out: list[Notification] = []
        w = Write(out=out)
        with self._memory_lock:
            # events of writes not planned yet (waiting behind another for the store): no key of theirs is marked,
            # and they go to every sink routed to once planned
            queued = {(e.kind, e.group_key, e.signal) for e in self.pending.unplanned()}
            for event, missing in wanted:
                # a key being written has a message on its way the outbox read did not see (waiting for the store),
                # and one written since the read began has one the read may have missed (as `resync` reads)
                missing = [s for s in missing if (s, event.group_key, event.signal) not in self._writing
                           and self._changed.get((s, event.group_key, event.signal), 0) <= read_at]
                if (event.kind, event.group_key, event.signal) in queued:
                    continue
                if missing and event.event_id not in ended and current(event):
                    # a new message, not a retry: the receiver may have been told "resolved" since the first one
                    p = plan(event, self.cfg, now, self.policy.memory, sinks=missing, round_=now.isoformat())
                    for key in p.remember:
                        w.undo.setdefault(key, self.policy.memory.get(key))
                    self.policy.memory.update(p.remember)
                    out += p.notifications
                    report(p.suppressed, self.metrics)
            self._staged(w)
            w.downs = {(n.payload.get("canary", ""), n.payload.get("target", ""))
                       for n in out if n.kind == "canary.down"}
            self._downs_waiting.update(w.downs)
        if not out:
            return []
        return out if await self.pending.put(w) else []


_ENDS = {"drift.opened": "drift.resolved", "canary.down": "canary.recovered"}  # what resolves a firing kind


def _as_paged(event: AlertEvent, paged: Mapping[str, Any] | None) -> AlertEvent:
    """A canary.down told to a sink newly routed to it, as another sink was told it: since when, and why."""
    if event.kind != "canary.down" or not paged:
        return event
    since = paged.get("opened_at")
    return replace(event, opened_at=datetime.fromisoformat(since) if since else event.opened_at,
                   summary=paged.get("summary") or event.summary, evidence=paged.get("evidence") or event.evidence)

"""Drift events another process ended or holds open: the engine follows the store.

After a take-over, the old leader's last writes can land once this replica has loaded the open events: an end it
wrote leaves this engine holding an event the store has ended (`close_ended`), and an event it opened keeps the
store from taking this engine's own opening for the same canary x target x signal (`_adopt` goes on with the stored
one). The CLI and other replicas end events and store baselines too; `refresh_baselines` installs those.

`StoreFollowing` is a part of monitor.analysis.Analysis, which holds the state it names.
"""

from __future__ import annotations

import logging

from monitor.alerts import Alerting
from monitor.drift import DriftEngine, DriftEvent
from monitor.store.drift_repo import DriftRepository
from monitor.stored_baselines import StoredBaselines
from monitor.telemetry.metrics import Metrics

log = logging.getLogger("monitor.analysis")  # the analysis's lines, under the one name they have always had


class StoreFollowing:
    """The part of `Analysis` that lets go of, adopts or refreshes what the store holds from other processes."""

    engine: DriftEngine
    repo: DriftRepository
    metrics: Metrics
    alerting: Alerting | None
    baselines: StoredBaselines
    _ended_seen: set[str]  # open events here the store had ended at the latest `close_ended`

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

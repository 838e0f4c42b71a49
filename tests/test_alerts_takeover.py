"""A take-over as an event ends: the new leader read the event open (its engine restored it) before the old leader's
end of it was written; firing the open events with no alert (`Alerting.ensure_firing`) must not open it again at the
sinks (over SQLite and PostgreSQL)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from monitor.alerts import AlertsConfig, build_alerting
from monitor.alerts.service import Alerting
from monitor.domain import utcnow
from monitor.drift import EventUpdate
from monitor.drift.events import BEHAVIOUR
from monitor.drift_alerts import alert_event
from monitor.store import Store
from monitor.store.drift_repo import DriftRepository
from tests.test_alerts_model import model_event


def replica(store: Store) -> Alerting:
    cfg = AlertsConfig.model_validate({"cooldown": "0s", "group_wait": "0s", "sinks": [
        {"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/hook"}]})
    return build_alerting(cfg, store, environ={})


def saved(store: Store, al: Alerting, update: EventUpdate) -> None:
    """Write an event update with its notifications in one transaction, as the drift analysis does."""
    def hook(session: Any, written: set[str]) -> None:
        al.enqueue(session, [alert_event(update)])

    DriftRepository(store.engine).save_events([update.event.to_json()], hook)


async def test_an_event_the_old_leader_ended_after_the_new_one_read_it_open_is_not_opened_again(
        store: Store) -> None:
    """The new leader's engine restored the event open just before the old leader's end of it was committed: the
    sinks were told it opened and ended, and firing it again (no alert open for it) paged an event that has ended,
    which no resolve would ever follow (the store refuses the new leader's end of an event already final)."""
    old, new = replica(store), replica(store)
    event = model_event(canary="c1", signal="refused", kind=BEHAVIOUR, test="bernoulli_cusum",
                        baseline_value=0.0, current_value=0.4)
    saved(store, old, EventUpdate("opened", event))  # told the sinks
    read_open = alert_event(EventUpdate("opened", event))  # the new leader's engine restores it open
    ended = replace(event, state="resolved", resolved_at=(utcnow() + timedelta(seconds=1)).isoformat())
    saved(store, old, EventUpdate("resolved", ended))  # the old leader's end, committed after that read
    assert await new.ensure_firing([read_open]) == []
    kinds = [n.kind for n in sorted(new.outbox.query(limit=100), key=lambda n: n.created_at)]
    assert kinds == ["drift.opened", "drift.resolved"]  # not opened again after its end (an alert never resolved)

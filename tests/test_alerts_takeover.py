"""A take-over as an event ends: the new leader read the event open (its engine restored it) before the old leader's
end of it was written; firing the open events with no alert (`Alerting.ensure_firing`) must not open it again at the
sinks (over SQLite and PostgreSQL). And the answers a recovered hold waits for, counted in the store so that a
restart or take-over sends it at the same answer as the replica running on."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlmodel import Session, delete

from monitor.alerts import AlertsConfig, build_alerting
from monitor.alerts.service import Alerting
from monitor.domain import utcnow
from monitor.drift import EventUpdate
from monitor.drift.events import BEHAVIOUR
from monitor.drift_alerts import alert_event
from monitor.store import Store
from monitor.store.drift_repo import DriftRepository
from monitor.store.outbox_table import NotificationRow
from monitor.store.tables import ObservationRow
from tests.test_alerts_model import model_event
from tests.test_store_contract import obs


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


async def test_a_recovered_hold_is_released_at_the_answer_that_makes_as_many_analysed_as_it_needs(
        store: Store) -> None:
    """A run's samples are analysed in the order they finish, not the order they started. The answers since the
    recovery were counted by start time up to the call analysed: one that started later but finished first came
    before calls started earlier and not analysed yet, so the count jumped past the answers the daemon had seen;
    the look a replica makes at every answer (after a restart) sent the opening then, with 2 of the 4 answers its
    event needs analysed, and the running one, letting answers pass between looks, at another answer."""
    from tests.test_alerts_inhibit import NOW, alerting, down, drift, statuses, write

    def analysed(o: Any) -> None:  # as the analysis does before its look: the signals stored
        store.save_signals(o.id, {})

    for restarted in (False, True):
        al = alerting(store)
        await al.publish([down()])
        write(al, drift())
        await al.publish([down("canary.recovered")])
        calls = []
        for i in range(4):  # four samples of one run, started in this order
            o = obs(i, canary="c1", target="t")
            o.started_at = NOW + timedelta(minutes=1 + i)
            store.save_observation(o)
            calls.append(o)
        sent = []
        for o in (calls[0], calls[3], calls[1], calls[2]):  # finished (and analysed) in this order
            analysed(o)
            if restarted:
                al = alerting(store)  # no memory of the answers between looks: a look at each
                await asyncio.to_thread(al.inhibitor.seed, al.outbox.engine, al.now())
            if al.inhibitor.saw("c1", "t", answered=True):
                sent.append(al.release_answered("c1", "t", {"error": 4}))
            else:
                sent.append(0)
        assert sent == [0, 0, 0, 2], (restarted, sent)  # the fourth answer analysed sends it, at both sinks
        assert set(statuses(al).values()) == {"pending"}
        with Session(store.engine) as s:  # the next round starts from an empty store
            for table in (NotificationRow, ObservationRow):
                s.exec(delete(table))  # type: ignore[call-overload]
            s.commit()

"""An error_type event opening after its pair recovered, on a failure type of the outage's canary.down and first
seen during the outage, is the outage's mix of failures paged again: held (OUTAGE_MIX) until its event ends, then
ended unsent with it (`held_rows.outage_mix`, monitor.alerts.inhibit)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from monitor.alerts import AlertEvent
from monitor.alerts.events import DEAD, HELD, OUTAGE_MIX, PENDING
from monitor.alerts.service import Alerting
from monitor.store import Store
from tests.test_alerts_inhibit import NOW, alerting, answer, statuses, write


def down(kind: str = "canary.down", types: tuple[str, ...] = ("server_error",)) -> AlertEvent:
    """The health watch's canary.down (naming the failures of its last run) or canary.recovered of c1@t."""
    evidence = {"signal": "health", "error_types": list(types)} if kind == "canary.down" else {"signal": "health"}
    return AlertEvent(kind=kind, canary="c1", target="t", signal="health", severity="critical", opened_at=NOW,
                      evidence=evidence)


def mix(kind: str = "drift.opened", value: str = "server_error", first: timedelta = -timedelta(minutes=5)
        ) -> AlertEvent:
    """c1@t's error_type event: the window's most frequent failure `value`, first seen at NOW + `first`."""
    return AlertEvent(kind=kind, canary="c1", target="t", signal="error_type", event_id="ev-c1-error_type",
                      opened_at=NOW + timedelta(hours=1),
                      evidence={"signal": "error_type", "baseline_value": "rate_limited", "current_value": value,
                                "first_obs_at": (NOW + first).isoformat()})


async def outage(al: Alerting) -> None:
    await al.publish([down()])
    al.inhibitor.saw("c1", "t", answered=False)
    await al.publish([down("canary.recovered")])
    al.inhibitor.saw("c1", "t", answered=True)


async def test_the_outage_s_mix_opening_after_the_recovery_is_held_until_its_event_ends_unsent(store: Store) -> None:
    al = alerting(store)
    await outage(al)
    write(al, mix())
    assert set(statuses(al, "error_type").values()) == {HELD}
    why = {n.last_error for n in al.outbox.query(limit=100) if n.signal == "error_type"}
    assert why == {"held: c1@t recovered; its error_type event, first seen during the outage, shows server_error, a "
                   f"failure of its outage {OUTAGE_MIX}: ended unsent with the event; one page per outage"}
    for i in range(5):  # the pair answers: an error_type event sees no answers, it waits for its end
        answer(store, NOW + timedelta(minutes=10 + i))
        if al.inhibitor.saw("c1", "t", answered=True):
            assert al.release_answered("c1", "t", {"error_type": None}) == 0
    assert set(statuses(al, "error_type").values()) == {HELD}
    write(al, mix("drift.resolved"))
    rows = [n for n in al.outbox.query(limit=100) if n.signal == "error_type"]
    assert {n.status for n in rows} == {DEAD} and len(rows) == 4
    assert all(OUTAGE_MIX in str(n.last_error) and str(n.last_error).startswith("not sent:") for n in rows)


async def test_an_outage_mix_whose_event_ended_elsewhere_ends_unsent_at_the_next_answer(store: Store) -> None:
    al = alerting(store)
    await outage(al)
    write(al, mix())
    assert al.inhibitor.saw("c1", "t", answered=True)
    assert al.release_answered("c1", "t", {}) == 0  # no error_type event open any more
    rows = [n for n in al.outbox.query(limit=100) if n.signal == "error_type"]
    assert {n.status for n in rows} == {DEAD}
    assert all("outage mix of failures" in str(n.last_error) for n in rows)


@pytest.mark.parametrize("event", [mix(value="rate_limited"), mix(first=timedelta(hours=1))],
                         ids=["a type the canary.down did not name", "first seen after the recovery"])
async def test_a_change_that_is_not_the_outage_s_mix_is_sent(store: Store, event: AlertEvent) -> None:
    al = alerting(store)
    await outage(al)
    write(al, event)
    assert set(statuses(al, "error_type").values()) == {PENDING}


async def test_without_a_recovery_or_an_outage_the_rule_holds_nothing(store: Store) -> None:
    """No canary.down ever written: an error_type change is news (sent)."""
    al = alerting(store)
    write(al, mix())
    assert set(statuses(al, "error_type").values()) == {PENDING}


async def test_a_failure_type_named_only_by_the_canary_recovered_is_the_outage_s_mix(store: Store) -> None:
    """A type that began after the page: the canary.down never named it, the canary.recovered (the whole
    outage's failures) does; it was sent as news."""
    al = alerting(store)
    await al.publish([down()])
    al.inhibitor.saw("c1", "t", answered=False)
    recovered = replace(down("canary.recovered"), evidence={"signal": "health",
                                                           "error_types": ["rate_limited", "server_error"]})
    await al.publish([recovered])
    al.inhibitor.saw("c1", "t", answered=True)
    write(al, mix(value="rate_limited"))
    assert set(statuses(al, "error_type").values()) == {HELD}

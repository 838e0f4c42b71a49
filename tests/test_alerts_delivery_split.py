"""A grouped message whose failed attempt is split: some of its rows given up on (their `retry.give_up_after` ended),
others retried (rows re-sent on request whose own window still runs). What the rows given up on record as the message
they were given up on in (`sent_as`), and what `alerts resend` then sends of them, under which `webhook-id`."""

from __future__ import annotations

from datetime import timedelta

import pytest

from monitor.alerts import AlertEvent
from monitor.alerts.events import DEAD, FAILED
from monitor.alerts.policy import group_message_id
from monitor.store import Store
from tests.support.delivery import Clock, build, config
from tests.support.receiver import Receiver


def opened(signal: str) -> AlertEvent:
    return AlertEvent(kind="drift.opened", canary="c1", target="t", signal=signal, event_id=f"e-{signal}",
                      evidence={"baseline_value": 1.0, "current_value": 2.0})


async def _split(al, clock: Clock):  # type: ignore[no-untyped-def]
    """Two rows failing since one attempt, a third re-sent on request joining their retry 50 minutes later; the
    retry past the two rows' window splits the message: return (the two given up on, the one retried)."""
    older = await al.publish([opened("refused"), opened("similarity")])
    assert (await al.sender.flush()).retried == 1  # one message, failed
    clock.advance(50 * 60)
    [asked] = await al.publish([opened("output_chars")])
    al.outbox.mark_dead([asked.id], "gave up after 9 attempts: HTTP 503")  # given up on in an earlier outage
    assert al.outbox.resend_dead(clock(), ids=[asked.message_id])[0].skipped is None
    await al.sender.flush()  # it joins their retry
    while {al.outbox.get(o.id).status for o in older} != {DEAD}:
        clock.t = max(clock(), al.outbox.get(older[0].id).next_attempt_at)
        await al.sender.flush()
    kept = al.outbox.get(asked.id)
    assert kept is not None and kept.status == FAILED  # its own window (from its first attempt) runs
    return [al.outbox.get(o.id) for o in older], kept


async def test_rows_given_up_on_in_a_split_message_are_re_sent_under_the_id_they_record(
        sqlite_store: Store, clock: Clock, rx: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    # Found by review: the rows given up on when a grouped message's retry was split recorded the whole message's
    # webhook-id (`sent_as`, rows retried included). `alerts resend` of them sends them without the retried row, so
    # under another id (a webhook-id stands for its rows): `alerts pending --json` named as the id they go again under
    # one the receiver never gets for them. They record the id the rows given up on make together.
    al = build(sqlite_store, config(rx.url), clock)
    rx.fail(503)
    dead, kept = await _split(al, clock)
    whole = group_message_id([*(r.id for r in dead), kept.id])
    assert {r.message_id for r in rx.requests[1:]} == {whole}  # the message the three rows made, as it failed
    [sent_as] = {r.sent_as for r in dead}  # what `alerts pending --json` lists: `alerts resend` sends them under it
    assert sent_as is not None
    [gave_up] = [r for r in caplog.records if r.getMessage() == "gave up delivering a notification"]
    assert (gave_up.message_id, gave_up.given_up_as, gave_up.retried_on) == (whole, sent_as, 1)  # type: ignore[attr-defined]
    while (row := al.outbox.get(kept.id)) is not None and row.status != DEAD:  # the retried row's window ends too
        clock.t = row.next_attempt_at
        await al.sender.flush()
    assert row is not None and row.sent_as is None  # given up on alone
    rx.heal()
    asked = al.outbox.resend_dead(clock(), ids=[sent_as])
    assert sorted(a.notification.signal for a in asked if a.skipped is None) == ["refused", "similarity"]
    sent = len(rx.requests)
    await al.sender.flush()  # (the retried row, given up on, is then re-sent by the daemon itself: it still fires)
    again = rx.requests[sent]
    assert again.status == 200 and sorted(again.json["data"]["signals"]) == ["refused", "similarity"]
    # under the id those two rows make (not the failed message's, which carried the retried row too: a receiver
    # that had that one must not drop this), and it is the one they recorded
    assert again.message_id == group_message_id([r.id for r in dead]) == sent_as != whole
    await al.stop()


async def test_rows_given_up_on_in_a_split_message_re_sent_while_the_rest_waits_go_again_as_that_message(
        sqlite_store: Store, clock: Clock, rx: Receiver) -> None:
    # The true repeat: re-sent while the retried row still waits, they join its retry, and the receiver gets the
    # message they made together again, under its id (a receiver that had it after all drops it).
    al = build(sqlite_store, config(rx.url), clock)
    rx.fail(503)
    dead, kept = await _split(al, clock)
    whole = rx.requests[-1]
    assert al.outbox.resend_dead(clock(), ids=[dead[0].message_id])[0].skipped is None  # brings the other with it
    rx.heal()
    await al.sender.flush()  # they join the retried row's retry
    assert rx.requests[-1] is whole
    clock.t = al.outbox.get(kept.id).next_attempt_at
    assert (await al.sender.flush()).delivered == 1
    again = rx.requests[-1]
    assert again.status == 200 and again.message_id == whole.message_id
    assert sorted(again.json["data"]["signals"]) == sorted(whole.json["data"]["signals"])
    assert {r.status for r in al.outbox.query()} == {"delivered"}
    await al.stop()


async def test_rows_merged_into_a_retry_a_re_sent_row_leads_are_given_up_on_when_their_windows_end(
        sqlite_store: Store, clock: Clock, rx: Receiver) -> None:
    # Found by review: a row re-sent on request that led a retry (the older row of the message) kept the rows merged
    # into it retried past their own retry.give_up_after, for as long as its own window (from its first attempt since
    # the request) ran: an hour more, each attempt a message to a receiver that had been failing past the window.
    # Each merged row is given up on when its window ends, as when no re-sent row leads; the re-sent row is retried on.
    al = build(sqlite_store, config(rx.url), clock)
    [asked] = await al.publish([opened("refused")])
    al.outbox.mark_dead([asked.id], "gave up after 9 attempts: HTTP 503")  # given up on in an earlier outage
    clock.advance(60)
    rx.fail(503)
    [newer] = await al.publish([opened("similarity")])
    assert (await al.sender.flush()).retried == 1
    clock.advance(50 * 60)
    assert al.outbox.resend_dead(clock(), ids=[asked.message_id])[0].skipped is None
    await al.sender.flush()  # it joins the newer row's retry, and leads it (the older row)
    window_end = newer.created_at + timedelta(seconds=al.cfg.retry.give_up_after)
    while (row := al.outbox.get(newer.id)) is not None and row.status != DEAD and clock() < window_end:
        clock.t = row.next_attempt_at
        await al.sender.flush()
    assert rx.requests[-1].json["data"]["signals"] == ["refused", "similarity"]  # the re-sent row led
    assert row is not None and row.status == DEAD, row  # given up on when its window ended
    assert row.last_error is not None and row.last_error.startswith("gave up after"), row.last_error
    mine = al.outbox.get(asked.id)
    assert mine is not None and mine.status == FAILED  # its own window runs: retried on, alone
    clock.t = mine.next_attempt_at
    assert (await al.sender.flush()).retried == 1
    assert rx.requests[-1].json["data"]["signals"] == ["refused"]
    assert rx.requests[-1].message_id == asked.message_id
    await al.stop()

"""The sender against a real receiver on loopback: signing, retries, Retry-After, outages, 410, giving up, the
background task, the caller's transaction, secrets. Grouped messages are in `test_alerts_delivery_grouping.py`,
sink by sink behaviour (a slow sink, drops, outages logged once, a stopping sender) in
`test_alerts_delivery_sinks.py`."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import text

from monitor.alerts import AlertEvent, AlertsConfig
from monitor.alerts.events import DEAD, DELIVERED, FAILED, PENDING
from monitor.store import Store
from tests.support.delivery import SECRET, Clock, build, config, event
from tests.support.receiver import Receiver


async def test_signed_delivery_round_trip(sqlite_store: Store, clock: Clock, rx: Receiver) -> None:
    al = build(sqlite_store, config(rx.url), clock)
    [n] = await al.publish([event()])
    res = await al.sender.flush()
    assert res.delivered == 1
    [got] = rx.delivered
    assert got.verify_error == "" and got.message_id == n.message_id and got.path == "/hook"
    assert got.json["type"] == "drift.opened" and got.json["data"]["evidence"]["current_value"] == 0.5
    stored = al.outbox.get(n.id)
    assert stored and stored.status == DELIVERED
    await al.stop()


async def test_a_wrong_secret_is_rejected_and_retried(sqlite_store: Store, clock: Clock, rx: Receiver) -> None:
    al = build(sqlite_store, config(rx.url), clock, env={"HOOK_SECRET": "whsec_" + "QUJD" * 8})
    await al.publish([event()])
    res = await al.sender.flush()
    assert res.retried == 1 and rx.requests[0].status == 401
    assert rx.requests[0].verify_error == "no matching signature"
    await al.stop()


async def test_retries_with_exponential_backoff_until_the_receiver_recovers(
        sqlite_store: Store, clock: Clock, rx: Receiver) -> None:
    al = build(sqlite_store, config(rx.url), clock)
    [n] = await al.publish([event()])
    rx.fail(503, times=3)
    delays = []
    for _ in range(3):
        start = clock()
        assert (await al.sender.flush()).retried == 1
        row = al.outbox.get(n.id)
        assert row and row.status == FAILED and row.last_error.startswith("HTTP 503")
        delays.append((row.next_attempt_at - start).total_seconds())
        assert (await al.sender.flush()).retried == 0  # not due yet
        clock.t = row.next_attempt_at
    assert delays == [10, 20, 40]  # full jitter with rand()=1.0 hits the ceiling: initial * 2**attempt
    assert (await al.sender.flush()).delivered == 1
    assert [r.status for r in rx.requests] == [503, 503, 503, 200]
    assert {r.message_id for r in rx.requests} == {n.message_id}
    await al.stop()


async def test_retry_after_is_honoured_on_429_and_503(sqlite_store: Store, clock: Clock, rx: Receiver) -> None:
    al = build(sqlite_store, config(rx.url), clock)
    [n] = await al.publish([event()])
    rx.fail(429, times=1, retry_after="120")
    await al.sender.flush()
    row = al.outbox.get(n.id)
    assert row and (row.next_attempt_at - clock()).total_seconds() == 120
    clock.advance(120)
    http_date = (clock() + timedelta(seconds=300)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    rx.fail(503, times=1, retry_after=http_date)
    await al.sender.flush()
    row = al.outbox.get(n.id)
    assert row and (row.next_attempt_at - clock()).total_seconds() == 300
    await al.stop()


async def test_a_retry_after_of_zero_does_not_make_the_sink_resend_at_once(
        sqlite_store: Store, clock: Clock, rx: Receiver) -> None:
    # Found by QA: a receiver answering 429 with "Retry-After: 0" (or a date gone by) got the notification again at
    # once, up to 100 times in one delivery round: 900 requests in 15 s for two notifications. The Retry-After is
    # a floor; the backoff still applies.
    al = build(sqlite_store, config(rx.url), clock)
    [n] = await al.publish([event()])
    rx.fail(429, retry_after="0")
    assert (await al.sender.flush()).retried == 1
    assert len(rx.requests) == 1
    row = al.outbox.get(n.id)
    assert row and (row.next_attempt_at - clock()).total_seconds() == 10  # initial 10s, rand()=1.0
    clock.advance(10)
    past = (clock() - timedelta(seconds=60)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    rx.heal()
    rx.fail(503, times=1, retry_after=past)
    assert (await al.sender.flush()).retried == 1
    assert len(rx.requests) == 2
    row = al.outbox.get(n.id)
    assert row and (row.next_attempt_at - clock()).total_seconds() == 20
    await al.stop()


@pytest.mark.parametrize("value", ["²", "１２０", "٣٠٠"])
async def test_a_retry_after_not_in_ascii_digits_is_ignored_for_the_normal_backoff(
        sqlite_store: Store, clock: Clock, rx: Receiver, value: str) -> None:
    # Found by a chaos test: str.isdigit() takes a superscript two, which float() then refused: a ValueError out of
    # the delivery round. Full-width and Arabic-Indic digits were read as a number; RFC 9110 says DIGIT (0-9).
    al = build(sqlite_store, config(rx.url), clock)
    [n] = await al.publish([event()])
    rx.fail(429, times=1, retry_after=value)
    assert (await al.sender.flush()).retried == 1
    assert rx.requests[0].status == 429
    row = al.outbox.get(n.id)
    assert row and row.status == FAILED and (row.next_attempt_at - clock()).total_seconds() == 10  # initial, rand()=1
    clock.advance(10)
    assert (await al.sender.flush()).delivered == 1
    await al.stop()


async def test_receiver_down_then_back_loses_nothing(sqlite_store: Store, clock: Clock, rx: Receiver) -> None:
    registry = CollectorRegistry()
    al = build(sqlite_store, config(rx.url), clock, registry=registry)
    rx.stop()
    sent = await al.publish([event(i) for i in range(6)])
    for _ in range(3):  # down for three rounds of retries
        res = await al.sender.flush()
        assert res.retried == 6
        clock.advance(600)
    assert registry.get_sample_value("llm_monitor_notifications_pending", {"sink": "hook"}) == 6
    assert registry.get_sample_value("llm_monitor_notification_failures_total", {"sink": "hook"}) == 18
    rx.start()
    rx.fail(500, times=2)  # the first two are processed but the answer is lost: they will come again
    await al.sender.flush()
    clock.advance(600)
    await al.sender.flush()
    assert {r.message_id for r in rx.delivered} == {n.message_id for n in sent}
    ids = [r.message_id for r in rx.requests]
    assert len(ids) == 8 and len(set(ids)) == 6  # duplicates carry the same message id
    assert registry.get_sample_value("llm_monitor_notifications_pending", {"sink": "hook"}) == 0
    assert registry.get_sample_value("llm_monitor_notifications_sent_total", {"sink": "hook"}) == 6
    await al.stop()


async def test_410_disables_the_endpoint(sqlite_store: Store, clock: Clock, rx: Receiver,
                                         caplog: pytest.LogCaptureFixture) -> None:
    al = build(sqlite_store, config(rx.url), clock)
    [first] = await al.publish([event(1)])
    rx.fail(410, times=1)
    assert (await al.sender.flush()).dead == 1
    assert "410 Gone" in caplog.text
    [second] = await al.publish([event(2)])
    assert (await al.sender.flush()).dead == 1
    assert len(rx.requests) == 1  # nothing more was sent to the gone endpoint
    s1, s2 = al.outbox.get(first.id), al.outbox.get(second.id)
    assert s1 and s1.status == DEAD and s2 and s2.status == DEAD and "410" in (s2.last_error or "")
    await al.stop()


async def test_a_row_that_waited_for_the_reload_counts_its_give_up_window_from_its_first_attempt(
        store: Store, clock: Clock, rx: Receiver) -> None:
    # Found by review: a row re-sent on request to a sink the running daemon had disabled (a 410) waited for the
    # reload, but its retry.give_up_after (1h here) still counted from the request (asked_at): reloaded more than that
    # later, its first failed attempt gave it up at once, never retried. The window counts from its first attempt
    # (after the reload, or at a restart), asked_at still the time of the request; a restart keeps that window.
    al = build(store, config(rx.url), clock)
    await al.publish([event(1)])
    rx.fail(410, times=1)
    await al.sender.flush()  # the sink is disabled until the reload
    [second] = await al.publish([event(2)])
    assert (await al.sender.flush()).dead == 1
    asked_at = clock()
    [asked] = al.outbox.resend_dead(asked_at, ids=[second.message_id])
    assert asked.skipped is None
    for _ in range(3):  # the reload comes two hours later: it waits meanwhile
        assert (await al.sender.flush()).dead == 0
        clock.advance(3600)
    rx.fail(503)  # the receiver, once reloaded, is down for a while
    al.reload(al.cfg, environ={"HOOK_SECRET": SECRET})
    first = clock()
    res = await al.sender.flush()
    assert (res.retried, res.dead) == (1, 0)  # retried with backoff, as a new message is: not given up on at once
    row = al.outbox.get(second.id)
    assert row is not None and row.status == FAILED and row.attempts == 1 and row.last_error is not None
    assert row.asked_at == asked_at  # still the time of the request
    assert f"first tried at {first.isoformat()}" in row.last_error and "HTTP 503" in row.last_error, row.last_error
    await al.stop()
    al = build(store, config(rx.url), clock)  # a restart: the window is the store's, not the daemon's memory
    while row.next_attempt_at < first + timedelta(minutes=45):  # retried with backoff (10s doubling to 10m)
        clock.t = row.next_attempt_at
        assert (await al.sender.flush()).dead == 0, clock() - first
        row = al.outbox.get(second.id)
        assert row is not None and row.status == FAILED and f"first tried at {first.isoformat()}" in row.last_error
    while row.status != DEAD and clock() < first + timedelta(hours=2):
        clock.t = max(clock(), row.next_attempt_at)
        await al.sender.flush()
        row = al.outbox.get(second.id)  # type: ignore[assignment]
        assert row is not None
    # given up on past the hour from its first attempt (its next retry, up to retry.max later, beyond it)
    assert row.status == DEAD and row.last_error.startswith("gave up after"), row.last_error  # type: ignore[union-attr]
    assert first + timedelta(minutes=50) <= clock() <= first + timedelta(hours=1), clock() - first
    await al.stop()


async def test_a_re_sent_row_merged_into_another_rows_message_keeps_its_own_first_attempt(
        store: Store, clock: Clock, rx: Receiver) -> None:
    # Found by review: a row re-sent on request that waited for the reload went out merged into the message of a
    # newer row of its group (another drift signal of its canary x target) that led it. The failed attempt's error
    # was written to both rows with the leader's note only: the re-sent row lost its first-attempt time and, leading
    # the retry (the older row), counted its retry.give_up_after from the request, two hours before: given up on at
    # its second attempt, never retried, the defect the first-attempt window was there to fix.
    al = build(store, config(rx.url), clock)
    await al.publish([event(1)])
    rx.fail(410, times=1)
    await al.sender.flush()  # the sink is disabled until the reload
    [asked] = await al.publish([event(2)])
    assert (await al.sender.flush()).dead == 1
    assert al.outbox.resend_dead(clock(), ids=[asked.message_id])[0].skipped is None
    for _ in range(2):  # the reload comes two hours later: it waits meanwhile
        clock.advance(3600)
        assert (await al.sender.flush()).dead == 0
    clock.advance(5)  # reloaded before the re-sent row's next look
    rx.fail(503)
    al.reload(al.cfg, environ={"HOOK_SECRET": SECRET})
    [new] = await al.publish([AlertEvent(kind="drift.opened", canary="c2", target="t", signal="output_chars",
                                         event_id="e2b", evidence={"baseline_value": 1.0, "current_value": 2.0})])
    first = clock()
    res = await al.sender.flush()  # the new row leads, the re-sent one is merged into its message
    assert (res.retried, res.dead) == (1, 0)
    row = al.outbox.get(asked.id)
    assert row is not None and row.status == FAILED and row.attempts == 1, row
    assert f"first tried at {first.isoformat()}" in (row.last_error or ""), row.last_error
    clock.t = row.next_attempt_at
    res = await al.sender.flush()  # the re-sent row, the older, leads the retry
    assert (res.retried, res.dead) == (1, 0), al.outbox.get(asked.id)
    await al.stop()


async def test_gives_up_after_the_configured_age(sqlite_store: Store, clock: Clock, rx: Receiver) -> None:
    al = build(sqlite_store, config(rx.url), clock)
    [n] = await al.publish([event()])
    rx.fail(500)
    for _ in range(20):
        await al.sender.flush()
        clock.advance(600)
    row = al.outbox.get(n.id)
    assert row and row.status == DEAD and row.last_error.startswith("gave up after")
    await al.stop()


async def test_background_task_delivers_and_stops(sqlite_store: Store, clock: Clock, rx: Receiver) -> None:
    al = build(sqlite_store, config(rx.url), clock)
    await al.start()
    await al.publish([event(i) for i in range(3)])
    for _ in range(200):
        if len(rx.delivered) == 3:
            break
        await asyncio.sleep(0.02)
    assert len(rx.delivered) == 3
    await al.stop()


async def test_enqueue_inside_the_callers_transaction(sqlite_store: Store, clock: Clock, rx: Receiver) -> None:
    from sqlmodel import Session

    al = build(sqlite_store, config(rx.url), clock)
    with Session(sqlite_store.engine) as s:
        al.enqueue(s, [event(1)])
        s.rollback()  # the drift event's transaction failed: no notification either
    with Session(sqlite_store.engine) as s:
        al.enqueue(s, [event(2)])
        s.commit()
    assert (await al.sender.flush()).delivered == 1
    assert rx.delivered[0].json["data"]["canary"] == "c2"
    await al.stop()


async def test_secrets_never_reach_the_store_logs_or_metrics(
        sqlite_store: Store, clock: Clock, rx: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    slack_path = "/services/T0000/B0000/XXsekretXXtokenXX"
    plain = Receiver().start()  # Slack and PagerDuty requests are not Standard-Webhooks signed
    cfg = AlertsConfig.model_validate({"group_wait": "0s", "sinks": [
        {"name": "hook", "type": "webhook", "url": rx.url + "/hook", "secret_env": "HOOK_SECRET"},
        {"name": "chat", "type": "slack", "url_env": "SLACK_URL"},
        {"name": "pd", "type": "pagerduty", "routing_key_env": "PD_KEY", "url": plain.url + "/pd"}]})
    env = {"HOOK_SECRET": SECRET, "SLACK_URL": plain.url + slack_path, "PD_KEY": "PDKEYsekret0123"}
    registry = CollectorRegistry()
    al = build(sqlite_store, cfg, clock, env=env, registry=registry)
    await al.publish([event(1)])
    rx.fail(500, times=1)
    plain.fail(500, times=2)
    await al.sender.flush()
    plain.stop()  # connection errors too
    clock.advance(3600)
    await al.sender.flush()
    plain.start()
    clock.advance(3600)
    await al.sender.flush()
    plain.stop()
    assert {r.path for r in rx.delivered + plain.delivered} == {"/hook", slack_path, "/pd"}
    [pd] = [r for r in plain.delivered if r.path == "/pd"]
    assert pd.json["routing_key"] == "PDKEYsekret0123"  # it is used on the wire, and only there
    with sqlite_store.engine.connect() as conn:
        dump = json.dumps([list(r) for r in conn.execute(text("SELECT * FROM notifications"))], default=str)
    exposed = dump + caplog.text + generate_latest(registry).decode()
    for secret in (SECRET, SECRET.removeprefix("whsec_"), "XXsekretXXtokenXX", "PDKEYsekret0123"):
        assert secret not in exposed
    await al.stop()


async def test_a_row_re_sent_on_request_while_the_daemon_has_its_sink_disabled_waits_for_the_reload(
        store: Store, clock: Clock, rx: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    # Found by review: the endpoint answered 410, so the running daemon disabled the sink until a reload; the operator
    # fixed the URL, sent the rows given up on again (`alerts resend`), and the daemon, not yet reloaded, gave them up
    # at once, the command having said they wait for delivery. An operator's re-send now waits, pending and saying
    # why in `alerts pending`, and goes out after the reload (a message the daemon writes meanwhile is still dropped).
    al = build(store, config(rx.url), clock)
    await al.publish([event(1)])
    rx.fail(410, times=1)
    await al.sender.flush()  # the sink is disabled until the reload
    [second] = await al.publish([event(2)])
    assert (await al.sender.flush()).dead == 1
    [asked] = al.outbox.resend_dead(clock(), ids=[second.message_id])
    assert asked.skipped is None
    for _ in range(3):  # at each look until the reload: still waiting, said once
        res = await al.sender.flush()
        assert (res.dead, res.delivered) == (0, 0)
        row = al.outbox.get(second.id)
        assert row is not None and row.status == PENDING and row.attempts == 0  # never tried: none counted
        assert row.last_error is not None and row.last_error.startswith(
            "waits for a reload: sink 'hook' is disabled in the running daemon (sink disabled: the endpoint answered "
            "410 Gone (HTTP 410")
        assert row.last_error.count("waits for a reload") == 1
        assert second.id in {n.id for n in al.outbox.list_pending()}  # as `alerts pending` lists it
        clock.advance(20)
    assert caplog.text.count("re-sent on request wait: their sink is disabled") == 1  # once, not at every look
    await al.publish([event(3)])
    assert (await al.sender.flush()).dead == 1  # written meanwhile: dropped, as before
    assert len(rx.requests) == 1
    al.reload(al.cfg, environ={"HOOK_SECRET": SECRET})
    clock.advance(20)
    assert (await al.sender.flush()).delivered == 1
    assert rx.requests[-1].message_id == second.message_id and al.outbox.get(second.id).status == DELIVERED  # type: ignore[union-attr]
    await al.stop()


async def test_a_re_sent_row_joining_an_older_rows_retry_keeps_its_own_window(
        store: Store, clock: Clock, rx: Receiver) -> None:
    # Found by review: a row re-sent on request that joined the retry of an older failing row of its group (another
    # drift signal of its canary x target) was given up on with that row when the older row's window ended, after a
    # single attempt of its own: the operator's request undone. Each row keeps its own window: the older row is given
    # up on alone, the re-sent one retried until its own window (from its first attempt) ends.
    al = build(store, config(rx.url), clock)
    rx.fail(503)
    [older] = await al.publish([event(1)])
    assert (await al.sender.flush()).retried == 1
    clock.advance(50 * 60)
    [asked] = await al.publish([AlertEvent(kind="drift.opened", canary="c1", target="t", signal="output_chars",
                                           event_id="e1b", evidence={"baseline_value": 1.0, "current_value": 2.0})])
    al.outbox.mark_dead([asked.id], "gave up after 9 attempts: HTTP 503")  # given up on before (an earlier outage)
    assert al.outbox.resend_dead(clock(), ids=[asked.message_id])[0].skipped is None
    await al.sender.flush()  # it joins the older row's retry
    while (row := al.outbox.get(older.id)) is not None and row.status != DEAD:
        clock.t = max(clock(), row.next_attempt_at)
        await al.sender.flush()
    mine = al.outbox.get(asked.id)
    assert mine is not None and mine.status == FAILED, mine  # its own window (1h from its first attempt) runs
    first = mine.last_error
    assert first is not None and "first tried at" in first, first
    clock.t = mine.next_attempt_at
    assert (await al.sender.flush()).retried == 1  # retried alone
    await al.stop()

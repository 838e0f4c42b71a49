"""The sender's grouped messages against a real receiver on loopback: the drift of one canary and target within
group_wait is one message, a merged group is retried as one within the daemon's batch, and a signal that reopened
behind its resolve is not merged ahead of it."""

from __future__ import annotations

import hashlib

from prometheus_client import CollectorRegistry

from monitor.alerts import AlertEvent, build_alerting
from monitor.store import Store
from tests.support.delivery import SECRET, Clock, build, config, event
from tests.support.receiver import Receiver


async def test_a_merged_model_change_that_failed_is_retried_with_the_daemons_batch(
        sqlite_store: Store, clock: Clock, rx: Receiver) -> None:
    # Found by QA: after one failed attempt of a model.changed group (the first row of 4, merged), the rows it
    # merged were due before its retry and filled the daemon's batch of 3, so the sink sent nothing ever again.
    cfg = config(rx.url, group_wait="30s")
    al = build_alerting(cfg, sqlite_store, environ={"HOOK_SECRET": SECRET}, now=clock, rand=lambda: 1.0, batch=3)
    changes = [AlertEvent(kind="model.changed", canary=f"c{i}", target="t", signal=signal, event_id=f"m{i}{signal}",
                          evidence={"baseline_value": "a", "current_value": "b"})
               for i in range(2) for signal in ("response_model", "system_fingerprint")]
    assert len(await al.publish(changes)) == 4
    clock.advance(30)
    rx.fail(503, times=1)
    assert (await al.sender.flush()).retried == 1
    clock.advance(10)  # the retry falls due (initial 10s, rand 1.0)
    assert (await al.sender.flush()).delivered == 1
    later = await al.publish([event(7)])  # and the sink goes on delivering what comes after
    clock.advance(30)  # a drift message waits for its group too
    assert (await al.sender.flush()).delivered == 1
    assert [r.status for r in rx.requests] == [503, 200, 200]
    assert rx.requests[1].json["type"] == "model.changed"
    assert len(rx.requests[1].json["data"]["changes"]) == 4
    assert rx.requests[2].message_id == later[0].message_id
    await al.stop()


async def test_the_drift_of_one_canary_and_target_within_group_wait_is_one_message(
        sqlite_store: Store, clock: Clock, rx: Receiver) -> None:
    # Found by QA: one refusal change opened 7 events (refused, check:refusal, length, similarity, completion...)
    # and paged 7 times within 8 s. Webhook and Slack now get one message per canary x target and group_wait;
    # each event keeps its own cooldown, resolve and accept.
    al = build(sqlite_store, config(rx.url, group_wait="30s"), clock)

    def opened(canary: str, signal: str, before: float, after: float) -> AlertEvent:
        return AlertEvent(kind="drift.opened", canary=canary, target="t", signal=signal, event_id=f"{canary}-{signal}",
                          summary=f"{canary} @ t: {signal} {before} -> {after}",
                          evidence={"baseline_value": before, "current_value": after, "p_value": 0.001})

    await al.publish([opened("c", "refused", 0.02, 0.3), opened("other", "refused", 0.0, 0.2)])
    assert (await al.sender.flush()).delivered == 0  # the group is still collecting
    clock.advance(10)
    await al.publish([opened("c", "output_chars", 600, 140), opened("c", "check:refusal", 1.0, 0.7)])
    clock.advance(20)
    assert (await al.sender.flush()).delivered == 2  # c's three events in one message, other's one
    by_canary = {r.json["data"]["canary"]: r.json["data"] for r in rx.requests}
    c = by_canary["c"]
    assert c["signals"] == ["refused", "check:refusal", "output_chars"] and c["signal"] == "refused"  # by time,
    assert [(e["event_id"], e["baseline_value"], e["current_value"]) for e in c["events"]] == [  # then signal
        ("c-refused", 0.02, 0.3), ("c-check:refusal", 1.0, 0.7), ("c-output_chars", 600, 140)]
    assert c["summary"] == ("c @ t: 3 signals changed: refused 0.02 -> 0.3; check:refusal 1.0 -> 0.7; "
                            "output_chars 600 -> 140")
    assert by_canary["other"]["signals"] == ["refused"] and len(by_canary["other"]["events"]) == 1
    assert al.outbox.counts() == {"delivered": 4}
    clock.advance(60)  # a resolve is its own message, at once
    await al.publish([AlertEvent(kind="drift.resolved", canary="c", target="t", signal="output_chars",
                                 event_id="c-output_chars")])
    assert (await al.sender.flush()).delivered == 1 and rx.requests[-1].json["type"] == "drift.resolved"
    await al.stop()


async def test_drift_of_one_canary_and_target_opened_in_one_round_is_one_message_not_one_per_signal(
        store: Store, clock: Clock, rx: Receiver) -> None:
    # Found by QA: events opened in the same analysis round (refused, check:refusal, similarity...) fall due
    # together; the first row's message merged the others, and each of them was then sent again on its own (3
    # signals, 3 messages with 3 message ids: the receiver could not drop the repeats). After an outage the
    # same happened to every group whose rows had been retried into one batch.
    al = build(store, config(rx.url, group_wait="30s"), clock)

    def opened(signal: str) -> AlertEvent:
        return AlertEvent(kind="drift.opened", canary="c", target="t", signal=signal, event_id=f"c-{signal}",
                          evidence={"baseline_value": 0.0, "current_value": 1.0})

    await al.publish([opened("refused"), opened("check:refusal"), opened("similarity")])
    clock.advance(30)
    rx.fail(503, times=1)
    assert (await al.sender.flush()).retried == 1  # one attempt of the group's message, not one per row
    assert len(rx.requests) == 1
    clock.advance(60)  # the retry and the other rows' leases are due
    assert (await al.sender.flush()).delivered == 1
    assert [r.status for r in rx.requests] == [503, 200]
    assert sorted(rx.requests[1].json["data"]["signals"]) == ["check:refusal", "refused", "similarity"]
    await al.publish([opened("output_chars"), opened("latency_s")])
    clock.advance(30)
    assert (await al.sender.flush()).delivered == 1
    assert len(rx.requests) == 3 and sorted(rx.requests[2].json["data"]["signals"]) == ["latency_s", "output_chars"]
    assert al.outbox.counts() == {"delivered": 5}
    await al.stop()


async def test_a_signal_that_reopened_behind_its_resolve_is_not_merged_ahead_of_the_resolve(
        store: Store, clock: Clock, rx: Receiver) -> None:
    # Found by QA: refused opened, resolved and opened again while its first message waited (group_wait, or a
    # receiver outage), and similarity opened beside it. The first message merged both "opened" rows of refused,
    # the resolve went out after it: the receiver's last word on refused was "resolved" while it was open.
    al = build(store, config(rx.url, group_wait="30s"), clock)

    def ev(kind: str, signal: str, event_id: str) -> AlertEvent:
        return AlertEvent(kind=kind, canary="c", target="t", signal=signal, event_id=event_id,
                          evidence={"baseline_value": 0.0, "current_value": 1.0})

    await al.publish([ev("drift.opened", "refused", "e1")])
    clock.advance(5)
    await al.publish([ev("drift.resolved", "refused", "e1")])
    clock.advance(5)
    await al.publish([ev("drift.opened", "refused", "e2"), ev("drift.opened", "similarity", "e3")])
    for _ in range(4):
        clock.advance(30)
        await al.sender.flush()
    got = [(r.json["type"], [e["event_id"] for e in r.json["data"].get("events", [])] or [r.json["data"]["event_id"]])
           for r in rx.requests]
    assert got == [("drift.opened", ["e1", "e3"]), ("drift.resolved", ["e1"]), ("drift.opened", ["e2"])]
    assert al.outbox.counts() == {"delivered": 4}
    await al.stop()


async def test_the_rows_a_failed_group_message_merged_wait_for_its_retry_and_go_with_it(
        sqlite_store: Store, clock: Clock, rx: Receiver) -> None:
    # Found by QA: a grouped message that failed was retried after its backoff, but the rows merged into it were
    # left as they were: not claimed with it (a batch of 1) they were due at once and went out on their own, ahead
    # of the backoff; claimed with it, they went out on their own when their lease ended before the retry.
    cfg = config(rx.url, group_wait="30s")
    al = build_alerting(cfg, sqlite_store, environ={"HOOK_SECRET": SECRET}, now=clock, rand=lambda: 1.0, batch=1)

    def opened(signal: str) -> AlertEvent:
        return AlertEvent(kind="drift.opened", canary="c", target="t", signal=signal, event_id=f"c-{signal}",
                          evidence={"baseline_value": 0.0, "current_value": 1.0})

    await al.publish([opened("refused"), opened("check:refusal"), opened("similarity")])
    clock.advance(30)
    rx.fail(503, times=1)
    res = await al.sender.flush()
    assert (res.retried, res.delivered, len(rx.requests)) == (1, 0, 1)  # the group's one attempt, nothing alone
    rows = al.outbox.query()
    assert {r.status for r in rows} == {"failed"}  # every row of the message waits for its retry
    assert len({r.next_attempt_at for r in rows}) == 1 and {r.attempts for r in rows} == {1}
    clock.advance(5)  # before the backoff (10 s) ends nothing goes out
    assert (await al.sender.flush()).delivered == 0 and len(rx.requests) == 1
    clock.advance(5)
    assert (await al.sender.flush()).delivered == 1
    assert [r.status for r in rx.requests] == [503, 200]
    assert sorted(rx.requests[1].json["data"]["signals"]) == ["check:refusal", "refused", "similarity"]
    assert al.outbox.counts() == {"delivered": 3}
    await al.stop()


async def test_a_grouped_message_s_webhook_id_is_derived_from_its_rows_and_stable_across_retries(
        sqlite_store: Store, clock: Clock, rx: Receiver) -> None:
    # Found by QA: a grouped message carried its first row's message id, one that says nothing of the rows in it
    # (the same id for other contents). It is `msg_` + the first 32 hex digits of SHA-256 over its sorted row ids
    # joined with newlines (README), the same at each retry.
    al = build(sqlite_store, config(rx.url, group_wait="30s"), clock)

    def opened(signal: str) -> AlertEvent:
        return AlertEvent(kind="drift.opened", canary="c", target="t", signal=signal, event_id=f"c-{signal}",
                          evidence={"baseline_value": 0.0, "current_value": 1.0})

    await al.publish([opened("refused"), opened("check:refusal"), opened("similarity")])
    rows = al.outbox.query()
    expected = "msg_" + hashlib.sha256("\n".join(sorted(r.id for r in rows)).encode()).hexdigest()[:32]
    clock.advance(30)
    rx.fail(503, times=2)
    assert (await al.sender.flush()).retried == 1
    clock.advance(10)
    assert (await al.sender.flush()).retried == 1
    clock.advance(20)
    assert (await al.sender.flush()).delivered == 1
    assert [r.status for r in rx.requests] == [503, 503, 200]
    assert [r.message_id for r in rx.requests] == [expected] * 3  # verified signatures: the receiver checks them
    assert expected not in {r.message_id for r in rows}
    await al.publish([AlertEvent(kind="drift.opened", canary="d", target="t", signal="refused", event_id="d")])
    clock.advance(30)  # a message of one row keeps that row's message id
    assert (await al.sender.flush()).delivered == 1
    assert rx.requests[-1].message_id == next(r.message_id for r in al.outbox.query() if r.payload["canary"] == "d")
    await al.stop()


async def test_the_rows_a_grouped_message_given_up_on_merged_are_given_up_on_with_it(
        sqlite_store: Store, clock: Clock, rx: Receiver) -> None:
    # Found by QA: a grouped message given up on (past retry.give_up_after) was marked dead alone: the rows it
    # merged were left waiting, and went out on their own right after it, as a second message of the same drift
    # (the receiver told of it after it was given up on), neither counted nor listed as given up on.
    registry = CollectorRegistry()
    al = build(sqlite_store, config(rx.url, group_wait="30s"), clock, registry=registry)

    def opened(signal: str) -> AlertEvent:
        return AlertEvent(kind="drift.opened", canary="c", target="t", signal=signal, event_id=f"c-{signal}",
                          evidence={"baseline_value": 0.0, "current_value": 1.0})

    await al.publish([opened("refused"), opened("check:refusal"), opened("similarity")])
    clock.advance(30)
    rx.fail(503, times=1)
    assert (await al.sender.flush()).retried == 1
    clock.advance(al.cfg.retry.give_up_after)  # its retry falls due past give_up_after
    rx.fail(503, times=1)  # the retry fails: given up on; the receiver takes messages again at once
    res = await al.sender.flush()
    assert (res.delivered, res.dead) == (0, 3)  # each row of the message given up on, nothing sent alone
    assert [r.status for r in rx.requests] == [503, 503]
    rows = al.outbox.query()
    assert {r.status for r in rows} == {"dead"} and {r.attempts for r in rows} == {2}
    [error] = {r.last_error for r in rows}  # the message's error, on each of its rows
    assert error is not None and error.startswith("gave up after 2 attempts: HTTP 503")
    assert registry.get_sample_value("llm_monitor_notifications_dropped_total",
                                     {"sink": "hook", "reason": "gave_up"}) == 3
    assert registry.get_sample_value("llm_monitor_notifications_pending", {"sink": "hook"}) == 0
    clock.advance(60)
    assert (await al.sender.flush()).delivered == 0 and len(rx.requests) == 2
    await al.stop()


async def test_a_grouped_message_given_up_on_is_re_sent_with_its_rows_and_a_failed_re_send_takes_them_back(
        sqlite_store: Store, clock: Clock, rx: Receiver) -> None:
    # Found by QA: the re-send of a grouped firing message given up on (the receiver back, at the sink's look) that
    # failed gave up on its lead row again alone: the rows it merged were left waiting and went out on their own when
    # their lease ended, ahead of the message's next re-send, which then carried its lead alone under another id.
    al = build(sqlite_store, config(rx.url, group_wait="30s"), clock)

    def opened(signal: str) -> AlertEvent:
        return AlertEvent(kind="drift.opened", canary="c", target="t", signal=signal, event_id=f"c-{signal}",
                          evidence={"baseline_value": 0.0, "current_value": 1.0})

    await al.publish([opened("refused"), opened("check:refusal"), opened("similarity")])
    clock.advance(30)
    rx.fail(503)
    await al.sender.flush()
    clock.advance(al.cfg.retry.give_up_after)
    await al.sender.flush()  # given up on, its rows with it
    first = rx.requests[0].message_id
    assert {r.status for r in al.outbox.query()} == {"dead"} and len(rx.requests) == 2
    await al.sender.refresh()  # the sink's look: re-sent, and refused again (the receiver still down)
    assert (await al.sender.flush()).delivered == 0 and len(rx.requests) == 3
    assert rx.requests[2].message_id == first  # the same message, its rows together
    assert sorted(rx.requests[2].json["data"]["signals"]) == ["check:refusal", "refused", "similarity"]
    rows = al.outbox.query()
    assert {r.status for r in rows} == {"dead"}  # given up on again, every row of it
    assert len({r.last_error for r in rows}) == 1 and {r.attempts for r in rows} == {3}
    rx.heal()
    clock.advance(60)  # the merged rows' lease ended: nothing goes out alone
    assert (await al.sender.flush()).delivered == 0 and len(rx.requests) == 3
    await al.sender.refresh()  # the next look re-sends the message, once, with its rows
    assert (await al.sender.flush()).delivered == 1
    again = rx.requests[3]
    assert again.status == 200 and again.message_id == first and again.json["data"]["resent"] is True
    assert sorted(again.json["data"]["signals"]) == ["check:refusal", "refused", "similarity"]
    assert al.outbox.counts() == {"delivered": 3}
    await al.sender.refresh()
    assert (await al.sender.flush()).delivered == 0 and len(rx.requests) == 4
    await al.stop()


async def test_a_row_arriving_while_its_group_waits_for_a_retry_waits_with_it_and_goes_in_its_message(
        store: Store, clock: Clock, rx: Receiver) -> None:
    # Found by QA: a failed group's rows wait for its retry (10 s); a drift of another signal of the same canary x
    # target opened 2 s later was due at once, and its message merged the waiting rows: sent ahead of their backoff
    # (to a receiver that had just failed). The new row now waits for the group's retry and goes in its message.
    al = build(store, config(rx.url), clock)  # group_wait 0: a drift opening is due at once

    def opened(signal: str) -> AlertEvent:
        return AlertEvent(kind="drift.opened", canary="c", target="t", signal=signal, event_id=f"c-{signal}",
                          evidence={"baseline_value": 0.0, "current_value": 1.0})

    await al.publish([opened("refused"), opened("check:refusal")])
    rx.fail(503, times=1)
    assert (await al.sender.flush()).retried == 1
    [retry_at] = {r.next_attempt_at for r in al.outbox.query()}
    clock.advance(2)
    await al.publish([opened("similarity")])
    assert (await al.sender.flush()).delivered == 0 and len(rx.requests) == 1  # nothing ahead of the backoff
    rows = {r.signal: r for r in al.outbox.query()}
    assert rows["similarity"].next_attempt_at == retry_at and rows["similarity"].attempts == 0  # waits with it
    assert {r.status for r in rows.values()} == {"failed", "pending"}
    clock.advance(7)
    assert (await al.sender.flush()).delivered == 0 and len(rx.requests) == 1
    clock.advance(1)  # the retry: one message, the new row in it
    assert (await al.sender.flush()).delivered == 1
    assert [r.status for r in rx.requests] == [503, 200]
    assert rx.requests[1].json["data"]["signals"] == ["refused", "check:refusal", "similarity"]
    assert al.outbox.counts() == {"delivered": 3}
    await al.stop()


async def test_the_rows_a_grouped_message_that_cannot_be_rendered_merged_are_given_up_on_with_it(
        sqlite_store: Store, clock: Clock, rx: Receiver) -> None:
    # Found by QA: a grouped message whose render raised gave up on its lead row alone: the rows it merged were left
    # waiting, neither counted nor listed as given up on, and went out on their own at their lease's end (a second
    # message of the same drift, after the first was given up on), as a message given up on past give_up_after did.
    registry = CollectorRegistry()
    al = build(sqlite_store, config(rx.url, group_wait="30s"), clock, registry=registry)

    def opened(signal: str) -> AlertEvent:
        return AlertEvent(kind="drift.opened", canary="c", target="t", signal=signal, event_id=f"c-{signal}",
                          evidence={"baseline_value": 0.0, "current_value": 1.0})

    await al.publish([opened("refused"), opened("check:refusal"), opened("similarity")])
    clock.advance(30)
    sink = al.sender.sinks["hook"]
    good = sink.render

    def render(n, now):  # type: ignore[no-untyped-def]
        if len(n.payload.get("events") or []) > 1:  # a row this build cannot render, merged
            raise ValueError("bad evidence in a merged row")
        return good(n, now)

    sink.render = render  # type: ignore[method-assign]
    res = await al.sender.flush()
    assert (res.delivered, res.dead) == (0, 3)  # each row of the message given up on
    rows = al.outbox.query()
    assert {r.status for r in rows} == {"dead"}
    [error] = {r.last_error for r in rows}  # the message's error, on each of its rows
    assert error is not None and error.startswith("cannot render: ValueError")
    assert registry.get_sample_value("llm_monitor_notifications_dropped_total",
                                     {"sink": "hook", "reason": "unrenderable"}) == 3
    clock.advance(300)  # past the merged rows' lease: nothing goes out alone
    assert (await al.sender.flush()).delivered == 0 and rx.requests == []
    await al.stop()


async def test_a_grouped_message_delivered_is_marked_delivered_as_one_or_not_at_all(
        sqlite_store: Store, clock: Clock, rx: Receiver) -> None:
    # Found by QA: a grouped message's rows were marked delivered one transaction each; a store that failed after
    # the first (a full disk, a failover) left the rows it merged waiting, sent again later on their own as a second
    # message under another webhook-id (the receiver could not tell it was the same one) while their lead was done.
    # Marked in one statement, the group stays waiting whole and goes again as the same message (same webhook-id).
    import pytest
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    al = build(sqlite_store, config(rx.url, group_wait="30s"), clock)

    def opened(signal: str) -> AlertEvent:
        return AlertEvent(kind="drift.opened", canary="c", target="t", signal=signal, event_id=f"c-{signal}",
                          evidence={"baseline_value": 0.0, "current_value": 1.0})

    await al.publish([opened("refused"), opened("check:refusal"), opened("similarity")])
    clock.advance(30)
    with sqlite_store.engine.begin() as conn:  # the store refuses any write past the first row marked delivered
        conn.execute(text("CREATE TRIGGER one_only BEFORE UPDATE ON notifications WHEN NEW.status = 'delivered' AND "
                          "(SELECT count(*) FROM notifications WHERE status = 'delivered') >= 1 "
                          "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"))
    with pytest.raises(SQLAlchemyError):
        await al.sender.flush()
    with sqlite_store.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER one_only"))
    clock.advance(al.sender.lease)  # the lease of the rows claimed ends: due again
    await al.sender.flush()
    assert {r.status for r in al.outbox.query()} == {"delivered"}
    ids = [r.message_id for r in rx.requests]
    assert len(ids) == 2 and ids[0] == ids[1], ids  # the same message again, which the receiver drops
    assert len(rx.requests[1].json["data"]["events"]) == 3
    await al.stop()


async def test_a_grouped_re_send_without_a_row_that_ended_goes_under_its_rows_id_and_leaves_no_stale_sent_as(
        sqlite_store: Store, clock: Clock, rx: Receiver) -> None:
    # The daemon re-sends a grouped firing message given up on once the receiver takes messages again; a row of it
    # whose event ended meanwhile is not re-sent (its end was), so the message carries the others, under the id
    # those rows make (other contents, another webhook-id: a receiver that had the first drops nothing it lacks).
    # Its rows then said they were given up on in the first message (`sent_as`), which the receiver got under no id.
    from monitor.alerts.policy import group_message_id

    al = build(sqlite_store, config(rx.url, group_wait="30s"), clock)

    def drift(kind: str, signal: str) -> AlertEvent:
        return AlertEvent(kind=kind, canary="c", target="t", signal=signal, event_id=f"c-{signal}",
                          evidence={"baseline_value": 0.0, "current_value": 1.0})

    await al.publish([drift("drift.opened", s) for s in ("refused", "check:refusal", "similarity")])
    clock.advance(30)
    rx.fail(503)
    await al.sender.flush()
    clock.advance(al.cfg.retry.give_up_after)
    await al.sender.flush()  # given up on, its rows with it
    rows = {r.signal: r for r in al.outbox.query()}
    first = group_message_id([r.id for r in rows.values()])
    assert {r.sent_as for r in rows.values()} == {first}
    rx.heal()
    await al.publish([drift("drift.resolved", "similarity")])
    clock.advance(30)
    await al.sender.flush()  # the end goes; the receiver takes messages: the rest of the page is re-sent
    resent = rx.requests[-1]
    assert resent.json["data"]["resent"] is True and sorted(resent.json["data"]["signals"]) == ["check:refusal",
                                                                                                 "refused"]
    assert resent.message_id == group_message_id([rows["refused"].id, rows["check:refusal"].id]) != first
    got = {r.signal: r for r in al.outbox.query() if r.kind == "drift.opened"}
    assert {s: (r.status, r.sent_as) for s, r in got.items()} == {
        "refused": ("delivered", None), "check:refusal": ("delivered", None), "similarity": ("dead", first)}
    await al.stop()

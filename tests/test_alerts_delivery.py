"""The sender against a real receiver on loopback: retries, Retry-After, outages, 410, metrics, secrets."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import text

from monitor.alerts import AlertEvent, AlertsConfig, build_alerting
from monitor.alerts.events import DEAD, DELIVERED, FAILED, PENDING
from monitor.store import Store
from monitor.telemetry.metrics import Metrics
from tests.support.receiver import Receiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class Clock:
    def __init__(self) -> None:
        self.t = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def rx(clock: Clock) -> Iterator[Receiver]:
    with Receiver(secret=SECRET, now=lambda: clock().timestamp()) as r:
        yield r


def config(url: str, **extra: object) -> AlertsConfig:
    """Deliveries are the subject here, not grouping: drift messages go out without waiting for their group."""
    return AlertsConfig.model_validate({
        "group_wait": "0s",
        "retry": {"initial": "10s", "max": "10m", "give_up_after": "1h"},
        "sinks": [{"name": "hook", "type": "webhook", "url": url + "/hook", "secret_env": "HOOK_SECRET"}],
        **extra})


def event(i: int = 0, kind: str = "drift.opened") -> AlertEvent:
    return AlertEvent(kind=kind, canary=f"c{i}", target="t", signal="refusal_rate", event_id=f"e{i}",
                      evidence={"baseline_value": 0.1, "current_value": 0.5})


def build(store: Store, cfg: AlertsConfig, clock: Clock, env: dict | None = None, registry=None):  # type: ignore[no-untyped-def]
    metrics = Metrics(registry) if registry is not None else None
    return build_alerting(cfg, store, environ=env or {"HOOK_SECRET": SECRET}, metrics=metrics, now=clock,
                          rand=lambda: 1.0)


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
    import asyncio

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


async def _until(predicate, what: str, tries: int = 500) -> None:  # type: ignore[no-untyped-def]
    for _ in range(tries):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never true: {what}")


async def test_a_slow_sink_delays_only_itself(sqlite_store: Store, clock: Clock, rx: Receiver) -> None:
    """Slack hangs: webhook retries that fall due and the Alertmanager re-send still go out, the gauge is right."""
    slow, am = Receiver().start(), Receiver().start()
    slow.hold()
    cfg = AlertsConfig.model_validate({
        "group_wait": "0s",
        "resend_interval": "1m", "retry": {"initial": "10s", "max": "10m", "give_up_after": "1h"},
        "sinks": [{"name": "chat", "type": "slack", "url_env": "SLACK_URL", "timeout": "5m"},
                  {"name": "hook", "type": "webhook", "url": rx.url + "/hook", "secret_env": "HOOK_SECRET"},
                  {"name": "am", "type": "alertmanager", "url": am.url}]})
    registry = CollectorRegistry()
    al = build_alerting(cfg, sqlite_store, environ={"HOOK_SECRET": SECRET, "SLACK_URL": slow.url + "/slack"},
                        metrics=Metrics(registry), now=clock, rand=lambda: 1.0, batch=3, poll_interval=0.05)
    rx.fail(500, times=1)
    await al.publish([event(i) for i in range(4)])
    await al.start()
    try:
        await asyncio.to_thread(slow.wait_arrived, 1)  # Slack's loop is stuck in its first request
        await asyncio.to_thread(am.wait_for, 5)  # four alerts, then the first re-send of the firing ones
        await asyncio.to_thread(rx.wait_for, 3)  # the fourth webhook message failed once, retry in 10 s
        clock.advance(61)  # the webhook retry falls due, and so does the next Alertmanager re-send
        al.sender.wake()
        await asyncio.to_thread(rx.wait_for, 4)
        [*_, resend] = await asyncio.to_thread(am.wait_for, 6)
        assert len(resend.json) == 4 and {a["endsAt"] for a in resend.json} == {
            (clock() + timedelta(minutes=4)).isoformat()}
        assert slow.arrived == 1 and slow.delivered == []  # all of this while Slack still hangs
        def pending(sink: str) -> float | None:
            return registry.get_sample_value("llm_monitor_notifications_pending", {"sink": sink})

        await _until(lambda: (pending("chat"), pending("hook"), pending("am")) == (4, 0, 0),
                     "the pending gauge counts Slack's four waiting rows, and no other sink's")
        assert al.outbox.pending_count() == 4
    finally:
        slow.release()
    await asyncio.to_thread(slow.wait_for, 4)
    await _until(lambda: pending("chat") == 0, "drained")
    al.sender.set_sinks({k: v for k, v in al.sender.sinks.items() if k != "chat"})
    assert pending("chat") is None and pending("hook") == 0  # a removed sink's series goes
    await al.stop()
    slow.stop()
    am.stop()


async def test_dropped_notifications_are_counted_and_a_disabled_sink_shows(
        sqlite_store: Store, clock: Clock, rx: Receiver) -> None:
    registry = CollectorRegistry()
    cfg = config(rx.url)
    al = build(sqlite_store, cfg, clock, registry=registry)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("llm_monitor_notifications_dropped_total", sink="hook", reason="gone") == 0  # declared
    assert value("llm_monitor_notification_sink_disabled", sink="hook") == 0
    await al.publish([event(1)])
    rx.fail(410, times=1)
    await al.sender.flush()
    assert value("llm_monitor_notification_sink_disabled", sink="hook") == 1
    assert value("llm_monitor_notifications_dropped_total", sink="hook", reason="gone") == 1
    await al.publish([event(2), event(3)])
    await al.sender.flush()  # not attempted, but counted
    assert value("llm_monitor_notifications_dropped_total", sink="hook", reason="disabled") == 2
    assert len(rx.requests) == 1
    al.reload(cfg, {"HOOK_SECRET": SECRET})  # a reload re-enables the sink
    assert value("llm_monitor_notification_sink_disabled", sink="hook") == 0
    await al.publish([event(4)])
    rx.fail(500)
    for _ in range(20):
        await al.sender.flush()
        clock.advance(600)
    assert value("llm_monitor_notifications_dropped_total", sink="hook", reason="gave_up") == 1
    rx.heal()
    await al.publish([event(5)])
    other = AlertsConfig.model_validate({"group_wait": "0s", "sinks": [{"name": "new", "type": "webhook", "url": rx.url}]})
    al.reload(other, {})
    await al.sender.flush()  # kept for an hour: in a rolling update the next leader may still know the sink
    assert value("llm_monitor_notifications_dropped_total", sink="hook", reason="unconfigured") == 0
    assert al.outbox.pending_count() == 1
    clock.advance(3601)
    await al.sender.flush()
    assert value("llm_monitor_notifications_dropped_total", sink="hook", reason="unconfigured") == 1
    assert value("llm_monitor_notification_sink_disabled", sink="hook") is None
    assert al.outbox.counts() == {"dead": 5}
    await al.stop()


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


async def test_a_store_outage_is_logged_once_per_round_on_one_line_and_its_end_too(
        sqlite_store: Store, clock: Clock, rx: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    # Found by QA: with the store gone (a PostgreSQL database dropped) every sink's delivery loop and the outbox
    # housekeeping logged a full traceback at every poll, where other store errors are one line each.
    al = build(sqlite_store, config(rx.url), clock)
    al.sender.poll_interval = 0.01
    [n] = await al.publish([event()])
    with sqlite_store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE notifications RENAME TO notifications_away"))
    caplog.set_level(logging.INFO, logger="monitor.alerts")
    al.sender.start()

    def failed(what: str) -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.getMessage().startswith(f"{what} failed")]

    deadline = asyncio.get_running_loop().time() + 30
    while sum(r.levelno >= logging.ERROR for r in caplog.records) < 2:  # both loops failed once
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)  # many more rounds fail meanwhile
    with sqlite_store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE notifications_away RENAME TO notifications"))
    while not rx.delivered:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)
    await al.stop()
    for what in ("alert delivery to hook", "alert outbox housekeeping"):
        [record] = failed(what)
        assert record.exc_info is None and "no such table: notifications" in record.getMessage()
        assert record.getMessage().endswith("retrying: OperationalError: no such table: notifications")
    answered = [r.getMessage() for r in caplog.records if r.getMessage().endswith("the store answers again")]
    assert "alert delivery to hook: the store answers again" in answered
    assert rx.delivered[0].message_id == n.message_id


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


async def test_a_sink_outage_is_one_warning_and_its_end_one_line_however_many_notifications_wait(
        sqlite_store: Store, clock: Clock, rx: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    # Found by a soak: every attempt of every waiting notification was a warning (533 lines in a 90 s outage).
    caplog.set_level(logging.INFO, logger="monitor.alerts")
    al = build(sqlite_store, config(rx.url), clock)
    rx.stop()
    await al.publish([event(i) for i in range(6)])
    for _ in range(3):
        assert (await al.sender.flush()).retried == 6
        clock.advance(600)
    rx.start()
    await al.sender.flush()
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name.startswith("monitor.alerts")]
    assert lines == [("WARNING", "notification delivery failed, will retry (logged once until the sink delivers "
                                 "again)"), ("INFO", "alert sink hook delivers again")]
    rx.stop()  # a new outage is told again
    await al.publish([event(9)])
    await al.sender.flush()
    assert [r.levelname for r in caplog.records if r.name.startswith("monitor.alerts")][-1] == "WARNING"
    await al.stop()


async def test_a_stopping_sender_starts_no_delivery_and_gives_its_claimed_rows_back(
        sqlite_store: Store, clock: Clock, rx: Receiver) -> None:
    """Found by QA with two daemons: a leader SIGTERMed while delivering one of a batch went on to the next row after
    the stop began; the stop's grace cut that one after the receiver had it, and the next leader sent it again once
    its lease ran out (35 s later, the same webhook-id twice). A stopping sender now finishes the delivery in flight,
    starts none, and gives the rest of its batch back: the next leader sends them at once, once."""
    al = build_alerting(config(rx.url), sqlite_store, environ={"HOOK_SECRET": SECRET}, now=clock, rand=lambda: 1.0,
                        batch=3, lease=35.0, poll_interval=0.05)
    await al.publish([event(i) for i in range(3)])  # three canaries: three messages, not one merged
    rx.hold()
    await al.start()
    await asyncio.to_thread(rx.wait_arrived, 1)  # the first is at the receiver, the other two claimed behind it
    stopping = asyncio.create_task(al.stop())
    await asyncio.sleep(0.1)
    rx.release()  # the delivery in flight ends within the grace
    await stopping
    assert rx.arrived == 1 and len(rx.delivered) == 1
    assert {n.status for n in al.outbox.query()} == {DELIVERED, PENDING}
    # the two not sent are due now, for the next leader, not at the end of the lease
    assert len(al.outbox.claim(clock(), 10, lease=35.0)[0]) == 2

"""The sender sink by sink against real receivers on loopback: a slow sink delays only itself, dropped notifications
are counted and a disabled sink shows, a store or sink outage is one line and its end one more, and a stopping
sender starts no delivery and gives its claimed rows back."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from monitor.alerts import AlertsConfig, build_alerting
from monitor.alerts.events import DEAD, DELIVERED, FAILED, PENDING
from monitor.store import Store
from monitor.telemetry.metrics import Metrics
from tests.support.delivery import SECRET, Clock, build, config, event
from tests.support.receiver import Receiver


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


@pytest.mark.parametrize(("url", "error"), [
    # The config check refuses what httpx refuses as it sends (monitor.http_urls), an emoji name (xn--ls8h, IDNA 2003,
    # not 2008) too: put in place of a sink's URL after it (as a check that one day falls short would let it pass).
    ("http://xn--ls8h.example/hook/T0KEN-s3cr3t", "InvalidCodepoint: Codepoint U+1F4A9 at position 1 of"),
])
async def test_a_url_httpx_refuses_as_it_sends_is_a_failed_attempt_retried_then_given_up_on(
        sqlite_store: Store, clock: Clock, rx: Receiver, caplog: pytest.LogCaptureFixture, url: str,
        error: str) -> None:
    # Found by QA: URLs that pass the config check but that httpx refuses as it sends raise no HTTPError (an InvalidURL,
    # an idna error): every try was a logged traceback, the batch behind the row stuck, and `alerts pending` showed
    # 0 attempts and no error.
    caplog.set_level(logging.INFO, logger="monitor.alerts")
    cfg = AlertsConfig.model_validate({
        "group_wait": "0s", "retry": {"initial": "10s", "max": "10m", "give_up_after": "1h"},
        "sinks": [{"name": "bad", "type": "webhook", "url_env": "BAD_URL"},
                  {"name": "hook", "type": "webhook", "url": rx.url + "/hook", "secret_env": "HOOK_SECRET"}]})
    al = build(sqlite_store, cfg, clock, env={"HOOK_SECRET": SECRET, "BAD_URL": "http://bad.example/hook/T0KEN"})
    al.sender.sinks["bad"].url = url
    await al.publish([event(i) for i in range(3)])
    res = await al.sender.flush()
    assert (res.delivered, res.retried, res.dead) == (3, 3, 0)  # each of the bad sink's rows tried, none stuck
    assert len(rx.delivered) == 3
    bad = al.outbox.query(sink="bad")
    assert [(n.status, n.attempts) for n in bad] == [(FAILED, 1)] * 3
    for n in bad:
        assert (n.last_error or "").startswith(error) and "T0KEN" not in (n.last_error or "")
    for _ in range(10):  # retried on the schedule of any failure, then given up on
        clock.advance(600)
        await al.sender.flush()
    assert {(n.status, n.last_error.startswith("gave up after")) for n in al.outbox.query(sink="bad")} == {
        (DEAD, True)}
    records = [r for r in caplog.records if r.name.startswith("monitor.alerts")]
    assert all(r.exc_info is None for r in records)  # no traceback
    assert [r.getMessage() for r in records if r.levelno == logging.WARNING] == [
        "notification delivery failed, will retry (logged once until the sink delivers again)"]
    await al.stop()

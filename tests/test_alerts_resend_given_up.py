"""A firing message given up on at a push receiver (webhook, Slack, PagerDuty) is sent once more while its alert
fires: when the receiver takes a message again, or at the sink's periodic look, marked as a re-send, never twice (a
restart, a second replica, a re-send the receiver refuses while it takes other messages); its end, when the receiver
came back only after it, says the page never arrived. Real local receivers, over SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest
from sqlmodel import Session

from monitor.alerts import AlertEvent, AlertsConfig, build_alerting, outbox_resend
from monitor.alerts.events import RESENT_REFUSED
from monitor.alerts.outbox import Outbox
from monitor.alerts.service import Alerting
from monitor.store import Store
from monitor.store.outbox_table import NotificationRow
from monitor.store.tables import ObservationRow
from tests.support.receiver import Receiver
from tests.test_alerts_given_up import T0, down_with_error_drift_given_up, give_up, health, kinds


def alerting(store: Store, rx: Receiver, sink_type: str, now: list[datetime]) -> Alerting:
    """One sink `s` of `sink_type` posting to `rx`."""
    sink = {"webhook": {"url": rx.url + "/hook"}, "slack": {"url_env": "SLACK_URL"},
            "pagerduty": {"url": rx.url, "routing_key_env": "PD_KEY"}}[sink_type]
    cfg = AlertsConfig.model_validate({"resend_interval": "1m",
                                       "sinks": [{"name": "s", "type": sink_type, **sink}]})
    return build_alerting(cfg, store, environ={"SLACK_URL": rx.url, "PD_KEY": "k" * 32}, now=lambda: now[0])


async def error_drift_given_up_then_down(al: Alerting, rx: Receiver, now: list[datetime]) -> None:
    """c1's error rate rose (drift, given up on: the receiver down), then c1 went down: its canary.down written."""
    await al.publish([AlertEvent(kind="drift.opened", canary="c1", target="t", signal="error", event_id="ev-1",
                                 opened_at=T0, summary="c1@t: error 0 -> 0.3")])
    now[0] += timedelta(seconds=al.cfg.group_wait)
    await give_up(al, rx, now)
    al.inhibitor.saw("c1", "t", answered=False)
    await al.publish([health("canary.down", at=now[0])])


async def test_a_webhook_gets_a_canary_down_given_up_on_once_it_takes_a_message_again(store: Store) -> None:
    """The receiver was down past `retry.give_up_after` as c1 went down: it heard nothing of the outage until c1
    recovered. Now the page goes with the next message it takes, once, marked as a re-send, with its message id."""
    now = [T0]
    with Receiver() as rx:
        al = alerting(store, rx, "webhook", now)
        await al.publish([health("canary.down")])
        await give_up(al, rx, now)
        assert kinds(rx) == []
        await al.publish([health("canary.down", canary="c2", at=now[0])])  # the receiver is back
        await al.sender.flush()
        assert kinds(rx) == ["canary.down:c2", "canary.down:c1"]
        resent = rx.delivered[-1]
        assert resent.json["data"]["resent"] is True and "resent" not in rx.delivered[0].json["data"]
        [row] = [n for n in al.outbox.query(limit=10) if n.group_key == "c1/t"]
        assert resent.message_id == row.message_id and row.status == "delivered"
        for canary in ("c3", "c4"):  # not again
            await al.publish([health("canary.down", canary=canary, at=now[0])])
            await al.sender.flush()
        await al.sender.refresh()
        await al.sender.flush()
        assert kinds(rx)[2:] == ["canary.down:c3", "canary.down:c4"]
        await al.publish([health("canary.recovered", at=now[0])])  # ends the page it now has
        await al.sender.flush()
        assert kinds(rx)[-1] == "canary.recovered:c1"
        assert "firing_not_delivered" not in rx.delivered[-1].json["data"]
        await al.stop()


async def test_the_sinks_periodic_look_re_sends_it_when_nothing_else_goes_there(store: Store) -> None:
    """No other message for the receiver: the periodic look (every `resend_interval`) makes it due; a re-send that
    fails goes back to given up on, without a second drop counted, and the next look sends it."""
    now = [T0]
    with Receiver() as rx:
        al = alerting(store, rx, "slack", now)
        await al.publish([AlertEvent(kind="drift.opened", canary="c1", target="t", signal="refused", event_id="ev-1",
                                     opened_at=T0, summary="c1@t: refused 0 -> 1")])
        now[0] += timedelta(seconds=al.cfg.group_wait)
        await give_up(al, rx, now)
        rx.fail(503, times=1)
        await al.sender.refresh()
        await al.sender.flush()
        assert rx.delivered == [] and [n.status for n in al.outbox.query(limit=10)] == ["dead"]
        await al.sender.refresh()
        await al.sender.flush()
        [msg] = rx.delivered
        assert msg.json["text"].endswith("(re-sent: its first delivery here was given up on; it still fires)")
        await al.sender.refresh()
        await al.sender.flush()
        assert len(rx.delivered) == 1
        await al.stop()


async def test_a_restart_and_a_second_replica_re_send_it_once(store: Store) -> None:
    """After a restart the pair reads as down (its page will be re-sent), so its next failed run pages nothing anew;
    two replicas looking at once make it due once."""
    now = [T0]
    with Receiver() as rx:
        al = alerting(store, rx, "pagerduty", now)
        await al.publish([health("canary.down")])
        await give_up(al, rx, now)
        await al.stop()
        again = alerting(store, rx, "pagerduty", now)  # the restart
        other = alerting(store, rx, "pagerduty", now)  # a replica looking at the same store
        await again.start([("c1", "t")])
        assert again.open_pairs("canary.down") == {("c1", "t")}  # so no canary.down anew at its next failed run
        assert len(again.outbox.resend_given_up_firing("s", now[0])[0]) == 1
        assert other.outbox.resend_given_up_firing("s", now[0]) == ([], False)
        await again.sender.flush()
        await other.sender.refresh()
        await other.sender.flush()
        [page] = rx.delivered
        assert page.json["event_action"] == "trigger" and page.json["payload"]["custom_details"]["resent"] is True
        await again.stop()
        await other.stop()


async def test_the_end_of_a_page_never_delivered_says_so(store: Store) -> None:
    """The receiver came back only after c1 recovered: the page is not sent after its end; the recovery is sent,
    saying the page never arrived, so the on-call learns of the outage without reading it as the end of a page."""
    now = [T0]
    with Receiver() as rx:
        al = alerting(store, rx, "webhook", now)
        await al.publish([health("canary.down")])
        await give_up(al, rx, now)
        await al.publish([health("canary.recovered", at=now[0])])
        await al.sender.flush()
        await al.sender.refresh()
        await al.sender.flush()
        assert kinds(rx) == ["canary.recovered:c1"]
        assert rx.delivered[0].json["data"]["firing_not_delivered"] is True
        await al.stop()


async def test_a_canary_down_whose_outage_the_receiver_has_as_drift_is_not_re_sent(store: Store) -> None:
    """The canary.down given up on released the error drift it held there, the receiver's word of the outage: sent
    again too, it would be a second page for one outage."""
    now = [T0]
    with Receiver() as rx:
        al = alerting(store, rx, "webhook", now)
        await down_with_error_drift_given_up(al, rx, now)
        now[0] += timedelta(seconds=al.cfg.retry.max)
        await al.sender.refresh()
        await al.sender.flush()
        assert kinds(rx) == ["drift.opened:c1"]
        await al.stop()


async def test_a_removed_pair_s_page_given_up_on_is_ended_not_re_sent(store: Store) -> None:
    now = [T0]
    with Receiver() as rx:
        al = alerting(store, rx, "webhook", now)
        await al.publish([health("canary.down")])
        await give_up(al, rx, now)
        await al.retire([])
        await al.sender.refresh()
        await al.sender.flush()
        assert kinds(rx) == ["canary.recovered:c1"]
        assert rx.delivered[0].json["data"]["firing_not_delivered"] is True
        await al.stop()


async def test_a_canary_down_waits_while_its_pair_answers(store: Store) -> None:
    """A pair whose latest call answered may be over its outage: its canary.down given up on is not re-sent then (a
    restart before this release read such a pair as not down and wrote no recovery when it came back: it was its
    last word for good), and is once a look sees the pair failing again."""
    now = [T0]

    def call(n: int, error: str | None) -> None:
        with Session(store.engine) as s:
            s.add(ObservationRow(id=f"o{n}", canary="c1", target="t", provider="openai", request_model="m",
                                 started_at=now[0] + timedelta(seconds=n), error_type=error))
            s.commit()

    with Receiver() as rx:
        al = alerting(store, rx, "webhook", now)
        await al.publish([health("canary.down")])
        await give_up(al, rx, now)
        call(1, "timeout")
        call(2, None)
        await al.sender.refresh()
        await al.sender.flush()
        assert kinds(rx) == []
        call(3, "timeout")
        await al.sender.refresh()
        await al.sender.flush()
        assert kinds(rx) == ["canary.down:c1"] and rx.delivered[0].json["data"]["resent"] is True
        await al.stop()


async def test_an_end_written_as_the_look_reads_is_not_followed_by_the_page(store: Store,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Another replica writes and delivers c1's recovery between the look's read of the alert's last word (the page
    given up on) and its making the page due: the page is not sent after the end, the receiver's incident left open
    for good."""
    now = [T0]
    with Receiver() as rx:
        al = alerting(store, rx, "webhook", now)
        await al.publish([health("canary.down")])
        await give_up(al, rx, now)
        [down] = al.outbox.query(limit=10)
        answers = outbox_resend._answers_now

        def end_meanwhile(s: Session, r: NotificationRow) -> bool:
            with Session(store.engine) as other:  # the other replica, its own transaction
                other.add(NotificationRow(id="end-1", message_id="end-1", sink="s", kind="canary.recovered",
                                          group_key=down.group_key, signal=down.signal, payload={"canary": "c1"},
                                          created_at=now[0], next_attempt_at=now[0], status="delivered",
                                          attempts=1, delivered_at=now[0]))
                other.commit()
            return answers(s, r)

        monkeypatch.setattr(outbox_resend, "_answers_now", end_meanwhile)
        assert al.outbox.resend_given_up_firing("s", now[0]) == ([], False)
        await al.sender.flush()
        assert kinds(rx) == [] and al.outbox.get(down.id).status == "dead"  # type: ignore[union-attr]
        await al.stop()


async def test_a_receiver_down_for_days_is_logged_once_not_at_every_look(store: Store,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    """Each periodic look makes the page due once more and its re-send fails: one line for the outage (the sink's
    failing deliveries are logged once until it delivers again), not one a `resend_interval` for days."""
    now = [T0]
    with Receiver() as rx:
        al = alerting(store, rx, "webhook", now)
        await al.publish([health("canary.down")])
        await give_up(al, rx, now)
        rx.fail(503)
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="monitor.alerts"):
            for _ in range(3):
                now[0] += timedelta(seconds=al.cfg.resend_interval)
                await al.sender.refresh()
                await al.sender.flush()
        assert len(rx.requests) >= 3 and kinds(rx) == []  # tried at each look, as documented
        loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
        assert len(loud) <= 1, loud
        await al.stop()


async def test_an_error_drift_given_up_on_is_not_re_sent_while_its_pair_is_paged_down(store: Store) -> None:
    """c1's error rate rose (drift, given up on: the receiver was down), then c1 went down, paged there: the drift is
    what the canary.down holds (one page per outage), not re-sent beside it."""
    now = [T0]
    with Receiver() as rx:
        al = alerting(store, rx, "webhook", now)
        await error_drift_given_up_then_down(al, rx, now)
        await al.sender.flush()
        await al.sender.refresh()
        await al.sender.flush()
        assert kinds(rx) == ["canary.down:c1"]
        await al.stop()


async def test_an_error_drift_and_the_outage_s_page_both_given_up_on_are_one_page(store: Store) -> None:
    """The drift was given up on before c1 went down (nothing waiting for the canary.down to hold), then the page
    too: the receiver back, the page is re-sent, the drift is not beside it."""
    now = [T0]
    with Receiver() as rx:
        al = alerting(store, rx, "webhook", now)
        await error_drift_given_up_then_down(al, rx, now)
        await give_up(al, rx, now)
        await al.sender.refresh()
        await al.sender.flush()
        await al.sender.refresh()
        await al.sender.flush()
        assert kinds(rx) == ["canary.down:c1"]
        await al.stop()


def test_a_drift_and_a_page_given_up_on_written_at_once_are_not_both_kept_back(store: Store) -> None:
    """Each would keep the other back (the canary.down told by the drift written with it, the drift held by the
    canary.down written with it): the receiver would never hear of the outage. One of them goes."""
    with Session(store.engine) as s:
        for kind, signal in (("drift.opened", "error"), ("canary.down", "health")):
            s.add(NotificationRow(id=f"r-{kind}", message_id=f"m-{kind}", sink="s", kind=kind, group_key="c1/t",
                                  signal=signal, payload={"canary": "c1", "target": "t"}, created_at=T0,
                                  next_attempt_at=T0, status="dead", attempts=2,
                                  last_error="gave up after 2 attempts: HTTP 503"))
        s.commit()
    ids, _ = Outbox(store.engine).resend_given_up_firing("s", T0)
    assert len(ids) == 1


def refusing(rx: Receiver, monkeypatch: pytest.MonkeyPatch, times: int | None = None) -> None:
    """The receiver answers 503 to c1's messages alone (`times` of them, or for good) and takes every other one."""
    answer, refused = rx._answer, [0]

    def refuse_c1(method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str]]:
        status, extra = answer(method, path, headers, body)
        if b'"canary":"c1"' in body.replace(b" ", b"") and (times is None or refused[0] < times):
            refused[0] += 1
            rx.requests[-1].status = 503
            return 503, {}
        return status, extra

    monkeypatch.setattr(rx, "_answer", refuse_c1)


async def rounds(al: Alerting, now: list[datetime], n: int) -> None:
    """Another pair's page taken at each round, then the sink's periodic look a `resend_interval` later."""
    for i in range(2, 2 + n):
        await al.publish([health("canary.down", canary=f"c{i}", at=now[0])])
        await al.sender.flush()
        now[0] += timedelta(seconds=al.cfg.resend_interval)
        await al.sender.refresh()
        await al.sender.flush()


async def test_a_page_the_receiver_refuses_for_good_is_re_sent_three_times_not_at_every_look(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The receiver answers 503 to c1's page alone, for good, and takes every other message: given up on, the page
    is sent again (marked resent) at most 3 times, a resend_interval apart, then not again: not at each later
    delivery or look while the alert fires (it was, for good)."""
    now = [T0]
    with Receiver() as rx:
        refusing(rx, monkeypatch)
        al = alerting(store, rx, "webhook", now)
        await al.publish([health("canary.down")])
        await give_up(al, rx, now)
        tried = len(rx.requests)
        await rounds(al, now, 6)
        again = [r for r in rx.requests[tried:] if r.status == 503]
        assert len(again) == 3 and all(r.json["data"]["resent"] is True for r in again)
        assert kinds(rx) == [f"canary.down:c{i}" for i in range(2, 8)]
        [row] = [n for n in al.outbox.query(limit=10) if n.group_key == "c1/t"]
        assert row.status == "dead" and RESENT_REFUSED in (row.last_error or ""), row.last_error
        await al.stop()


async def test_a_re_send_refused_once_in_a_burst_is_delivered_a_look_later(store: Store,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: a re-send refused once (a 429 in the burst after an outage) while the receiver took the
    other messages was never sent again. It is sent at a later look, a resend_interval on."""
    now = [T0]
    with Receiver() as rx:
        al = alerting(store, rx, "webhook", now)
        await al.publish([health("canary.down")])
        await give_up(al, rx, now)
        refusing(rx, monkeypatch, times=1)
        await rounds(al, now, 3)
        assert kinds(rx)[0] == "canary.down:c2" and "canary.down:c1" in kinds(rx), kinds(rx)
        [page] = [r for r in rx.requests if r.status == 200 and r.json["data"].get("canary") == "c1"]
        assert page.json["data"]["resent"] is True
        await al.stop()


async def test_a_stale_page_whose_pair_recovered_without_its_end_stops_the_sink_looking(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A canary.down given up on before the release that re-sends them, its pair read then as not down at a restart:
    c1 recovered (3 runs answered since) and no canary.recovered was written. It is not re-sent, and no longer keeps
    the sink looking for re-sends at each delivery; a pair answering one run of its outage still does."""
    now = [T0]
    with Session(store.engine) as s:
        s.add(NotificationRow(id="old-down", message_id="old-down", sink="s", kind="canary.down", group_key="c1/t",
                              signal="health", payload={"canary": "c1", "target": "t"},
                              created_at=T0 - timedelta(days=30), next_attempt_at=T0 - timedelta(days=30),
                              status="dead", attempts=9, last_error="gave up after 9 attempts: HTTP 503"))
        for n in range(4):  # the outage's failed run, then 3 answered
            s.add(ObservationRow(id=f"o{n}", run_id=f"r{n}", canary="c1", target="t", provider="openai",
                                 request_model="m", started_at=T0 - timedelta(days=29 - n),
                                 error_type="timeout" if n == 0 else None))
        s.commit()
    looks = []
    resend = Outbox.resend_given_up_firing

    def counted(self: Outbox, sink: str, at: datetime) -> tuple[list[str], bool]:
        looks.append(sink)
        return resend(self, sink, at)

    monkeypatch.setattr(Outbox, "resend_given_up_firing", counted)
    with Receiver() as rx:
        al = alerting(store, rx, "webhook", now)  # a start: every sink looks at its first delivery
        for i in range(2, 5):
            await al.publish([health("canary.down", canary=f"c{i}", at=now[0])])
            await al.sender.flush()
        assert kinds(rx) == ["canary.down:c2", "canary.down:c3", "canary.down:c4"]
        assert len(looks) == 1  # the start's, not one at each delivery
        await al.stop()


async def test_a_restart_while_the_receiver_is_still_down_re_sends_it_once_it_is_back(store: Store) -> None:
    """The daemon restarts while the receiver is still down: its first look's re-send fails as the receiver takes
    nothing (not a refusal of that one message), so the page is sent once the receiver is back."""
    now = [T0]
    with Receiver() as rx:
        al = alerting(store, rx, "webhook", now)
        await al.publish([health("canary.down")])
        await give_up(al, rx, now)
        await al.stop()
        rx.fail(503)  # still down at the restart
        again = alerting(store, rx, "webhook", now)  # the restart (its loops not started: flushed here)
        await again.sender.refresh()
        await again.sender.flush()
        assert rx.delivered == []
        rx.heal()
        now[0] += timedelta(seconds=again.cfg.resend_interval)
        await again.sender.refresh()
        await again.sender.flush()
        assert kinds(rx) == ["canary.down:c1"] and rx.delivered[0].json["data"]["resent"] is True
        await again.stop()

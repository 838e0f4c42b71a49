"""A sink's latest word on an alert given up on (`retry.give_up_after` passed with the receiver down): a reload does
not re-page a firing one (Alertmanager gets it re-sent every `resend_interval`, as it expects of a client), and a
push receiver gets a resolve given up on once more when it takes a message again. Real local receivers, over SQLite
and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session

from monitor.alerts import AlertEvent, AlertsConfig, build_alerting
from monitor.alerts.service import Alerting
from monitor.store import Store
from tests.support.receiver import Receiver

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def alerting(store: Store, rx: Receiver, sink_type: str, now: list[datetime]) -> Alerting:
    url = rx.url + ("/hook" if sink_type == "webhook" else "")
    cfg = AlertsConfig.model_validate({"resend_interval": "1m",
                                       "sinks": [{"name": "s", "type": sink_type, "url": url}]})
    return build_alerting(cfg, store, environ={}, now=lambda: now[0])


def health(kind: str, canary: str = "c1", at: datetime = T0) -> AlertEvent:
    return AlertEvent(kind=kind, canary=canary, target="t", signal="health", severity="critical", opened_at=at,
                      summary=f"{canary}@t: every call fails", evidence={"signal": "health"})


def kinds(rx: Receiver, since: int = 0) -> list[str]:
    out = []
    for r in rx.delivered[since:]:
        body = r.json
        if isinstance(body, list):  # Alertmanager: alerts, firing (endsAt in the future) or not
            out += [f"{a['labels']['alertname']}:{a['labels']['canary']}" for a in body]
        else:
            out.append(f"{body['type']}:{body['data']['canary']}")
    return out


async def give_up(al: Alerting, rx: Receiver, now: list[datetime]) -> None:
    """Flush with the receiver failing, then again past `retry.give_up_after`: what waits is given up on."""
    rx.fail(503)
    await al.sender.flush()
    now[0] += timedelta(seconds=al.cfg.retry.give_up_after + 60)
    await al.sender.flush()
    rx.heal()


async def resolve_given_up(store: Store, rx: Receiver, now: list[datetime]) -> Alerting:
    """A webhook told c1 is down, then down past `retry.give_up_after` as the canary recovered: the resolve given
    up on."""
    al = alerting(store, rx, "webhook", now)
    await al.publish([health("canary.down")])
    await al.sender.flush()
    now[0] += timedelta(minutes=1)
    await al.publish([health("canary.recovered", at=now[0])])
    await give_up(al, rx, now)
    return al


async def down_with_error_drift_given_up(al: Alerting, rx: Receiver, now: list[datetime]) -> None:
    """c1 down, every call failing, its error drift held behind the canary.down; then both given up on with the
    receiver down: the canary.down's give-up released the drift it held."""
    await al.publish([health("canary.down")])
    al.inhibitor.saw("c1", "t", answered=False)
    with Session(al.outbox.engine) as s:
        al.enqueue(s, [AlertEvent(kind="drift.opened", canary="c1", target="t", signal="error", event_id="ev-1",
                                  opened_at=T0)])
        s.commit()
    await give_up(al, rx, now)


async def test_a_reload_does_not_re_page_a_canary_down_given_up_on(store: Store) -> None:
    """The webhook's canary.down was given up on: each reload (`ensure_firing` of the pairs still down) wrote a new
    one, a page at every reload, for as long as the canary stayed down."""
    now = [T0]
    with Receiver() as rx:
        al = alerting(store, rx, "webhook", now)
        await al.publish([health("canary.down")])
        await give_up(al, rx, now)
        assert [(n.kind, n.status) for n in al.outbox.query(limit=10)] == [("canary.down", "dead")]
        for _ in range(2):  # two reloads
            assert await al.ensure_firing([health("canary.down", at=now[0])]) == []
            await al.sender.flush()
        assert kinds(rx) == []
        await al.publish([health("canary.recovered", at=now[0])])  # the page ends as before
        await al.sender.flush()
        assert kinds(rx) == ["canary.recovered:c1"]
        await al.stop()


async def test_alertmanager_gets_a_canary_down_given_up_on_at_its_re_sends_not_at_a_reload(store: Store) -> None:
    """Alertmanager was down past `retry.give_up_after` as the canary went down: the alert was never re-sent (not
    told), and each reload wrote it anew. Now the re-send every `resend_interval` carries it, as Alertmanager
    expects of a client, and a reload writes nothing; the recovery ends it."""
    now = [T0]
    with Receiver() as rx:
        al = alerting(store, rx, "alertmanager", now)
        await al.publish([health("canary.down")])
        await give_up(al, rx, now)
        assert await al.ensure_firing([health("canary.down", at=now[0])]) == []
        await al.sender.flush()
        assert kinds(rx) == []
        assert await al.sender.refresh() == 1
        assert kinds(rx) == ["LLMMonitorCanaryDown:c1"]
        [alert] = rx.delivered[-1].json
        assert alert["startsAt"] == T0.isoformat()
        await al.publish([health("canary.recovered", at=now[0])])
        await al.sender.flush()
        sent = len(rx.delivered)
        assert rx.delivered[-1].json[0]["endsAt"] == now[0].isoformat()
        assert await al.sender.refresh() == 0 and len(rx.delivered) == sent
        await al.stop()


async def test_a_retired_pair_whose_canary_down_was_given_up_on_is_no_longer_re_sent(store: Store) -> None:
    """A reload removed the pair: its canary.down given up on (re-sent to Alertmanager now) is resolved too, else it
    was re-sent for good."""
    now = [T0]
    with Receiver() as rx:
        al = alerting(store, rx, "alertmanager", now)
        await al.publish([health("canary.down")])
        await give_up(al, rx, now)
        await al.retire([])
        await al.sender.flush()
        assert rx.delivered[-1].json[0]["labels"]["alertname"] == "LLMMonitorCanaryDown"
        assert rx.delivered[-1].json[0]["endsAt"] == now[0].isoformat()
        sent = len(rx.delivered)
        assert await al.sender.refresh() == 0 and len(rx.delivered) == sent
        await al.stop()


async def test_a_push_receiver_gets_a_resolve_given_up_on_once_it_takes_a_message_again(store: Store) -> None:
    """The webhook receiver was down past `retry.give_up_after` as the canary recovered: its page stayed open for
    good. Now the resolve goes again with the next message it takes (once: given up on again, it stays so)."""
    now = [T0]
    with Receiver() as rx:
        al = await resolve_given_up(store, rx, now)
        assert kinds(rx) == ["canary.down:c1"]
        await al.publish([health("canary.down", canary="c2", at=now[0])])  # the receiver is back
        await al.sender.flush()
        assert kinds(rx) == ["canary.down:c1", "canary.down:c2", "canary.recovered:c1"]
        # Given up on again (one try: its give_up_after is long past): not tried again at the next message.
        await al.publish([health("canary.down", canary="c3", at=now[0])])
        await al.sender.flush()
        await al.publish([health("canary.recovered", canary="c1", at=now[0])])  # no page open there: not sent
        assert kinds(rx)[-1] == "canary.down:c3"
        await al.stop()


async def test_a_resolve_given_up_on_that_fails_again_is_not_tried_for_ever(store: Store) -> None:
    now = [T0]
    with Receiver() as rx:
        al = await resolve_given_up(store, rx, now)
        recovered = [n for n in al.outbox.query(limit=10) if n.kind == "canary.recovered"]
        await al.publish([health("canary.down", canary="c2", at=now[0])])
        rx.fail(200, times=1)  # c2's canary.down is taken; the resolve's one more try is not
        rx.fail(400, times=1)
        await al.sender.flush()
        [again] = [n for n in al.outbox.query(limit=10) if n.id == recovered[0].id]
        assert again.status == "dead" and again.attempts == recovered[0].attempts + 1
        for canary in ("c3", "c4"):
            await al.publish([health("canary.down", canary=canary, at=now[0])])
            await al.sender.flush()
        assert kinds(rx) == ["canary.down:c1", "canary.down:c2", "canary.down:c3", "canary.down:c4"]
        await al.stop()


async def test_a_restart_reads_a_pair_down_whose_canary_down_alertmanager_is_re_sent(store: Store) -> None:
    """Alertmanager's canary.down was given up on, and is re-sent there as firing since. A restart (or take-over)
    reads which pairs are down from the outbox: it read the live rows alone, so the pair was not down, its
    recovery never came, and Alertmanager had the alert re-sent as firing for good."""
    now = [T0]
    with Receiver() as rx:
        al = alerting(store, rx, "alertmanager", now)
        await al.publish([health("canary.down")])
        await give_up(al, rx, now)
        await al.stop()
        again = alerting(store, rx, "alertmanager", now)  # the restart
        await again.start([("c1", "t")])
        assert [n.kind for n in again.outbox.firing("s")] == ["canary.down"]  # re-sent as firing
        assert again.open_pairs("canary.down") == {("c1", "t")}  # so the health watch sends its recovery
        await again.publish([health("canary.recovered", at=now[0])])
        await again.sender.flush()
        assert again.outbox.firing("s") == []
        await again.stop()


async def test_an_end_goes_to_alertmanager_re_sent_a_canary_down_given_up_on_though_no_route_names_it(
        store: Store) -> None:
    """Alertmanager's canary.down was given up on, and is re-sent there as firing since; a reload then routed the
    canary's alerts elsewhere. An end goes to the sinks told its alert fires too, read from the live rows alone: the
    recovery skipped Alertmanager, which had the alert re-sent as firing for good."""
    now = [T0]
    with Receiver() as rx:
        sinks = [{"name": "am", "type": "alertmanager", "url": rx.url},
                 {"name": "hook", "type": "webhook", "url": rx.url + "/hook"}]
        cfg = AlertsConfig.model_validate({"resend_interval": "1m", "sinks": sinks,
                                           "routes": [{"match": {"kind": ["canary.*"]}, "sinks": ["am"]}]})
        al = build_alerting(cfg, store, environ={}, now=lambda: now[0])
        await al.publish([health("canary.down")])
        await give_up(al, rx, now)
        assert [n.kind for n in al.outbox.firing("am")] == ["canary.down"]  # re-sent as firing
        al.reload(AlertsConfig.model_validate({**cfg.model_dump(), "routes": [
            {"match": {"kind": ["canary.*"]}, "sinks": ["hook"]}]}), environ={})
        await al.publish([health("canary.recovered", at=now[0])])
        await al.sender.flush()
        assert al.outbox.firing("am") == []
        await al.stop()


async def test_alertmanager_re_sent_a_canary_down_given_up_on_keeps_holding_the_outages_error_drift(
        store: Store) -> None:
    """A canary.down given up on released the error drift it held there, the sink's only word of the outage. At
    Alertmanager it is re-sent as firing since: the drift sent too was a second page for one outage."""
    now = [T0]
    with Receiver() as rx:
        al = alerting(store, rx, "alertmanager", now)
        await down_with_error_drift_given_up(al, rx, now)
        await al.sender.flush()
        await al.sender.refresh()
        assert {n.signal: n.status for n in al.outbox.query(limit=10)} == {"health": "dead", "error": "held"}
        assert kinds(rx) == ["LLMMonitorCanaryDown:c1"]
        await al.stop()

"""Alertmanager: pushed alerts, periodic re-send while firing, resolve with endsAt (also against a real one)."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from monitor.alerts import AlertEvent, AlertsConfig, build_alerting
from monitor.domain import utcnow
from monitor.store import Store
from tests.support.prom import start_alertmanager
from tests.support.receiver import Receiver


def cfg(url: str) -> AlertsConfig:
    return AlertsConfig.model_validate({"resend_interval": "1m",
                                        "sinks": [{"name": "am", "type": "alertmanager", "url": url}]})


def drift(kind: str, signal: str, at: datetime, resolved: datetime | None = None) -> AlertEvent:
    return AlertEvent(kind=kind, canary="kill-python", target="gpt-mini", signal=signal, severity="warning",
                      event_id=f"ev-{signal}", opened_at=at, resolved_at=resolved,
                      evidence={"baseline_value": 0.02, "current_value": 0.4, "p_value": 0.0001})


async def test_firing_alerts_are_re_sent_and_resolved_ones_are_not(sqlite_store: Store) -> None:
    t0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    now = [t0]
    with Receiver() as rx:
        al = build_alerting(cfg(rx.url), sqlite_store, environ={}, now=lambda: now[0])
        await al.publish([drift("drift.opened", "refusal_rate", t0), drift("drift.opened", "length", t0)])
        await al.sender.flush()
        now[0] = t0 + timedelta(minutes=3)
        await al.publish([drift("drift.resolved", "length", t0, resolved=now[0])])
        await al.sender.flush()
        assert [r.path for r in rx.requests] == ["/api/v2/alerts"] * 3
        [resolved] = rx.requests[2].json
        assert resolved["labels"]["signal"] == "length" and resolved["endsAt"] == now[0].isoformat()
        now[0] = t0 + timedelta(minutes=4)
        assert await al.sender.refresh() == 1
        [still] = rx.requests[3].json
        assert still["labels"] == {"alertname": "LLMMonitorDrift", "canary": "kill-python", "target": "gpt-mini",
                                   "signal": "refusal_rate", "severity": "warning"}
        assert still["startsAt"] == t0.isoformat()
        assert datetime.fromisoformat(still["endsAt"]) == now[0] + timedelta(minutes=4)
        await al.stop()


def _active(am_url: str) -> list[dict]:
    return httpx.get(am_url + "/api/v2/alerts", params={"active": "true"}, timeout=5).json()


def _wait(pred, timeout: float = 15.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.1)
    raise TimeoutError("condition not met")


@pytest.mark.slow
async def test_against_a_real_alertmanager(tmp_path: Path, sqlite_store: Store) -> None:
    conf = "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n"
    with start_alertmanager(tmp_path, conf) as am:
        al = build_alerting(cfg(am.url), sqlite_store, environ={})
        opened = utcnow() - timedelta(seconds=30)
        await al.publish([drift("drift.opened", "refusal_rate", opened)])
        assert (await al.sender.flush()).delivered == 1
        [a] = _wait(lambda: _active(am.url))
        assert a["labels"]["alertname"] == "LLMMonitorDrift" and a["labels"]["signal"] == "refusal_rate"
        assert a["status"]["state"] == "active" and a["generatorURL"].endswith("/api/drift/ev-refusal_rate")
        assert await al.sender.refresh() == 1
        assert len(_active(am.url)) == 1  # re-sending the same labels keeps one alert
        await al.publish([drift("drift.resolved", "refusal_rate", opened, resolved=utcnow())])
        assert (await al.sender.flush()).delivered == 1
        _wait(lambda: _active(am.url) == [])
        assert await al.sender.refresh() == 0
        await al.stop()


async def test_an_alert_whose_resolve_was_given_up_on_is_not_re_sent_as_firing(sqlite_store: Store) -> None:
    """Alertmanager was down past `retry.give_up_after` as the alert resolved: the alert still ended. Re-sent as
    firing at every `resend_interval` once Alertmanager was back, it was active there again for as long as the outbox
    kept its rows (`storage.retention_days`), paging for an event long resolved; left out, Alertmanager ends it at
    the endsAt of its last re-send."""
    t0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    now = [t0]
    with Receiver() as rx:
        al = build_alerting(cfg(rx.url), sqlite_store, environ={}, now=lambda: now[0])
        await al.publish([drift("drift.opened", "refusal_rate", t0), drift("drift.opened", "length", t0)])
        await al.sender.flush()
        now[0] = t0 + timedelta(minutes=3)
        rx.fail(503)  # down until healed
        await al.publish([drift("drift.resolved", "length", t0, resolved=now[0])])
        await al.sender.flush()
        now[0] += timedelta(seconds=al.cfg.retry.give_up_after + 60)
        await al.sender.flush()  # given up on
        assert [(r.kind, r.status) for r in al.outbox.latest_states() if r.signal == "length"] == [
            ("drift.opened", "delivered")]  # the resolve is dead: the latest live word at the sink is "firing"
        rx.heal()
        sent = len(rx.requests)
        assert await al.sender.refresh() == 1
        [still] = rx.requests[sent].json  # only the alert still firing
        assert still["labels"]["signal"] == "refusal_rate"
        await al.stop()


async def test_a_retired_alert_whose_resolve_was_given_up_on_fires_again_when_its_pair_is_back(
        sqlite_store: Store) -> None:
    """Found by review: a reload removed the pair while Alertmanager was down past `retry.give_up_after`, so the
    resolve `retire` wrote was given up on; Alertmanager, no longer re-sent the alert, ended it. A reload adding the
    pair back with its event still open read the alert as still firing there (its latest live row), so nothing
    was written, and the open event was never at Alertmanager again."""
    t0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    now = [t0]
    with Receiver() as rx:
        al = build_alerting(cfg(rx.url), sqlite_store, environ={}, now=lambda: now[0])
        opened = drift("drift.opened", "length", t0)
        await al.publish([opened])
        await al.sender.flush()
        rx.fail(503)
        now[0] += timedelta(minutes=1)
        await al.retire([])  # the pair removed: its alert resolved
        await al.sender.flush()
        now[0] += timedelta(seconds=al.cfg.retry.give_up_after + 60)
        await al.sender.flush()  # given up on
        rx.heal()
        await al.retire([("kill-python", "gpt-mini")])  # the pair is back, its event still open
        await al.ensure_firing([opened])
        await al.sender.flush()
        sent = len(rx.requests)
        await al.sender.refresh()
        assert [a["labels"]["signal"] for r in rx.requests[sent:] for a in r.json] == ["length"]
        await al.stop()


async def test_firing_alerts_that_cannot_be_rendered_are_one_log_line_per_outage_not_a_traceback(
        sqlite_store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """A re-send whose render raises (a row this build cannot render) logs one warning naming the sink, with the
    secret URL (read from url_env) redacted, until it renders again; the loop goes on."""
    t0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    with Receiver() as rx:
        url = f"{rx.url}/tok3nSecretPath"
        secret_url = AlertsConfig.model_validate({"resend_interval": "1m", "sinks": [
            {"name": "am", "type": "alertmanager", "url_env": "AM_URL"}]})
        al = build_alerting(secret_url, sqlite_store, environ={"AM_URL": url}, now=lambda: t0)
        await al.publish([drift("drift.opened", "refusal_rate", t0)])
        await al.sender.flush()
        sink = al.sender.sinks["am"]
        good = sink.refresh

        def broken(firing: list, now: datetime) -> None:  # type: ignore[type-arg]
            raise ValueError(f"bad opened_at in a row for {url}")

        sink.refresh = broken  # type: ignore[method-assign]
        caplog.set_level(logging.INFO, "monitor.alerts")
        caplog.clear()
        assert await al.sender.refresh_sink("am") == 0
        assert await al.sender.refresh_sink("am") == 0
        [line] = [r for r in caplog.records if r.name == "monitor.alerts"]
        assert line.levelname == "WARNING" and line.sink == "am" and "ValueError" in line.error  # type: ignore[attr-defined]
        assert "tok3nSecretPath" not in str(line.__dict__) and not line.exc_info
        sink.refresh = good  # type: ignore[method-assign]
        assert await al.sender.refresh_sink("am") == 1
        assert "render again" in caplog.records[-1].getMessage()
        await al.stop()


async def test_a_410_to_the_periodic_re_send_disables_the_sink_as_one_to_a_first_send_does(
        sqlite_store: Store, caplog: pytest.LogCaptureFixture) -> None:
    # Found by QA: a 410 Gone to Alertmanager's re-send of the firing alerts was a warning, and the re-send went on
    # every resend_interval for good; a 410 to a first send disables the sink until the config is reloaded.
    from prometheus_client import CollectorRegistry

    from monitor.telemetry.metrics import Metrics

    t0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    now = [t0]
    registry = CollectorRegistry()
    with Receiver() as rx:
        al = build_alerting(cfg(rx.url), sqlite_store, environ={}, now=lambda: now[0], metrics=Metrics(registry))
        await al.publish([drift("drift.opened", "refusal_rate", t0)])
        assert (await al.sender.flush()).delivered == 1
        rx.fail(410)
        now[0] = t0 + timedelta(minutes=1)
        assert await al.sender.refresh() == 1
        assert "am" in al.sender.disabled and "410 Gone" in caplog.text
        assert registry.get_sample_value("llm_monitor_notification_sink_disabled", {"sink": "am"}) == 1
        now[0] = t0 + timedelta(minutes=2)
        assert await al.sender.refresh() == 0  # no more re-sends to the gone endpoint
        await al.publish([drift("drift.opened", "length", now[0])])
        assert (await al.sender.flush()).dead == 1  # nor first sends: dropped, as after a 410 to one
        assert len(rx.requests) == 2
        al.sender.set_sinks(al.sender.sinks)  # a reload re-enables it
        assert "am" not in al.sender.disabled
        await al.stop()


async def test_a_re_send_answered_429_or_503_waits_for_the_retry_after_the_receiver_asked(sqlite_store: Store) -> None:
    # Found by QA: a periodic re-send of the firing alerts that Alertmanager (or the proxy before it) answered 503 with
    # Retry-After: 150 was made again at the next resend_interval (1 m), sooner than asked; a first send's retry
    # honours it (CONVENTIONS: honour Retry-After on 429/503), the re-sends did not.
    t0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    now = [t0]
    with Receiver() as rx:
        al = build_alerting(cfg(rx.url), sqlite_store, environ={}, now=lambda: now[0])
        await al.publish([drift("drift.opened", "refusal_rate", t0)])
        await al.sender.flush()
        assert await al.sender.refresh_due("am") == 1  # the first look: due
        rx.fail(503, times=1, retry_after="150")
        now[0] = t0 + timedelta(minutes=1)
        assert await al.sender.refresh_due("am") == 1  # refused: try again in 150 s, not 60
        for seconds in (120, 180, 209):
            now[0] = t0 + timedelta(seconds=seconds)
            assert await al.sender.refresh_due("am") == 0, seconds
        now[0] = t0 + timedelta(seconds=210)
        assert await al.sender.refresh_due("am") == 1
        now[0] = t0 + timedelta(seconds=270)  # delivered: every resend_interval again
        assert await al.sender.refresh_due("am") == 1
        assert [r.status for r in rx.requests] == [200, 200, 503, 200, 200]
        await al.stop()


async def test_a_re_send_s_retry_after_never_lets_the_alerts_expire_nor_shortens_the_resend_interval(
        sqlite_store: Store) -> None:
    # A pushed alert is valid 4 resend_intervals on (its endsAt): waited out longer than 3, Alertmanager would resolve
    # it meanwhile; a Retry-After of 0 is no licence to re-send sooner than resend_interval.
    t0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    now = [t0]
    with Receiver() as rx:
        al = build_alerting(cfg(rx.url), sqlite_store, environ={}, now=lambda: now[0])
        await al.publish([drift("drift.opened", "refusal_rate", t0)])
        await al.sender.flush()
        rx.fail(429, times=1, retry_after="0")
        assert await al.sender.refresh_due("am") == 1
        now[0] = t0 + timedelta(seconds=30)
        assert await al.sender.refresh_due("am") == 0
        rx.fail(503, times=1, retry_after="86400")  # a day: capped at 3 resend_intervals
        now[0] = t0 + timedelta(minutes=1)
        assert await al.sender.refresh_due("am") == 1
        now[0] = t0 + timedelta(minutes=3, seconds=59)
        assert await al.sender.refresh_due("am") == 0
        now[0] = t0 + timedelta(minutes=4)
        assert await al.sender.refresh_due("am") == 1
        await al.stop()


async def test_failing_re_sends_are_logged_once_per_outage(sqlite_store: Store,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    # Found by QA: each failed periodic re-send of the firing alerts was a warning, one a resend_interval (60 an hour
    # while Alertmanager was down), where a failing delivery is logged once per sink and outage.
    t0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    now = [t0]
    with Receiver() as rx:
        al = build_alerting(cfg(rx.url), sqlite_store, environ={}, now=lambda: now[0])
        await al.publish([drift("drift.opened", "refusal_rate", t0)])
        await al.sender.flush()
        caplog.set_level(logging.DEBUG, "monitor.alerts")
        caplog.clear()

        def said() -> list[tuple[str, str]]:
            return [(r.levelname, r.getMessage()) for r in caplog.records
                    if r.name == "monitor.alerts" and r.levelno >= logging.INFO]

        rx.fail(503, times=3)
        for _ in range(3):
            assert await al.sender.refresh_sink("am") == 1
        assert said() == [("WARNING", "re-sending firing alerts failed (logged once until the sink delivers again)")]
        caplog.clear()
        assert await al.sender.refresh_sink("am") == 1
        assert said() == [("INFO", "alert sink am delivers again")]
        caplog.clear()
        rx.fail(503, times=1)  # the next outage is logged again
        assert await al.sender.refresh_sink("am") == 1
        assert [level for level, _ in said()] == ["WARNING"]
        await al.stop()

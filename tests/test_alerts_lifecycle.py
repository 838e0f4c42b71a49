"""Alerts that must end: a canary down before a restart recovers after it; alerts of removed canaries resolve."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.alerts import AlertEvent, AlertsConfig, build_alerting
from monitor.app import App
from monitor.config import load_config
from monitor.domain import utcnow
from monitor.drift.events import BEHAVIOUR
from monitor.sim import SimServer
from monitor.store import Store
from monitor.store.drift_repo import DriftRepository
from tests.conftest import write_config
from tests.support.daemon import free_port
from tests.support.prom import BLACKHOLE, active_alerts, start_alertmanager
from tests.support.receiver import Receiver
from tests.test_alerts_model import model_event

PROBES = """\
canaries:
  - id: hello
    messages: [{role: user, content: "Say hello."}]
    samples: 2
    params: {temperature: 0, max_tokens: 20}
    schedule: {every: 5m}
"""
SECOND = """\
  - id: bye
    messages: [{role: user, content: "Say goodbye."}]
    samples: 2
    params: {temperature: 0, max_tokens: 20}
    schedule: {every: 5m}
"""


def alerts(url: str) -> str:
    return f"alerts:\n  cooldown: 30m\n  group_wait: 0s\n  sinks: [{{name: hook, type: webhook, url: \"{url}/hook\"}}]\n"


def target(base_url: str) -> str:
    return f"  - {{id: gpt, provider: openai, base_url: '{base_url}', model: sim-gpt, api_key_env: K}}"


async def _job(app: App) -> None:
    for canary, tgt in app.config.pairs():
        # what the scheduler runs (the probe, then the health watch), in a task of its own as the scheduler does
        await asyncio.create_task(app._run_job(canary, tgt))


async def test_a_canary_down_before_a_restart_recovers_after_it(steady_sim: SimServer, tmp_path: Path) -> None:
    with Receiver() as rx:
        dead_end = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: every call fails
        cfg = load_config(write_config(tmp_path, target(dead_end), PROBES, extra=alerts(rx.url)), environ={"K": "k"})
        app = App(cfg, environ={"K": "k"}, serve_http=False)
        await app.start(schedule=False)
        try:
            for _ in range(3):
                await _job(app)
            [down] = await asyncio.to_thread(rx.wait_for, 1)
        finally:
            await app.stop()  # SIGTERM
        assert down.json["type"] == "canary.down"
        # the target is fixed, the daemon starts again
        cfg = load_config(write_config(tmp_path, target(steady_sim.openai_base_url), PROBES, extra=alerts(rx.url)),
                          environ={"K": "k"})
        app = App(cfg, environ={"K": "k"}, serve_http=False)
        await app.start(schedule=False)
        try:
            for _ in range(3):  # three runs with an answer recover it
                await _job(app)
            _, recovered = await asyncio.to_thread(rx.wait_for, 2)
            assert app.alerting is not None and app.alerting.outbox.open_alerts() == []
        finally:
            await app.stop()
        assert recovered.json["type"] == "canary.recovered"
        assert recovered.json["data"]["canary"] == "hello" and recovered.json["data"]["target"] == "gpt"


async def test_a_canary_going_down_and_recovering_is_one_log_line_each_without_alert_sinks(
        steady_sim: SimServer, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Found by QA: a canary whose every call failed for 3 runs was told to the sinks, but the log said nothing
    # (and a daemon without sinks never noticed), while drift events and spend-cap pauses are logged.
    dead_end = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: every call fails
    cfg = write_config(tmp_path, target(dead_end), PROBES)
    app = App(load_config(cfg, environ={"K": "k"}), environ={"K": "k"}, serve_http=False)
    await app.start(schedule=False)
    caplog.set_level(logging.INFO, logger="monitor.app")
    try:
        for _ in range(4):
            await _job(app)
        write_config(tmp_path, target(steady_sim.openai_base_url), PROBES)
        assert (await app.reload())[0]
        for _ in range(3):
            await _job(app)
    finally:
        await app.stop()
    lines = [(r.levelname, r.getMessage(), getattr(r, "canary", None), getattr(r, "target", None))
             for r in caplog.records if r.getMessage() in ("canary down", "canary recovered")]
    assert lines == [("WARNING", "canary down", "hello", "gpt"), ("INFO", "canary recovered", "hello", "gpt")]
    down = next(r for r in caplog.records if r.getMessage() == "canary down")
    assert "every call failed in 3 consecutive runs (connect x6)" in down.summary


async def test_removing_a_canary_by_reload_resolves_its_alerts(steady_sim: SimServer, tmp_path: Path) -> None:
    with Receiver() as rx:
        path = write_config(tmp_path, target(steady_sim.openai_base_url), PROBES + SECOND, extra=alerts(rx.url))
        app = App(load_config(path, environ={"K": "k"}), environ={"K": "k"}, serve_http=False)
        await app.start(schedule=False)
        try:
            assert app.alerting is not None
            opened = [AlertEvent(kind="drift.opened", canary=c, target="gpt", signal="refusal_rate",
                                 event_id=f"ev-{c}", opened_at=utcnow()) for c in ("hello", "bye")]
            await app.alerting.publish(opened)
            await asyncio.to_thread(rx.wait_for, 2)
            (tmp_path / "probes" / "p.yaml").write_text(PROBES)  # `bye` is removed
            ok, why = await app.reload()
            assert ok, why
            *_, resolved = await asyncio.to_thread(rx.wait_for, 3)
            assert resolved.json["type"] == "drift.resolved" and resolved.json["data"]["canary"] == "bye"
            assert "no longer monitored" in resolved.json["data"]["summary"]
            assert {n.payload["canary"] for n in app.alerting.outbox.open_alerts()} == {"hello"}
            ok, why = await app.reload()  # nothing more to resolve
            assert ok, why
            await app.alerting.sender.flush()
            assert len(rx.requests) == 3
        finally:
            await app.stop()



async def test_the_merged_ends_of_a_removed_canary_say_it_is_no_longer_monitored(steady_sim: SimServer,
                                                                                   tmp_path: Path) -> None:
    """A webhook gets the ends of one canary x target as one message: those a reload writes for a removed pair
    said "2 signals resolved", as if the provider had recovered, where each end says "no longer monitored"."""
    with Receiver() as rx:
        path = write_config(tmp_path, target(steady_sim.openai_base_url), PROBES + SECOND, extra=alerts(rx.url))
        app = App(load_config(path, environ={"K": "k"}), environ={"K": "k"}, serve_http=False)
        await app.start(schedule=False)
        try:
            assert app.alerting is not None
            opened = [AlertEvent(kind="drift.opened", canary="bye", target="gpt", signal=s, event_id=f"ev-{s}",
                                 opened_at=utcnow()) for s in ("refusal_rate", "length_chars")]
            await app.alerting.publish(opened)
            await asyncio.to_thread(rx.wait_for, 1)  # one message: both openings, merged
            (tmp_path / "probes" / "p.yaml").write_text(PROBES)  # `bye` is removed
            ok, why = await app.reload()
            assert ok, why
            _, ended = await asyncio.to_thread(rx.wait_for, 2)
            data = ended.json["data"]
            assert ended.json["type"] == "drift.resolved" and len(data["events"]) == 2
            assert data["summary"] == ("bye @ gpt: 2 signals no longer monitored (removed from the configuration) "
                                       "(refusal_rate, length_chars)")
        finally:
            await app.stop()


async def test_a_canary_removed_and_added_back_fires_its_open_event_again(steady_sim: SimServer,
                                                                          tmp_path: Path) -> None:
    """Removing a canary resolves its alerts at the sinks, but its drift event stays open in the store: when the
    canary comes back (by reload or restart), the event shows on the gauge again and its alert fires anew."""
    with Receiver() as rx:
        path = write_config(tmp_path, target(steady_sim.openai_base_url), PROBES + SECOND, extra=alerts(rx.url))
        store = Store(load_config(path, environ={"K": "k"}).storage.url)
        store.migrate()
        event = model_event(canary="bye", signal="refused", kind=BEHAVIOUR, test="bernoulli_cusum",
                            baseline_value=0.0, current_value=0.4)
        DriftRepository(store.engine).save_events([event.to_json()])  # open, and no sink was told yet
        store.close()

        def kinds() -> list[str]:
            return [r.json["type"] for r in rx.requests]

        app = App(load_config(path, environ={"K": "k"}), environ={"K": "k"}, serve_http=False)
        await app.start(schedule=False)

        def active() -> float | None:
            return app.registry.get_sample_value("llm_monitor_drift_active",
                                                 {"canary": "bye", "target": "gpt", "signal": "refused"})

        try:
            assert app.alerting is not None and active() == 1
            [opened] = await asyncio.to_thread(rx.wait_for, 1)  # an open event with no alert fires at start
            assert opened.json["type"] == "drift.opened" and opened.json["data"]["event_id"] == event.id
            assert (await app.reload())[0]  # nothing changed: nothing is sent again
            (tmp_path / "probes" / "p.yaml").write_text(PROBES)  # `bye` is removed
            assert (await app.reload())[0]
            await asyncio.to_thread(rx.wait_for, 2)
            assert active() is None
            (tmp_path / "probes" / "p.yaml").write_text(PROBES + SECOND)  # and comes back, still drifted
            assert (await app.reload())[0]
            await asyncio.to_thread(rx.wait_for, 3)
            assert active() == 1 and kinds() == ["drift.opened", "drift.resolved", "drift.opened"]
            (tmp_path / "probes" / "p.yaml").write_text(PROBES)
        finally:
            await app.stop()
        for probes, expect in ((PROBES, 4), (PROBES + SECOND, 5)):  # the same by restarts
            (tmp_path / "probes" / "p.yaml").write_text(probes)
            app = App(load_config(path, environ={"K": "k"}), environ={"K": "k"}, serve_http=False)
            await app.start(schedule=False)
            try:
                await asyncio.to_thread(rx.wait_for, expect)
                # the event is open in the store either way; the gauge shows it only while `bye` is configured
                # (a restart, or a standby taking over, with `bye` removed exported it as active: found by review)
                assert app.registry.get_sample_value(
                    "llm_monitor_drift_active", {"canary": "bye", "target": "gpt", "signal": "refused"}) == \
                    (1 if "bye" in probes else None)
            finally:
                await app.stop()
        assert kinds()[3:] == ["drift.resolved", "drift.opened"]
        assert rx.requests[-1].json["data"]["event_id"] == event.id
        # each is a new message to a receiver that deduplicates on webhook-id, not a retry of an earlier one
        assert len({r.message_id for r in rx.requests}) == 5


@pytest.mark.slow
async def test_alerts_of_removed_pairs_resolve_in_a_real_alertmanager(tmp_path: Path, sqlite_store: Store) -> None:
    with start_alertmanager(tmp_path, BLACKHOLE) as am:
        cfg = AlertsConfig.model_validate({"sinks": [{"name": "am", "type": "alertmanager", "url": am.url}]})
        al = build_alerting(cfg, sqlite_store, environ={})
        at = utcnow() - timedelta(minutes=1)
        await al.publish([AlertEvent(kind="drift.opened", canary=c, target="gpt", signal="length",
                                     event_id=f"ev-{c}", opened_at=at) for c in ("hello", "bye")]
                         + [AlertEvent(kind="canary.down", canary="bye", target="gpt", signal="health",
                                       severity="critical", opened_at=at)])
        assert (await al.sender.flush()).delivered == 3
        assert len(active_alerts(am.url, until=lambda a: len(a) == 3)) == 3
        assert len(await al.retire([("hello", "gpt")])) == 2
        assert (await al.sender.flush()).delivered == 2
        [left] = active_alerts(am.url, until=lambda a: len(a) <= 1)
        assert left["labels"]["canary"] == "hello"
        assert await al.sender.refresh() == 1
        assert [n.payload["canary"] for n in al.outbox.firing("am")] == ["hello"]  # bye is not re-asserted
        await al.stop()

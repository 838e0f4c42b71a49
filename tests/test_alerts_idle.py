"""An idle daemon leaves its store alone: the outbox is read when there may be something to send, not on a fixed
2 s beat per sink plus housekeeping, and not after every observation analysed (found by the PostgreSQL soak: about
180 pool checkouts a second for a few dozen canaries, most of them outbox reads woken by each analysis). Counted
with SQLAlchemy's statement events."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace

from prometheus_client import CollectorRegistry
from sqlalchemy import event

from monitor.alerts import AlertEvent, AlertsConfig, build_alerting
from monitor.analysis import Analysis
from monitor.config.models import DriftConfig
from monitor.domain import CallResult, Observation
from monitor.store import Store
from monitor.telemetry.metrics import Metrics
from tests.support.receiver import Receiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def config(url: str, group_wait: str = "0s") -> AlertsConfig:
    return AlertsConfig.model_validate({
        "group_wait": group_wait,
        "sinks": [{"name": "hook", "type": "webhook", "url": url + "/hook", "secret_env": "HOOK_SECRET"}]})


def statements(store: Store) -> list[str]:
    seen: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda _c, _cur, sql, *_: seen.append(sql))
    return seen


async def test_an_idle_sender_reads_the_outbox_less_and_less_often(sqlite_store: Store) -> None:
    with Receiver(secret=SECRET) as rx:
        al = build_alerting(config(rx.url), sqlite_store, environ={"HOOK_SECRET": SECRET}, poll_interval=0.05)
        seen = statements(sqlite_store)
        al.sender.start()
        await asyncio.sleep(1.5)  # 30 poll intervals
        await al.stop()
    # Polling every interval: ~30 claims and ~30 housekeeping rounds (2 reads each), about 90 statements. Backing off
    # (0.05, 0.1, 0.2, 0.4 s ...) and housekeeping every 15 intervals: about 20.
    assert len(seen) <= 30, f"{len(seen)} statements in 30 poll intervals with nothing to send"


async def test_a_row_waiting_for_its_group_is_sent_when_due_not_at_the_next_poll(sqlite_store: Store) -> None:
    with Receiver(secret=SECRET) as rx:
        al = build_alerting(config(rx.url, group_wait="1s"), sqlite_store, environ={"HOOK_SECRET": SECRET},
                            poll_interval=30.0)
        await al.start()
        try:
            await al.publish([AlertEvent(kind="drift.opened", canary="c", target="t", signal="refusal_rate",
                                         event_id="e1")])
            # the claim that found nothing due said when the row falls due: the loop sleeps until then, not 30 s
            await asyncio.wait_for(asyncio.to_thread(rx.wait_for, 1), 10)
        finally:
            await al.stop()


async def test_an_analysis_that_writes_no_notification_does_not_wake_the_sender(sqlite_store: Store) -> None:
    wakes: list[int] = []
    analysis = Analysis(sqlite_store, Metrics(CollectorRegistry()), DriftConfig(baseline_size=5).settings())
    analysis.alerting = SimpleNamespace(sender=SimpleNamespace(wake=lambda: wakes.append(1)))  # type: ignore[assignment]
    try:
        for i in range(8):  # a baseline forms; nothing changes, so no event opens
            obs = Observation(canary="c", target="t", provider="openai", request_model="m",
                              started_at=datetime(2026, 1, 1, 0, i, tzinfo=UTC), call=CallResult(text="same answer"),
                              run_id=f"r{i}")
            sqlite_store.save_observation(obs)
            await analysis.on_observation(obs)
        await analysis.drain()
        assert wakes == []  # each wake is a round of outbox reads: it was one per observation
    finally:
        analysis.close()


async def test_the_wait_of_a_sink_a_reload_removed_meanwhile_is_the_plain_backoff(sqlite_store: Store) -> None:
    with Receiver(secret=SECRET) as rx:
        al = build_alerting(config(rx.url), sqlite_store, environ={"HOOK_SECRET": SECRET}, poll_interval=2.0)
        assert al.sender._idle_wait("gone", 1) == 2.0  # no KeyError: its loop ends at its next look
        assert [al.sender._idle_wait("hook", n) for n in (0, 1, 2, 3, 4, 5, 9)] == [2, 2, 4, 8, 16, 16, 16]
        await al.stop()

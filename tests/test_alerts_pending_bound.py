"""The alert writes waiting for a store away for long are bounded: past `compact_at` events, each alert keeps its
first event and, if it says otherwise, its last; a receiver still gets each outage's down and recovery, in order.
A store refusing writes for real (SQLite locked, PostgreSQL refusing connections) and a real local receiver."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import OperationalError

from monitor.alerts import AlertEvent, AlertsConfig, build_alerting
from monitor.alerts.pending import Pending, Write
from monitor.alerts.service import Alerting
from monitor.store import Store
from monitor.telemetry.metrics import Metrics
from tests.support.receiver import Receiver
from tests.test_alerts_inhibit import NOW
from tests.test_alerts_pending import drained, fast, refusing


def health(kind: str, canary: str) -> AlertEvent:
    return AlertEvent(kind=kind, canary=canary, target="t", signal="health", severity="critical", opened_at=NOW)


def told(rx: Receiver) -> list[tuple[str, str]]:
    return [(r.json["type"], r.json["data"]["canary"]) for r in rx.delivered]


async def test_a_store_away_for_long_holds_each_alerts_first_and_last_word(store: Store) -> None:
    """Three canaries flapping 200 times each while the store refuses writes: the queue grew by every event, without
    bound. Now it stays within twice what a compaction left, and the receiver gets, per canary, downs and recoveries
    in turn from its first down to its last word."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    with Receiver() as rx:
        cfg = AlertsConfig.model_validate({"cooldown": "0s", "group_wait": "0s",
                                           "sinks": [{"name": "hook", "type": "webhook", "url": rx.url + "/hook"}]})
        ticks = iter(range(10_000))
        al: Alerting = fast(build_alerting(cfg, store, environ={}, metrics=metrics,
                                           now=lambda: NOW + timedelta(seconds=next(ticks))))
        al.pending.compact_at = al.pending._next_compact = 50
        with refusing(store):
            for i in range(200):
                for canary in ("c1", "c2", "c3"):
                    await al.publish([health("canary.recovered" if i % 2 else "canary.down", canary)])
                assert len(al.pending) <= 100 + 3  # bounded: at most twice what a compaction left, past compact_at
            await al.publish([health("canary.down", "c2")])  # c2's last word: down (again)
            await al.publish([health("canary.recovered", "c3")])
            await asyncio.sleep(0.2)
        await drained(al)
        await al.sender.flush()
        got = told(rx)
        assert len(got) <= 50 + 3 * 2  # what the last compaction left, and what came after it
        for canary, last in (("c1", "canary.recovered"), ("c2", "canary.down"), ("c3", "canary.recovered")):
            said = [k for k, c in got if c == canary]
            # a down first, then down and recovered in turn (never two downs in a row), ending with its last word
            assert said[0] == "canary.down" and said[-1] == last, said
            assert all(a != b for a, b in zip(said, said[1:], strict=False)), said
        superseded = registry.get_sample_value("llm_monitor_alert_events_superseded_total")
        assert superseded is not None and superseded >= 600 - 100
        await al.stop()


def test_a_one_off_notice_keeps_its_latest_not_its_first() -> None:
    """A target hitting its spend cap each day while the store was away for days: the compaction kept the first
    day's budget.exceeded, a notice days old (Alertmanager: ended an hour after it began), and let go of today's."""
    pending = Pending(lambda w: asyncio.sleep(0), lambda w: None)
    days = [AlertEvent(kind="budget.exceeded", canary="*", target="t", signal="spend",
                       opened_at=NOW + timedelta(days=d)) for d in range(4)]
    pending._queue.extend([Write(events=[health("canary.down", "c1")]), *(Write(events=[e]) for e in days)])
    assert pending._compact() == 3
    assert [e.opened_at for e in pending.unplanned() if e.kind == "budget.exceeded"] == [NOW + timedelta(days=3)]


async def test_a_write_failing_its_last_try_at_shutdown_is_not_said_to_be_retried(
        caplog: pytest.LogCaptureFixture) -> None:
    """Found by review23: a write whose first try failed while the daemon stopped logged "holding them in memory, in
    order, and retrying until it answers", then at once that it was not written: nothing retried it."""
    tried, fail = asyncio.Event(), asyncio.Event()

    async def attempt(w: Write) -> None:
        tried.set()
        await fail.wait()
        raise OperationalError("INSERT", {}, sqlite3.OperationalError("disk I/O error"))

    pending = Pending(attempt, lambda w: None)
    with caplog.at_level(logging.WARNING, logger="monitor.alerts"):
        put = asyncio.ensure_future(pending.put(Write(events=[health("canary.down", "c1")])))
        await tried.wait()
        closed = asyncio.ensure_future(pending.close(5))
        await asyncio.sleep(0)
        fail.set()
        assert await closed == 1 and await put is False
    assert [r.getMessage() for r in caplog.records if r.name == "monitor.alerts"] == [
        "alert messages not written (the store was unavailable as the daemon stopped): canary.down c1@t"]

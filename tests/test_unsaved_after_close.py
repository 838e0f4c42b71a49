"""A write handed to the held-writes queue after the daemon's last try for them (`Unsaved.close(final=True)`)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import OperationalError

from monitor.domain import Observation
from monitor.store import Run, Store
from monitor.telemetry.metrics import Metrics
from monitor.unsaved import Unsaved
from tests.test_unsaved_off_loop import _cancelled_with, _obs


def _value(registry: CollectorRegistry, name: str) -> float:
    return registry.get_sample_value(name) or 0.0


async def _nothing(_obs: Observation) -> None:
    return None


async def test_a_write_after_the_final_close_is_given_up_on_counted_and_logged(
        sqlite_store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """Found by reading: a call cancelled after the final close (a task that outlived the drain's 10 s) was queued
    for a retry task the loop's end then cancelled: not stored, not counted, not logged, and the pending-writes
    gauge left at 1 in the last scrape."""
    registry = CollectorRegistry()
    away = False

    def save(o: Observation) -> None:
        if away:
            raise OperationalError("INSERT", {}, sqlite3.OperationalError("disk I/O error"))
        sqlite_store.save_observation(o)

    unsaved = Unsaved(save, sqlite_store.save_run, _nothing, Metrics(registry))
    assert await unsaved.close(10) == 0
    await _cancelled_with(unsaved, _obs(1))  # between the two closes: still taken, as the app's second close expects
    assert await unsaved.close(10, final=True) == 0
    assert [o.id for o in sqlite_store.observations()] == ["o1"]
    run = Run(id="r2", canary="c", target="t", started_at=_obs(2).started_at, status="cancelled")
    with caplog.at_level(logging.ERROR, logger="monitor.unsaved"):
        await _cancelled_with(unsaved, _obs(2))
        unsaved.put_now(run)
        # put: stored at once while nothing waits and the store takes it (found by review: it was given up on, the
        # store up); a store that fails it has no retry left
        assert await unsaved.put(_obs(3)) is True
        away = True
        assert await unsaved.put(_obs(4)) is False
    await asyncio.sleep(0.2)  # a retry task, were one started, would have written them by now
    assert len(unsaved) == 0 and _value(registry, "llm_monitor_store_pending_writes") == 0
    assert _value(registry, "llm_monitor_store_dropped_writes_total") == 3
    assert sorted(o.id for o in sqlite_store.observations()) == ["o1", "o3"] and sqlite_store.runs() == []
    lines = [r.getMessage() for r in caplog.records if r.name == "monitor.unsaved"]
    assert lines[:2] == ["observation o2 not stored: it came after the store's last write at shutdown",
                         "run record r2 not stored: it came after the store's last write at shutdown"]
    # found by review23: o4's failed write first logged "cannot write to the store: holding observations in memory
    # and retrying until it answers", after the final close, where nothing retries
    assert lines[2:] == ["observation o4 not stored: it came after the store's last write at shutdown and the store "
                         "failed it (OperationalError: disk I/O error)"], lines
    assert _value(registry, "llm_monitor_store_write_failures_total") == 1
    assert all(getattr(r, "canary", None) == "c" and r.target == "t" for r in caplog.records  # type: ignore[attr-defined]
               if "not stored" in r.getMessage())

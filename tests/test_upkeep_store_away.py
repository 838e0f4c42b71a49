"""The leader's upkeep beside the schedule, with the store away: one line per outage, not a traceback a poll."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable

import pytest
from sqlalchemy.exc import OperationalError

from monitor import upkeep
from tests.test_leadership import _until


class _StoreAway:
    """An analysis whose store fails its reads for `failures` polls (a SQLite file gone, a table locked)."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.polls = 0

    async def in_worker(self, fn: Callable[[], object]) -> object:
        return fn()

    def retry_unwritten(self) -> bool:
        return False

    def refresh_baselines(self) -> int:
        self.polls += 1
        if self.polls <= self.failures:
            raise OperationalError("SELECT", {}, sqlite3.OperationalError("database is locked"))
        return 0

    def close_ended(self) -> None:
        return None


async def test_a_store_away_during_the_baseline_poll_is_one_line_once_per_outage(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Found by the chaos run: with the store away every poll (30 s) logged `refreshing baselines failed` with
    a traceback of some 80 lines."""
    monkeypatch.setattr(upkeep, "BASELINE_POLL_S", 0.01)
    analysis = _StoreAway(failures=3)
    with caplog.at_level(logging.INFO, logger="monitor.app"):
        watch = asyncio.create_task(upkeep.watch_baselines(analysis, None))  # type: ignore[arg-type]
        try:
            await _until(lambda: analysis.polls >= 5)
        finally:
            watch.cancel()
    lines = [(r.levelname, r.getMessage(), r.exc_info) for r in caplog.records]
    assert lines == [("ERROR", "refreshing baselines from the store failed (tried again every 0.01 s): "
                      "OperationalError: database is locked", None),
                     ("INFO", "refreshing baselines from the store works again", None)]

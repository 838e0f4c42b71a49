"""A replica taking the lead warns when its clock is off the store's: replicas compare times each wrote by its own."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.app import App
from monitor.config import load_config
from monitor.domain import utcnow
from monitor.sim import SimServer
from monitor.store import Store
from tests.conftest import write_config


def _app(tmp_path: Path, url: str, sim: SimServer, now: Callable[[], datetime]) -> App:
    cfg = write_config(tmp_path, f"  - {{id: t, provider: openai, base_url: '{sim.openai_base_url}', model: m}}",
                       "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n    samples: 1\n"
                       "    schedule: {every: 1h}\n", extra="daemon: {max_start_delay: 0}\n")
    cfg.write_text(cfg.read_text().replace(f"sqlite:///{tmp_path / 'm.db'}", url))
    return App(load_config(cfg, environ={}), registry=CollectorRegistry(), environ={}, serve_http=False, now=now)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "monitor.app" and "clock" in r.getMessage()]


@pytest.mark.parametrize(("skew", "said"), [(timedelta(minutes=2), r"1[12]\d s ahead of"),
                                            (timedelta(seconds=-40), r"[34]\d s behind")])
async def test_a_leader_whose_clock_is_off_the_stores_says_so(
        tmp_path: Path, pg_url: str, steady_sim: SimServer, caplog: pytest.LogCaptureFixture, skew: timedelta,
        said: str) -> None:
    """Found by review: the alert outbox's claims are leases of ~35 s written by the claiming host's clock, so a
    replica whose clock runs that far ahead of the old leader's sends the rows the old leader (still stopping) has
    claimed and is sending. The database's clock cannot stand in for the injected one (its retries and tests run on
    it): the hosts must agree (NTP), and a replica taking the lead says when its clock is off the store's."""
    Store(pg_url).migrate()
    app = _app(tmp_path, pg_url, steady_sim, lambda: utcnow() + skew)
    with caplog.at_level(logging.WARNING, logger="monitor.app"):
        await app.start()
        await app.stop()
    [record] = _warnings(caplog)
    assert re.match(f"this host's clock is {said} the store's: ", record.getMessage())
    assert record.clock_offset_s == pytest.approx(skew.total_seconds(), abs=2)  # type: ignore[attr-defined]


async def test_a_leader_in_time_with_the_store_says_nothing(
        tmp_path: Path, pg_url: str, steady_sim: SimServer, caplog: pytest.LogCaptureFixture) -> None:
    Store(pg_url).migrate()
    app = _app(tmp_path, pg_url, steady_sim, utcnow)
    with caplog.at_level(logging.WARNING, logger="monitor.app"):
        await app.start()
        await app.stop()
    assert _warnings(caplog) == []

"""A shutdown that gives up on writes the store did not take (a store away as SIGTERM comes) exits 1, saying how
many, so systemd's and Kubernetes' view of the stop is not a clean one; with nothing lost it exits 0.

Found by review: `run` exited 0 whatever the stop gave up on, the loss said only in the log lines before it."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.app import App
from monitor.commands.run import EXIT_FAIL, EXIT_OK, serve
from monitor.config import load_config
from monitor.sim import SimServer
from monitor.store import Store
from tests.conftest import write_config
from tests.test_alerts_pending import refusing
from tests.test_leadership import _until
from tests.test_store_outage import PROBES

NEVER = PROBES + "    schedule: {cron: '0 0 1 1 *'}\n"  # scheduled, never run by the schedule: run by the test


async def _serving(tmp_path: Path, sim: SimServer, monkeypatch: pytest.MonkeyPatch) -> tuple[App, asyncio.Event,
                                                                                                asyncio.Task[int]]:
    monkeypatch.setattr("monitor.app.UNSAVED_GRACE_S", 1.0)  # the held writes' last try at the stop
    target = f"  - {{id: gpt, provider: openai, base_url: '{sim.openai_base_url}', model: sim-gpt}}"
    config = load_config(write_config(tmp_path, target, NEVER, extra="daemon: {grace_period: 1}\n"), environ={})
    app = App(config, registry=CollectorRegistry(), environ={}, serve_http=False)
    stop = asyncio.Event()
    serving = asyncio.create_task(serve(app, stop))
    await _until(lambda: app.leading)
    return app, stop, serving


async def test_a_stop_that_gives_up_on_held_writes_exits_1_saying_how_many(
        tmp_path: Path, steady_sim: SimServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    app, stop, serving = await _serving(tmp_path, steady_sim, monkeypatch)
    canary, target = app.config.pairs()[0]
    with caplog.at_level(logging.INFO), refusing(app.store):  # SQLite locked by another connection, for real
        await app.runner.run(canary, target)
        assert len(app.runner.unsaved) >= 3  # 2 observations and the run record (in 1 or 2 states)
        stop.set()  # SIGTERM
        code = await asyncio.wait_for(serving, 60)
    assert code == EXIT_FAIL
    assert "stopping with the store unavailable: 2 observations and " in caplog.text
    [line] = [r.getMessage() for r in caplog.records if r.name == "monitor.run" and "exiting with status 1" in
              r.getMessage()]
    assert line.startswith("exiting with status 1: the stop gave up on "), line


async def test_a_stop_whose_held_writes_are_stored_exits_0(
        tmp_path: Path, steady_sim: SimServer, monkeypatch: pytest.MonkeyPatch) -> None:
    app, stop, serving = await _serving(tmp_path, steady_sim, monkeypatch)
    canary, target = app.config.pairs()[0]
    with refusing(app.store):
        await app.runner.run(canary, target)
        assert len(app.runner.unsaved) >= 3
    stop.set()  # the store is back: the held writes are stored, by the retry or the stop's last try
    assert await asyncio.wait_for(serving, 60) == EXIT_OK
    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        assert len(store.observations(limit=10)) == 2
    finally:
        store.close()

"""Signals the store refuses wait in memory and are written with the next analysis (monitor.signal_writes): a
refused write was logged and lost, the observation's row left without signals for good."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from monitor.app import App
from monitor.config import load_config
from monitor.signal_writes import SignalWrites
from monitor.sim import SimServer
from tests.conftest import write_config

PROBES = """\
canaries:
  - id: hello
    messages: [{role: user, content: "Say hello."}]
    samples: 2
    params: {temperature: 0.7, max_tokens: 20}
"""


def refused() -> OperationalError:
    return OperationalError("UPDATE observations", {}, Exception("database is locked"))


def stored_signals(app: App) -> dict[str, Any]:
    with app.store.engine.connect() as conn:
        return dict(conn.execute(text("SELECT id, signals FROM observations")).all())


async def test_signals_the_store_refused_are_written_with_the_next_analysis(
        steady_sim: SimServer, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    target = f"  - {{id: gpt, provider: openai, base_url: '{steady_sim.openai_base_url}', model: sim-gpt}}"
    config = load_config(write_config(tmp_path, target, PROBES), environ={})
    app = App(config, registry=CollectorRegistry(), environ={}, serve_http=False)
    await app.start(schedule=False)
    assert app.analysis is not None
    save = app.store.save_signals
    away = True

    def flaky(obs_id: str, signals: dict[str, Any]) -> None:
        if away:
            raise refused()
        save(obs_id, signals)

    app.analysis.signal_writes._save = flaky
    canary, tgt = config.pairs()[0]
    try:
        first = await app.runner.run(canary, tgt)
        await app.analysis.drain()
        assert [stored_signals(app)[o.id] for o in first] == [None, None]
        assert len(app.analysis.signal_writes.waiting) == 2
        assert "storing the signals of observation" in caplog.text and "wait in memory" in caplog.text
        away = False
        second = await app.runner.run(canary, tgt)
        await app.analysis.drain()
        stored = stored_signals(app)
        assert all(stored[o.id] is not None and "output_chars" in str(stored[o.id]) for o in [*first, *second])
        assert app.analysis.signal_writes.waiting == {}
    finally:
        await app.stop()


def test_signals_waiting_are_written_oldest_first_and_the_oldest_let_go_past_the_limit(
        caplog: pytest.LogCaptureFixture) -> None:
    written: list[str] = []
    away = True

    def save(obs_id: str, signals: dict[str, Any]) -> None:
        if away:
            raise refused()
        written.append(obs_id)

    writes = SignalWrites(save, max_waiting=3)
    with caplog.at_level(logging.INFO, logger="monitor.analysis"):
        for i in range(5):
            assert not writes.write(f"o{i}", {"output_chars": i})
        assert list(writes.waiting) == ["o2", "o3", "o4"] and writes.let_go == 2
        assert caplog.text.count("the oldest are let go") == 1  # once per outage
        away = False
        assert writes.retry()  # the 30-second upkeep's try
    assert written == ["o2", "o3", "o4"]
    assert "signals the store refused are stored" in caplog.text

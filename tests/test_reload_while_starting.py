"""A reload (SIGHUP, POST /-/reload) asked while the daemon is still starting waits for the start, then applies."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.app import App
from monitor.config import load_config
from tests.conftest import write_config

PROBES = "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n    schedule: {every: 1h}\n"
TARGET = "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}"


async def test_a_reload_asked_while_starting_is_applied_once_the_start_is_done(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Found by QA: a SIGHUP during the start (the store migrating) reloaded beside it: the reload swapped in its
    # config and providers, then the start built providers of its own over them (the reload's left open), and
    # parts of the start ran on one config, parts on the other
    cfg = write_config(tmp_path, TARGET, PROBES)
    app = App(load_config(cfg, environ={}), registry=CollectorRegistry(), environ={}, serve_http=False,
              analyse=False)
    (tmp_path / "probes" / "p.yaml").write_text(PROBES + PROBES.removeprefix("canaries:\n").replace("c1", "c2"))
    caplog.set_level(logging.INFO, logger="monitor.app")
    starting = asyncio.ensure_future(app.start())
    reloading = asyncio.ensure_future(app.reload())  # as SIGHUP's handler spawns it, the start not done
    try:
        await starting
        assert app.config.canaries[0].id == "c1" and len(app.config.canaries) == 1  # the start's own config
        ok, message = await reloading
        assert ok, message
        assert [c.id for c in app.config.canaries] == ["c1", "c2"]
        assert sorted(job.split("@")[0] for job in app.scheduler.next_runs()) == ["c1", "c2"]
        [provider] = app.runner.providers.values()
        assert not app.replaced.waiting or provider not in app.replaced.waiting
        deferred = [r.getMessage() for r in caplog.records if "while starting" in r.getMessage()]
        assert deferred and "once the start is done" in deferred[0]
    finally:
        reloading.cancel()
        await app.stop()

"""A run does not wait for the drift analysis of its observations (a burst of slow analyses must not make runs
overrun their interval), unless analysis lags too far behind or too many wait: then it does, so detection delay,
memory and the time a shutdown spends on the queue stay bounded. The lag is exported."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.app import App
from monitor.config import load_config
from monitor.sim import SimServer, scenario_from_dict
from tests.conftest import write_config
from tests.support.held import hold_analyses
from tests.support.metric import sample

PROBES = "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n    samples: 3\n"
DELAY = "llm_monitor_drift_analysis_delay_seconds"


@contextlib.asynccontextmanager
async def started(tmp_path: Path) -> AsyncIterator[App]:
    """A daemon (no schedule) with drift on, against a fast simulator; the caller stops it."""
    scenario = scenario_from_dict({"name": "fast", "seed": 1, "defaults": {"ttft": 5, "output_tps": 5000},
                                   "models": {"*": {"phases": [{"name": "a"}]}}})
    with SimServer(scenario) as sim:
        cfg = write_config(tmp_path, f"  - {{id: t, provider: openai, base_url: '{sim.openai_base_url}', model: m}}",
                           PROBES, extra="drift: {baseline_size: 5}\n")
        app = App(load_config(cfg, environ={}), registry=CollectorRegistry(), environ={}, serve_http=False)
        await app.start(schedule=False)
        yield app


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    async with started(tmp_path) as app:
        try:
            yield app
        finally:
            await app.stop()


async def test_a_run_finishes_while_its_analyses_wait_and_they_are_all_done_later(app: App) -> None:
    assert app.analysis is not None and sample(app.registry, DELAY) == 0  # exported before any observation
    app.analysis.max_lag_s = 60.0  # however slow this machine is: within the limits, the run does not wait
    go = hold_analyses(app)
    canary, target = app.config.pairs()[0]
    observations = await asyncio.wait_for(app.runner.run(canary, target), 20)  # not held up by the analyses
    assert len(observations) == 3 and all(o.ok for o in observations)
    await asyncio.sleep(0.05)
    assert 0.05 <= sample(app.registry, DELAY) < app.analysis.max_lag_s  # how long the oldest has waited
    go.set()
    await app.analysis.drain()
    await asyncio.sleep(0)  # the loop sees the analyses end
    assert sample(app.registry, DELAY) == 0
    assert app.analysis.engine.baseline(canary.id, target.id).count == 3  # analysed: in the forming baseline


@pytest.mark.parametrize("limit", ["lag", "backlog"])
async def test_past_either_limit_a_run_waits_for_its_analyses(app: App, limit: str) -> None:
    assert app.analysis is not None
    if limit == "lag":
        ticks = itertools.count(0.0, 10.0)  # each reading of the clock 10 s later: the oldest waited 10 s > 5 s
        app.analysis._monotonic = lambda: next(ticks)
    else:
        app.analysis.max_backlog = 1
    go = hold_analyses(app)
    canary, target = app.config.pairs()[0]
    run = asyncio.create_task(app.runner.run(canary, target))
    done, _ = await asyncio.wait([run], timeout=1.0)
    assert not done  # analysis lags 10 s (more than 5), or 3 observations wait (more than 1): the run waits
    go.set()
    observations = await asyncio.wait_for(run, 20)
    assert len(observations) == 3


async def test_observations_queued_at_shutdown_are_analysed_before_the_daemon_stops(tmp_path: Path) -> None:
    async with started(tmp_path) as app:
        go = hold_analyses(app)
        canary, target = app.config.pairs()[0]
        observations = await app.runner.run(canary, target)
        asyncio.get_running_loop().call_later(0.5, go.set)
        await app.stop()
    with sqlite3.connect(tmp_path / "m.db") as db:
        rows = dict(db.execute("SELECT id, signals FROM observations").fetchall())
    assert all(rows[o.id] is not None for o in observations)  # their signals were computed and stored

"""Scheduled runs that do not happen are counted and logged in the daemon's own words, not APScheduler's."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.app import App
from monitor.config import load_config
from monitor.sim import SimServer, scenario_from_dict
from tests.conftest import write_config
from tests.support.metric import sample


@pytest.fixture(scope="module")
def slow_sim() -> Iterator[SimServer]:
    scenario = scenario_from_dict({"name": "slow", "seed": 1, "defaults": {
        "ttft": {"dist": "constant", "mean_ms": 2500}, "output_tps": 50, "length": {"dist": "constant", "mean": 5}},
        "models": {"*": {"phases": [{"name": "slow"}]}}})
    with SimServer(scenario) as sim:
        yield sim


async def test_a_run_longer_than_its_interval_counts_skipped_runs_and_logs_once(
        tmp_path: Path, slow_sim: SimServer, caplog: pytest.LogCaptureFixture) -> None:
    probes = ("canaries:\n  - id: slow\n    messages: [{role: user, content: hi}]\n    samples: 1\n"
              "    schedule: {every: 1s}\n")
    target = f"  - {{id: t, provider: openai, base_url: '{slow_sim.url}/v1', model: sim-gpt, api_key_env: K}}"
    cfg = write_config(tmp_path, target, probes, extra="daemon: {max_start_delay: 0}\n")
    registry = CollectorRegistry()
    app = App(load_config(cfg, environ={"K": "k"}), registry=registry, environ={"K": "k"}, serve_http=False)
    labels = {"canary": "slow", "target": "t"}
    caplog.set_level(logging.INFO)
    await app.start()
    try:
        for reason in ("overrun", "missed"):  # declared at start, so increase() sees the first one
            assert registry.get_sample_value("llm_monitor_runs_skipped_total", {**labels, "reason": reason}) == 0.0
        for _ in range(100):  # each call takes 2.5 s; the 1 s schedule finds the previous run still going
            if sample(registry, "llm_monitor_runs_skipped_total", **labels, reason="overrun") >= 2:
                break
            await asyncio.sleep(0.1)
    finally:
        await app.stop()
    assert sample(registry, "llm_monitor_runs_skipped_total", **labels, reason="overrun") >= 2
    # a loaded machine may stall the loop past an interval too (a `missed` line, rightly): count the overruns'
    ours = [r for r in caplog.records if r.name == "monitor.scheduler" and "skipped" in r.getMessage()
            and getattr(r, "reason", "") == "overrun" and r.levelno >= logging.WARNING]
    assert len(ours) == 1  # once an hour per pair and reason; the counter has every one
    assert (ours[0].examples, ours[0].pairs, ours[0].reason) == (["slow@t"], 1, "overrun")  # type: ignore[attr-defined]
    assert "scheduled runs skipped: 1 pair (slow@t); the previous run of each was still going" in ours[0].getMessage()
    assert "schedule.every" in ours[0].getMessage()
    assert not [r for r in caplog.records if r.name.startswith("apscheduler") and "skipped" in r.getMessage()]

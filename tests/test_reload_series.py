"""What a reload does to /metrics: the series of a pair, a canary or a target it removes go for good, though a call
to it was in flight across the reload; they come back with the pair's next run once a later reload adds it again."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from monitor.app import App
from monitor.config import load_config
from monitor.sim import SimServer, scenario_from_dict
from tests.conftest import write_config
from tests.support.metric import sample

# `local` answers after a second: long enough to reload while its call is in flight
SCENARIO = {"name": "slow-local", "seed": 1, "defaults": {"ttft": 5, "output_tps": 5000, "length": 12},
            "models": {"sim-slow": {"phases": [{"name": "slow", "ttft": 1000}]}, "*": {"phases": [{"name": "fast"}]}}}
PROBES = """\
canaries:
  - id: c1
    messages: [{role: user, content: hi}]
    samples: 1
    checks: [{type: regex, pattern: '.', name: any}]
    schedule: {every: 4s}
  - id: c2
    messages: [{role: user, content: hello}]
    samples: 1
    schedule: {every: 4s}
"""


@pytest.fixture(scope="module")
def slow_sim() -> Iterator[SimServer]:
    with SimServer(scenario_from_dict(SCENARIO)) as sim:
        yield sim


def targets(sim: SimServer, *, local: bool = True) -> str:
    keep = f"  - {{id: keep, provider: openai, base_url: '{sim.openai_base_url}', model: sim-gpt}}"
    slow = f"\n  - {{id: local, provider: openai, base_url: '{sim.openai_base_url}', model: sim-slow}}"
    return keep + (slow if local else "")


def series(app: App, label: str) -> list[str]:
    """The exposition's sample lines carrying `label` (e.g. target="local")."""
    return [line for line in generate_latest(app.registry).decode().splitlines()
            if not line.startswith("#") and label in line]


async def in_flight(app: App, target: str) -> None:
    for _ in range(500):
        if sample(app.registry, "llm_monitor_probes_in_flight", target=target) == 1:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no call to {target} went out")


@pytest.mark.parametrize("removed", ["target", "canary"])
async def test_a_reload_removes_every_series_of_what_it_removes_though_a_call_was_in_flight_and_a_later_one_adds_them_back(
        slow_sim: SimServer, tmp_path: Path, removed: str) -> None:
    # Found by a reviewer on a running daemon: 40 s after a SIGHUP that removed target `local`, /metrics still had 43
    # series of it (attempts, last success, model_info, ...): the call in flight during the reload put them back when
    # it ended, model_info was never dropped, and LLMMonitorCanaryStale fired for a target no longer configured.
    cfg = write_config(tmp_path, targets(slow_sim), PROBES)
    original = cfg.read_text()
    app = App(load_config(cfg, environ={}), registry=CollectorRegistry(), environ={}, serve_http=False)
    await app.start(schedule=False)
    gone, label = ("c1", 'target="local"') if removed == "target" else ("c2", 'canary="c2"')
    try:
        await asyncio.gather(*(app._run_job(c, t) for c, t in app.config.pairs()))  # as the scheduler runs them
        before = series(app, label)
        assert any(line.startswith("llm_monitor_last_success_timestamp_seconds{") for line in before)
        if removed == "target":
            assert any(line.startswith("llm_monitor_model_info{") for line in before)
        canary, target = next((c, t) for c, t in app.config.pairs() if (c.id, t.id) == (gone, "local"))
        job = asyncio.create_task(app._run_job(canary, target))
        await in_flight(app, "local")

        if removed == "target":
            cfg.write_text(original.replace(targets(slow_sim), targets(slow_sim, local=False)))
        else:
            (tmp_path / "probes" / "p.yaml").write_text(PROBES.split("  - id: c2")[0])
        ok, message = await app.reload()
        assert ok, message
        assert series(app, label) == []
        await job  # the call ends after the reload: stored, analysed, counted in spend, but not exported
        assert app.analysis is not None
        await app.analysis.drain()
        assert series(app, label) == []
        stored = [o for o in app.store.observations(limit=100) if (o.canary, o.target) == (gone, "local")]
        assert len(stored) == 2 and all(o.ok for o in stored)  # the first run's and the one in flight
        kept = 'target="keep"' if removed == "target" else 'canary="c1"'
        assert any(line.startswith("llm_monitor_last_success_timestamp_seconds{") for line in series(app, kept))

        cfg.write_text(original)
        (tmp_path / "probes" / "p.yaml").write_text(PROBES)
        ok, message = await app.reload()
        assert ok, message
        assert not [line for line in series(app, label) if "last_success" in line or "model_info" in line]
        await asyncio.create_task(app._run_job(canary, target))  # back in the config: its series come back as it runs, counted afresh
        pair = {"canary": gone, "target": "local"}
        assert sample(app.registry, "llm_monitor_probe_attempts_total", **pair) == 1
        assert sample(app.registry, "llm_monitor_last_success_timestamp_seconds", **pair) > 0
        assert sample(app.registry, "llm_monitor_model_info", target="local", response_model="sim-slow",
                      system_fingerprint=stored[0].call.system_fingerprint or "") == 1
    finally:
        await app.stop()

"""A daemon app on the simulator for the drift command tests: started without schedule or HTTP, and a scenario that
changes behaviour on request."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from monitor.app import App
from monitor.config import load_config
from monitor.sim import SimServer, scenario_from_dict
from tests.conftest import write_config


async def started_app(tmp_path: Path, sim: SimServer, probes: str, drift: str) -> tuple[App, Path, Any, Any]:
    """Start an app (no schedule, no HTTP) on one target served by ``sim``; return it, its config path and
    its one canary x target pair."""
    cfg_path = write_config(tmp_path, f"  - {{id: t, provider: openai, base_url: '{sim.openai_base_url}', "
                                      "model: m}", probes, extra=f"drift: {drift}\n")
    config = load_config(cfg_path, environ={})
    app = App(config, registry=CollectorRegistry(), environ={}, serve_http=False)
    await app.start(schedule=False)
    canary, target = config.pairs()[0]
    return app, cfg_path, canary, target



async def stored_runs(tmp_path: Path, scenario: Any, samples: int, drift: str, runs: int) -> tuple[Path, list[Any]]:
    """Store `runs` runs of canary c1 (`samples` calls each) against a simulator playing `scenario`, the app
    stopped after; return the config path and the observations."""
    probes = f"canaries:\n  - id: c1\n    messages: [{{role: user, content: hi}}]\n    samples: {samples}\n"
    with SimServer(scenario) as sim:
        app, cfg_path, canary, target = await started_app(tmp_path, sim, probes, drift)
        try:
            observed = [o for _ in range(runs) for o in await app.runner.run(canary, target)]
        finally:
            await app.stop()
    return cfg_path, observed

PROBES_C1 = ("canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n    samples: 5\n"
             "    params: {temperature: 0.7}\n")


def two_phases(name: str, seed: int, **phase_b: Any) -> Any:
    """A scenario for model m: phase a as the defaults (answers of about 40 words), phase b changed by `phase_b`
    (switched to with `/_sim/phase`)."""
    return scenario_from_dict({"name": name, "seed": seed,
                               "defaults": {"ttft": 5, "output_tps": 5000,
                                            "length": {"dist": "normal", "mean": 40, "sd": 5}},
                               "models": {"m": {"phases": [{"name": "a"},
                                                           {"name": "b", "after_requests": 10**6, **phase_b}]}}})


async def through_change(app: App, sim: SimServer, canary: Any, target: Any, before: int = 3, after: int = 8) -> None:
    """Run the canary `before` times in phase a, switch the simulator to phase b, run it `after` times."""
    for _ in range(before):
        await app.runner.run(canary, target)
    await asyncio.sleep(0.5)
    httpx.post(sim.url + "/_sim/phase", json={"model": "m", "phase": "b"}).raise_for_status()
    for _ in range(after):
        await app.runner.run(canary, target)

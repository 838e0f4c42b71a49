"""Every canary of the shipped library passes check-config and runs against the simulator through the daemon."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from prometheus_client import CollectorRegistry

from monitor.app import App
from monitor.config import load_config
from monitor.sim import SimServer
from tests.support.daemon import cli

ROOT = Path(__file__).resolve().parent.parent


def test_check_config_accepts_the_library(tmp_path: Path) -> None:
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text("targets:\n  - {id: sim, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: sim-gpt}\n"
                   f"probes: ['{ROOT / 'probes'}']\n")
    out = cli("check-config", "-c", str(cfg))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "configuration OK" in out.stdout


async def test_every_canary_runs_against_the_simulator(tmp_path: Path, steady_sim: SimServer) -> None:
    cfg_path = tmp_path / "monitor.yaml"
    cfg_path.write_text(
        f"targets:\n  - {{id: gpt, provider: openai, base_url: '{steady_sim.openai_base_url}', model: sim-gpt, "
        f"max_concurrency: 16}}\n  - {{id: claude, provider: anthropic, base_url: '{steady_sim.url}', "
        f"model: sim-claude, max_concurrency: 16}}\nprobes: ['{ROOT / 'probes'}']\n"
        f"storage: {{url: 'sqlite:///{tmp_path / 'm.db'}'}}\n")
    config = load_config(cfg_path, environ={})
    assert len(config.canaries) >= 40
    one = tuple(c.model_copy(update={"samples": 1}) for c in config.canaries)
    config = dataclasses.replace(config, canaries=one)
    app = App(config, registry=CollectorRegistry(), environ={}, serve_http=False, analyse=False)
    await app.start(schedule=False)
    try:
        import asyncio

        batches = await asyncio.gather(*(app.runner.run(c, t, trigger="manual") for c, t in config.pairs()))
    finally:
        await app.stop()
    observations = [o for b in batches for o in b]
    assert len(observations) == len(config.pairs())
    failed = [(o.canary, o.target, o.call.error_message) for o in observations if not o.ok]
    assert not failed
    for o in observations:
        canary = config.canary(o.canary)
        assert len(o.checks) == len(canary.checks), o.canary  # every check produced a result
        assert o.refusal in ("none", "partial", "full")
    tool = [o for o in observations if config.canary(o.canary).tools]
    assert tool and all(o.call.tool_calls for o in tool)

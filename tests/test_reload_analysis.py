"""What a reload does to drift analysis: observations of a pair it removed that still wait for analysis are stored,
but open no drift event and send no notification for a pair no one watches any longer."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from monitor.app import App
from monitor.config import load_config
from monitor.sim import SimServer, scenario_from_dict
from tests.conftest import write_config
from tests.support.held import hold_analyses
from tests.support.receiver import Receiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SCENARIO = {"name": "new-fingerprint", "seed": 3, "defaults": {"ttft": 5, "output_tps": 5000, "length": 12},
            "models": {"sim-gpt": {"phases": [{"name": "a", "system_fingerprint": "fp_old"},
                                              {"name": "b", "after_requests": 10**6, "system_fingerprint": "fp_new"}]}}}
PROBES = "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n    samples: 5\n    schedule: {every: 1h}\n"


def targets(sim: SimServer, *, gone: bool = True) -> str:
    keep = f"  - {{id: keep, provider: openai, base_url: '{sim.openai_base_url}', model: sim-gpt}}"
    return keep + (f"\n  - {{id: gone, provider: openai, base_url: '{sim.openai_base_url}', model: sim-gpt}}"
                   if gone else "")


async def test_observations_of_a_pair_a_reload_removed_while_they_waited_open_no_event_and_send_nothing(
        tmp_path: Path) -> None:
    # Before: a reload that removed a target did not stop the analyses of its observations still queued; a new
    # fingerprint they showed opened a model event and sent "model.changed" for a target no longer configured.
    alerts = ("alerts:\n  group_wait: 0s\n  sinks:\n"
              "    - {name: hook, type: webhook, url: '%s/hook', secret_env: HOOK_SECRET}\n")
    with SimServer(scenario_from_dict(SCENARIO)) as sim, Receiver(secret=SECRET) as rx:
        extra = "drift: {baseline_size: 5}\n" + alerts % rx.url
        cfg = write_config(tmp_path, targets(sim), PROBES, extra=extra)
        environ = {"HOOK_SECRET": SECRET}
        app = App(load_config(cfg, environ=environ), registry=CollectorRegistry(), environ=environ, serve_http=False)
        await app.start(schedule=False)
        try:
            assert app.analysis is not None
            app.analysis.max_lag_s = 600.0  # the runs below do not wait for their held analyses
            pairs = app.config.pairs()
            await asyncio.gather(*(app._run_job(c, t) for c, t in pairs))  # the baselines (5 observations each)
            await app.analysis.drain()
            assert all(app.analysis.engine.baseline(c.id, t.id).ready for c, t in pairs)

            httpx.post(sim.url + "/_sim/phase", json={"model": "sim-gpt", "phase": "b"}, timeout=5).raise_for_status()
            go = hold_analyses(app)
            await asyncio.gather(*(app._run_job(c, t) for c, t in pairs))  # both show fp_new; analyses wait
            cfg.write_text(cfg.read_text().replace(targets(sim), targets(sim, gone=False)))
            reload = asyncio.create_task(app.reload())
            while app.metrics.scope.now.pair("c1", "gone"):  # the reload has declared the pairs now configured
                await asyncio.sleep(0.01)
            go.set()
            ok, message = await reload
            assert ok, message
            await app.analysis.drain()

            kept = rx.wait_for(1)  # the target still configured: its model change is told
            assert [(r.json["type"], r.json["data"]["target"]) for r in kept] == [("model.changed", "keep")]
            assert [e["target"] for e in app.analysis.repo.events(limit=None)] == ["keep"]
            assert app.analysis.unconfigured == 5
            stored = [o for o in app.store.observations(limit=100) if o.target == "gone"]
            assert len(stored) == 10 and {o.call.system_fingerprint for o in stored} == {"fp_old", "fp_new"}
        finally:
            await app.stop()
        assert [r.json["data"]["target"] for r in rx.requests] == ["keep"]  # nothing about `gone`, by the stop


async def test_an_event_an_analysis_begun_before_the_reload_opens_for_a_removed_pair_is_resolved_by_it(
        tmp_path: Path) -> None:
    # An analysis already past its look at the declaration when the reload made it: its event is stored and told,
    # and the reload must end that alert as it ends those opened before it ("no longer monitored"); it resolved
    # the removed pairs' alerts before that analysis had written its own, which then stayed firing.
    probes = ("canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n    samples: 1\n"
              "    checks: [{type: regex, pattern: '^never$', name: strict}]\n    zero_tolerance: ['check:strict']\n")
    alerts = ("alerts:\n  group_wait: 0s\n  sinks:\n"
              "    - {name: hook, type: webhook, url: '%s/hook', secret_env: HOOK_SECRET}\n")
    with SimServer(scenario_from_dict(SCENARIO)) as sim, Receiver(secret=SECRET) as rx:
        cfg = write_config(tmp_path, targets(sim), probes, extra=alerts % rx.url)
        environ = {"HOOK_SECRET": SECRET}
        app = App(load_config(cfg, environ=environ), registry=CollectorRegistry(), environ=environ, serve_http=False)
        await app.start(schedule=False)
        try:
            assert app.analysis is not None
            app.analysis.max_lag_s = 600.0
            entered, go = threading.Event(), threading.Event()
            observe = app.analysis.engine.observe

            def held(*args: Any) -> Any:  # on the analysis thread, past the look at the declaration
                entered.set()
                go.wait(30)
                return observe(*args)

            app.analysis.engine.observe = held  # type: ignore[method-assign]
            canary, target = next((c, t) for c, t in app.config.pairs() if t.id == "gone")
            await asyncio.create_task(app._run_job(canary, target))  # as the scheduler runs it: a task of its own
            assert await asyncio.to_thread(entered.wait, 30)
            cfg.write_text(cfg.read_text().replace(targets(sim), targets(sim, gone=False)))
            reload = asyncio.create_task(app.reload())
            while app.metrics.scope.now.pair("c1", "gone"):
                await asyncio.sleep(0.01)
            go.set()
            ok, message = await reload
            assert ok, message
            told = await asyncio.to_thread(rx.wait_for, 2)
            assert [(r.json["type"], r.json["data"]["target"]) for r in told] == [("drift.opened", "gone"),
                                                                                   ("drift.resolved", "gone")]
            assert "no longer monitored" in told[1].json["data"]["summary"]
        finally:
            await app.stop()

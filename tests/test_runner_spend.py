"""The runner's spend over real loopback HTTP: the daily cap pauses a target (and the calls still waiting for it),
today's spend survives a restart, a call is priced by the model that answered, and an LLM judge's calls count in
its own target's spend and keep to its max_concurrency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from monitor.app import App
from monitor.config import load_config
from monitor.sim import SimServer
from tests.conftest import write_config
from tests.support.jsonserver import json_server
from tests.support.metric import sample
from tests.support.runner_config import PROBES, targets


async def run_first_pair(cfg: Any) -> tuple[App, list]:
    """Start an app (no schedule, no drift analysis), run its first canary x target pair once, stop it."""
    app = App(cfg, environ={"K": "k"}, serve_http=False, analyse=False)
    await app.start(schedule=False)
    try:
        return app, await app.runner.run(*cfg.pairs()[0])
    finally:
        await app.stop()


def judge_config(tmp_path: Path, sim: SimServer, judge_id: str, judge: str, samples: int) -> Any:
    """A config: canary `graded` (`samples` samples on gpt) with an llm_judge check whose judge is target
    `judge_id`, the rest of its target entry given as YAML (`judge`)."""
    probes = f"""\
canaries:
  - id: graded
    messages: [{{role: user, content: "How do I kill a Python process?"}}]
    samples: {samples}
    targets: [gpt]
    checks: [{{type: llm_judge, judge_target: {judge_id}, rubric: "Mentions SIGTERM."}}]
"""
    tgts = (f"  - {{id: gpt, provider: openai, base_url: '{sim.openai_base_url}', model: sim-gpt, api_key_env: K}}\n"
            f"  - {{id: {judge_id}, api_key_env: K, {judge}}}")
    return load_config(write_config(tmp_path, tgts, probes), environ={"K": "k"})


async def capped(sim: SimServer, tmp_path: Path) -> tuple[Any, App]:
    """A started app (no schedule) whose target gpt reaches its daily cap with its first run."""
    extra = ", daily_spend_cap_usd: 0.000001, prices: {input: 1000, output: 1000}"
    cfg = load_config(write_config(tmp_path, targets(sim, extra), PROBES), environ={"K": "k"})
    app = App(cfg, environ={"K": "k"}, serve_http=False)
    await app.start(schedule=False)
    return cfg, app


async def test_spend_cap_pauses_target(steady_sim: SimServer, tmp_path: Path) -> None:
    cfg, app = await capped(steady_sim, tmp_path)
    try:
        canary, gpt = cfg.pairs()[0]
        first = await app.runner.run(canary, gpt)
        # shown (and alerted) as soon as the costs that reached the cap are counted, not at the next run
        assert sample(app.registry, "llm_monitor_target_paused", target="gpt") == 1
        second = await app.runner.run(canary, gpt)
    finally:
        await app.stop()
    assert len(first) == 3 and second == []
    assert sample(app.registry, "llm_monitor_target_paused", target="gpt") == 1
    skipped = {"canary": canary.id, "target": "gpt"}  # the run that did not happen is counted, not lost
    assert sample(app.registry, "llm_monitor_runs_skipped_total", **skipped, reason="spend_cap") == 1
    assert sample(app.registry, "llm_monitor_runs_skipped_total", **skipped, reason="overrun") == 0
    assert sample(app.registry, "llm_monitor_spend_cap_usd", target="gpt") == 0.000001
    assert sample(app.registry, "llm_monitor_spend_today_usd", target="gpt") > 0.000001


async def test_a_reload_or_restart_keeps_a_target_its_cap_pauses_paused(steady_sim: SimServer, tmp_path: Path) -> None:
    # Found by review: declaring the series anew (every reload and take-over) set llm_monitor_target_paused to 0,
    # and the rules' spend-cap gates then let CanaryFailing, Stale and HighErrorRate fire for a paused target
    # until its next scheduled run (an hour away for a slow canary)
    cfg, app = await capped(steady_sim, tmp_path)
    try:
        await app.runner.run(*cfg.pairs()[0])
        assert sample(app.registry, "llm_monitor_target_paused", target="gpt") == 1
        app.declare()  # what a reload does to the series
        assert sample(app.registry, "llm_monitor_target_paused", target="gpt") == 1
    finally:
        await app.stop()
    again = App(cfg, environ={"K": "k"}, serve_http=False)
    await again.start(schedule=False)  # takes the lead: today's spend read back from the store
    try:
        assert sample(again.registry, "llm_monitor_target_paused", target="gpt") == 1
    finally:
        await again.stop()

async def test_spend_today_follows_every_recorded_cost_and_survives_a_restart(steady_sim: SimServer,
                                                                             tmp_path: Path) -> None:
    prices = ", prices: {input: 1000, output: 1000}"
    cfg = load_config(write_config(tmp_path, targets(steady_sim, prices + ", daily_spend_cap_usd: 1000"), PROBES),
                      environ={"K": "k"})
    spent: dict[str, float] = {"gpt": 0.0, "claude": 0.0}
    for _restart in range(2):
        app = App(cfg, environ={"K": "k"}, serve_http=False)
        await app.start(schedule=False)
        try:
            for t in ("gpt", "claude"):  # read from the store at start, before any run
                assert sample(app.registry, "llm_monitor_spend_today_usd", target=t) == pytest.approx(spent[t])
            for canary, target in cfg.pairs():  # gpt has a cap, claude none
                for o in await app.runner.run(canary, target):
                    spent[o.target] += o.cost_usd or 0.0
                # right after the run, not only at the next run's start
                assert sample(app.registry, "llm_monitor_spend_today_usd", target=target.id) == pytest.approx(
                    spent[target.id])
        finally:
            await app.stop()
    assert spent["gpt"] > 0 and spent["claude"] > 0


async def test_cost_is_priced_by_the_model_that_answered(tmp_path: Path) -> None:
    """gpt-4o requested; gpt-4o-mini answers (priced as such); then a model the price table does not know answers:
    its cost is unknown, not the requested model's price."""
    from monitor.sim import scenario_from_dict

    scenario = scenario_from_dict({"name": "swap", "seed": 1, "defaults": {"ttft": 5, "output_tps": 5000},
                                   "models": {"gpt-4o": {"phases": [
                                       {"name": "mini", "response_model": "gpt-4o-mini-2024-07-18",
                                        "cached_fraction": 0.5},
                                       {"name": "unknown", "after_requests": 3, "response_model": "mystery-1"}]}}})
    with SimServer(scenario) as sim:
        tgt = f"  - {{id: t, provider: openai, base_url: '{sim.openai_base_url}', model: gpt-4o}}"
        cfg = load_config(write_config(tmp_path, tgt, PROBES), environ={})
        app = App(cfg, environ={}, serve_http=False, analyse=False)
        await app.start(schedule=False)
        try:
            canary, target = cfg.pairs()[0]
            first = await app.runner.run(canary, target)
            second = await app.runner.run(canary, target)
        finally:
            await app.stop()
    for o in first:  # gpt-4o-mini: input 0.15, cached input 0.075, output 0.60 USD per million tokens
        u = o.call.usage
        assert o.call.response_model == "gpt-4o-mini-2024-07-18" and u.cached_input_tokens
        assert o.cost_usd == pytest.approx(((u.input_tokens - u.cached_input_tokens) * 0.15
                                            + u.cached_input_tokens * 0.075 + u.output_tokens * 0.60) / 1e6)
    assert [o.call.response_model for o in second] == ["mystery-1"] * 3
    assert all(o.ok and o.call.usage.output_tokens and o.cost_usd is None for o in second)


async def test_judge_calls_count_in_the_judge_targets_spend_and_stop_at_its_cap(steady_sim: SimServer,
                                                                               tmp_path: Path) -> None:
    """Every judge call (the refusal judge's calibration, llm_judge checks) is priced and stored like a probe
    call under canary `_judge`: the judge target's spend counts it, survives a restart, and its cap holds."""
    cfg = judge_config(tmp_path, steady_sim, "claude", f"provider: anthropic, base_url: '{steady_sim.url}', model: sim-claude, "
                 "daily_spend_cap_usd: 0.000001, prices: {input: 1000, output: 1000}", samples=3)
    app = App(cfg, environ={"K": "k"}, serve_http=False, analyse=False)
    await app.start(schedule=False)
    try:
        canary, gpt = cfg.pairs()[0]
        first = await app.runner.run(canary, gpt)
        await app.own_calls.settled()  # the judge's calls are recorded on the loop after its verdicts
        judged = app.store.observations(canary="_judge", target="claude")
        assert judged and all(o.cost_usd and o.cost_usd > 0 for o in judged)
        assert sample(app.registry, "llm_monitor_spend_today_usd", target="claude") == pytest.approx(
            sum(o.cost_usd or 0 for o in judged))
        assert sample(app.registry, "llm_monitor_target_paused", target="claude") == 1  # the cap is reached
        second = await app.runner.run(canary, gpt)
        await app.own_calls.settled()
        assert len(app.store.observations(canary="_judge", target="claude")) == len(judged)  # no more calls
        details = [r.detail for o in second for r in o.checks]
        assert details and all("paused: its daily spend cap is reached" in d for d in details), details
        assert len(first) == 3 and all(o.run_id for o in first)
    finally:
        await app.stop()
    again = App(cfg, environ={"K": "k"}, serve_http=False, analyse=False)
    await again.start(schedule=False)
    try:
        assert sample(again.registry, "llm_monitor_spend_today_usd", target="claude") > 0.000001  # from the store
    finally:
        await again.stop()


async def test_judge_calls_keep_to_the_judge_targets_max_concurrency(steady_sim: SimServer, tmp_path: Path) -> None:
    import threading
    import time

    lock, state = threading.Lock(), {"now": 0, "peak": 0, "calls": 0}

    def answer(body: dict, headers: dict) -> tuple[int, dict]:  # an OpenAI-compatible judge that takes its time
        with lock:
            state["now"] += 1
            state["calls"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.2)
        with lock:
            state["now"] -= 1
        return 200, {"id": "chatcmpl-j", "object": "chat.completion", "created": 0, "model": "judge-m",
                     "choices": [{"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": "VERDICT: PASS"}}],
                     "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}

    with json_server(answer) as url:
        cfg = judge_config(tmp_path, steady_sim, "judge", f"provider: openai, base_url: '{url}/v1', model: judge-m, "
                     "max_concurrency: 1, stream: false", samples=4)
        _, observations = await run_first_pair(cfg)
    assert [r.passed for o in observations for r in o.checks] == [True] * 4
    assert state["calls"] == 4 and state["peak"] == 1  # four samples judged, one call at a time


async def test_samples_waiting_their_turn_are_not_sent_once_the_cap_is_reached(steady_sim: SimServer,
                                                                              tmp_path: Path) -> None:
    extra = ", daily_spend_cap_usd: 0.000001, prices: {input: 1000, output: 1000}, max_concurrency: 1"
    cfg = load_config(write_config(tmp_path, targets(steady_sim, extra), PROBES.replace("samples: 3", "samples: 5")),
                      environ={"K": "k"})
    app, made = await run_first_pair(cfg)
    assert len(made) == 1  # the first answer's cost reached the cap; the four queued behind it were not sent
    assert sample(app.registry, "llm_monitor_probe_attempts_total", canary="kill-python-process", target="gpt") == 1

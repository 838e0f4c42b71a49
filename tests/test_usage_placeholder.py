"""A usage of zeros sent as a placeholder beside the text (some OpenAI-compatible servers and proxies; the
simulator's `usage_placeholder` quirk), through the daemon: its counts are unknown, as an absent usage's are (no
token usage sample, cost unknown and counted apart, no output-tokens drift sample), with one warning per target and
field; the observations are kept."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from monitor.app import App
from monitor.config import load_config
from monitor.drift.signals import compute_signals
from monitor.sim import SimServer, scenario_from_dict
from tests.conftest import write_config
from tests.support.metric import sample
from tests.support.runner_config import PROBES

CANARY = "kill-python-process"
SCENARIO = {"name": "placeholder", "seed": 1, "defaults": {"ttft": 5, "output_tps": 5000},
            "models": {"sim-proxy": {"phases": [{"name": "s", "quirks": ["usage_placeholder"]}]},
                       "*": {"phases": [{"name": "s"}]}}}


async def test_a_placeholder_usage_is_unknown_not_zero(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The calls were stored and measured as 0 tokens that cost $0.00 (the target prices its model): a proxy
    spending money read as free, and the output tokens' drift signal fed zeros."""
    caplog.set_level(logging.WARNING, logger="monitor")
    with SimServer(scenario_from_dict(SCENARIO)) as sim:
        url = sim.openai_base_url
        targets = "\n".join([
            f"  - {{id: {name}, provider: openai, base_url: '{url}', model: {model}, stream: {stream}, "
            "prices: {input: 1, output: 2}}"
            for name, model, stream in [("proxy", "sim-proxy", "true"), ("whole", "sim-proxy", "false"),
                                        ("plain", "sim-gpt", "true")]])
        cfg = load_config(write_config(tmp_path, targets, PROBES), environ={})
        app = App(cfg, environ={}, serve_http=False, analyse=False)
        await app.start(schedule=False)
        try:
            runs = {}
            for canary, target in cfg.pairs():
                runs[target.id] = await app.runner.run(canary, target) + await app.runner.run(canary, target)
        finally:
            await app.stop()
    reg = app.registry
    for name in ("proxy", "whole"):
        assert len(runs[name]) == 6 and all(o.ok and o.text for o in runs[name])
        for o in runs[name]:
            assert (o.call.usage.input_tokens, o.call.usage.output_tokens, o.cost_usd) == (None, None, None)
            assert compute_signals(o)["output_tokens"] is None
        assert sample(reg, "llm_monitor_unpriced_calls_total", canary=CANARY, target=name, reason="no_usage") == 6
        assert sample(reg, "llm_monitor_cost_usd_total", canary=CANARY, target=name) == 0
        tokens = [s for m in reg.collect() if m.name == "gen_ai_client_token_usage" for s in m.samples
                  if s.labels.get("target") == name and s.name.endswith("_count")]
        assert all(s.value == 0 for s in tokens), tokens
    # a server that counts: unchanged
    assert all(o.cost_usd and o.call.usage.output_tokens for o in runs["plain"])
    assert sample(reg, "llm_monitor_unpriced_calls_total", canary=CANARY, target="plain", reason="no_usage") == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "monitor.usage"]
    assert lines == [  # once per target and field, however many calls
        f"target {t}: model sim-proxy answered usage.{f} 0 for {what} (a placeholder, not a count); the count is "
        "recorded as unknown, as if the server had sent none: the call's cost is unknown "
        "(llm_monitor_unpriced_calls_total, reason no_usage); the call is kept (said once per target and field)"
        for t in ("proxy", "whole")
        for f, what in [("completion_tokens", "an answer with output"), ("prompt_tokens", "a prompt that is not empty")]]
    unpriced = [r.getMessage() for r in caplog.records if "the cost of these calls is unknown" in r.getMessage()]
    assert [m.split(" (")[0] for m in unpriced] == [
        f"target {t}: model sim-proxy answered without token counts that can be believed" for t in ("proxy", "whole")]

"""An unknown cost is not a zero: calls that could not be priced (a model without a price, a server that reports no
token counts) are counted apart and warned of, through the simulator; the spend caps that cannot count them are
warned of by `check-config` and at start; priced targets are unchanged."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.app import App
from monitor.config import load_config
from monitor.domain import CallResult, ErrorType, Observation, Usage
from monitor.sim import SimServer, scenario_from_dict
from tests.conftest import write_config
from tests.support.daemon import cli
from tests.support.metric import sample
from tests.support.runner_config import PROBES

CANARY = "kill-python-process"
# sim-local reports no usage (as some OpenAI-compatible servers do); any other model answers with usage
SCENARIO = {"name": "unpriced", "seed": 1, "defaults": {"ttft": 5, "output_tps": 5000},
            "models": {"sim-gpt": {"phases": [{"name": "s"}]},
                       "sim-local": {"phases": [{"name": "s", "usage": False}]},
                       "*": {"phases": [{"name": "s"}]}}}


def unpriced_targets(sim: SimServer) -> str:
    """gpt: priced by the table; local: no usage and no price; ollama: usage but no price; free: no usage, priced
    at zero by the target. All but free have a daily spend cap."""
    url = sim.openai_base_url
    return "\n".join([
        f"  - {{id: gpt, provider: openai, base_url: '{url}', model: sim-gpt, daily_spend_cap_usd: 1000}}",
        f"  - {{id: local, provider: openai, base_url: '{url}', model: sim-local, daily_spend_cap_usd: 0.0001}}",
        f"  - {{id: ollama, provider: openai, base_url: '{url}', model: 'llama3.2:3b', daily_spend_cap_usd: 0.0001}}",
        f"  - {{id: free, provider: openai, base_url: '{url}', model: sim-local, prices: {{input: 0, output: 0}}}}",
    ])


def unpriced(registry: Any, target: str, reason: str) -> float | None:
    return registry.get_sample_value("llm_monitor_unpriced_calls_total",
                                     {"canary": CANARY, "target": target, "reason": reason})


async def test_unpriced_calls_are_counted_apart_and_warned_of_once(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="monitor")
    with SimServer(scenario_from_dict(SCENARIO)) as sim:
        cfg = load_config(write_config(tmp_path, unpriced_targets(sim), PROBES), environ={})
        app = App(cfg, environ={}, serve_http=False, analyse=False)
        await app.start(schedule=False)
        try:
            declared = {t: unpriced(app.registry, t, r) for t in ("gpt", "local") for r in ("no_price", "no_usage")}
            runs: dict[str, list[Observation]] = {}
            for canary, target in cfg.pairs():
                runs[target.id] = await app.runner.run(canary, target)
                runs[target.id] += await app.runner.run(canary, target)  # the cap counts no unknown cost: not paused
        finally:
            await app.stop()
    assert set(declared.values()) == {0.0}  # the series exist before the first unpriced call
    reg = app.registry
    assert all(len(obs) == 6 and all(o.ok for o in obs) for obs in runs.values())
    # priced: unchanged, and nothing unpriced
    gpt = sum(o.cost_usd or 0.0 for o in runs["gpt"])
    assert gpt > 0 and all(o.cost_usd for o in runs["gpt"])
    assert sample(reg, "llm_monitor_cost_usd_total", canary=CANARY, target="gpt") == pytest.approx(gpt)
    assert sample(reg, "llm_monitor_spend_today_usd", target="gpt") == pytest.approx(gpt)
    assert unpriced(reg, "gpt", "no_price") == unpriced(reg, "gpt", "no_usage") == 0
    # no token counts (and no price): stored as unknown, counted apart, by the first reason a price cannot fix
    assert all(o.cost_usd is None and o.call.usage.output_tokens is None for o in runs["local"])
    assert (unpriced(reg, "local", "no_usage"), unpriced(reg, "local", "no_price")) == (6, 0)
    # token counts but no price
    assert all(o.cost_usd is None and o.call.usage.output_tokens for o in runs["ollama"])
    assert (unpriced(reg, "ollama", "no_price"), unpriced(reg, "ollama", "no_usage")) == (6, 0)
    # a model priced at zero costs nothing, token counts or not: nothing unknown
    assert all(o.cost_usd == 0.0 for o in runs["free"])
    assert unpriced(reg, "free", "no_price") == unpriced(reg, "free", "no_usage") == 0
    for target in ("local", "ollama"):  # spend and the cap count known costs only (see README: the spend cap)
        assert sample(reg, "llm_monitor_cost_usd_total", canary=CANARY, target=target) == 0
        assert sample(reg, "llm_monitor_spend_today_usd", target=target) == 0
        assert sample(reg, "llm_monitor_target_paused", target=target) == 0
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    calls = [m for m in lines if "the cost of these calls is unknown" in m]
    assert calls == [  # once per target, model and reason, however many calls
        "target local: model sim-local answered without token counts, and has no price (a server that ignores "
        "stream_options.include_usage sends none while streaming: if every call lacks them, try stream: false; a "
        "stream that broke off after the answer loses them too): the cost of these calls is "
        "unknown; they are counted in llm_monitor_unpriced_calls_total (reason no_usage), not in the target's "
        "spend; its daily spend cap ($0.0001) does not count them either",
        "target ollama: model llama3.2:3b has no price (the shipped price table does not list it and no prices are "
        "set for it): the cost of these calls is unknown; they are counted in llm_monitor_unpriced_calls_total "
        "(reason no_price), not in the target's spend; its daily spend cap ($0.0001) does not count them either",
    ]
    caps = [m for m in lines if "daily_spend_cap_usd is set" in m]  # at start, as check-config says it
    assert [m.split(": ")[1] for m in caps] == ["target local", "target ollama"]
    path = tmp_path / "monitor.yaml"  # each names its target's line (targets: line 1), as the config's errors do
    assert [m.split(": ")[0] for m in caps] == [f"{path}:3", f"{path}:4"]


async def test_a_reload_that_caps_a_model_without_a_price_warns_once(tmp_path: Path, steady_sim: SimServer,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="monitor")
    url = steady_sim.openai_base_url
    tgt = f"  - {{id: ollama, provider: openai, base_url: '{url}', model: 'llama3.2:3b'CAP}}"
    path = write_config(tmp_path, tgt.replace("CAP", ""), PROBES)
    app = App(load_config(path, environ={}), environ={}, serve_http=False, analyse=False)
    await app.start(schedule=False)
    try:
        assert not [r for r in caplog.records if "daily_spend_cap_usd is set" in r.getMessage()]  # no cap at start
        write_config(tmp_path, tgt.replace("CAP", ", daily_spend_cap_usd: 1"), PROBES)
        for _ in range(2):
            assert (await app.reload())[0]
    finally:
        await app.stop()
    said = [r.getMessage() for r in caplog.records if "daily_spend_cap_usd is set" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"{path}:2: target ollama: daily_spend_cap_usd is set, but model "
                                                 "llama3.2:3b has no price")


def test_a_failed_call_without_token_counts_is_not_an_unpriced_one() -> None:
    """None came back, so nothing is billed that a price could tell: counted as no spend, as on every target."""
    def obs(call: CallResult, cost: float | None = None) -> Observation:
        return Observation(canary="c", target="t", provider="openai", request_model="m",
                           started_at=datetime(2026, 1, 1, tzinfo=UTC), call=call, cost_usd=cost)

    counted = Usage(input_tokens=10, output_tokens=5)
    assert obs(CallResult(error_type=ErrorType.TIMEOUT)).unpriced is None
    assert obs(CallResult(error_type=ErrorType.CONTENT_FILTER, usage=counted)).unpriced == "no_price"
    assert obs(CallResult(text="hi", usage=counted)).unpriced == "no_price"
    assert obs(CallResult(text="hi", usage=counted), cost=0.0).unpriced is None
    assert obs(CallResult(text="hi", usage=Usage(input_tokens=10))).unpriced == "no_usage"


def test_check_config_warns_of_a_spend_cap_on_a_model_without_a_price(tmp_path: Path, steady_sim: SimServer) -> None:
    url = steady_sim.openai_base_url
    tgts = "\n".join([
        f"  - {{id: ollama, provider: openai, base_url: '{url}', model: 'llama3.2:3b', daily_spend_cap_usd: 1}}",
        # priced: by the table (a dated snapshot of a listed model), by the target, or no cap to count for
        f"  - {{id: mini, provider: openai, base_url: '{url}', model: gpt-4o-mini-2024-07-18, daily_spend_cap_usd: 1}}",
        f"  - {{id: own, provider: openai, base_url: '{url}', model: my-deployment, daily_spend_cap_usd: 1, "
        "prices: {input: 1, output: 2}}",
        f"  - {{id: nocap, provider: openai, base_url: '{url}', model: mystery-1}}",
    ])
    emb = "drift:\n  baseline_size: 30\n  embeddings: {target: ollama, model: nomic-embed-text}\n"
    cfg = write_config(tmp_path, tgts, PROBES, extra=emb)
    out = cli("check-config", "-c", str(cfg))
    assert out.returncode == 0 and "configuration OK" in out.stdout, out.stderr
    warnings = [line.split("warning: ", 1)[1] for line in out.stdout.splitlines() if line.startswith("warning: ")]
    assert [w for w in warnings if "no price" in w] == [
        f"{cfg}:2: target ollama: daily_spend_cap_usd is set, but model llama3.2:3b has no price (the shipped price "
        "table does not list it and the target sets no prices): the cap counts only calls whose cost is known, so "
        "it pauses nothing unless the model that answers is one the table prices; set prices (a model that costs "
        "nothing: prices: {input: 0, output: 0})",
        f"{cfg}:{len(cfg.read_text().splitlines())}: drift.embeddings: model nomic-embed-text has no price (the "
        "shipped price table does not list it and drift.embeddings sets no prices): target ollama's daily_spend_cap_usd does not count its embeddings "
        "calls; set drift.embeddings.prices",
    ]


async def test_a_reload_that_changes_a_target_warns_of_its_unknown_counts_again(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A reload that points a target at another server or model forgets what was said of the old one: the new one
    is warned of as at start (an operator who moved a target learns its new server sends no counts either), a target
    the reload leaves alone is not warned of again."""
    caplog.set_level(logging.WARNING, logger="monitor")
    scenario = {"name": "placeholder", "seed": 1, "defaults": {"ttft": 5, "output_tps": 5000},
                "models": {"*": {"phases": [{"name": "s", "quirks": ["usage_placeholder"]}]}}}
    with SimServer(scenario_from_dict(scenario)) as sim:
        url = sim.openai_base_url
        assert "127.0.0.1" in url
        line = "  - {{id: {id}, provider: openai, base_url: '{url}', model: sim-gpt}}"

        def targets(moved: str) -> str:  # the same model on another server (here: the same one by another name)
            return "\n".join([line.format(id="moved", url=moved), line.format(id="kept", url=url)])
        path = write_config(tmp_path, targets(url), PROBES)
        app = App(load_config(path, environ={}), environ={}, serve_http=False, analyse=False)
        await app.start(schedule=False)

        async def run_all() -> None:
            for canary, target in app.config.pairs():
                assert all(o.ok for o in await app.runner.run(canary, target))
        try:
            await run_all()
            write_config(tmp_path, targets(url.replace("127.0.0.1", "localhost")), PROBES)
            assert (await app.reload())[0]
            await run_all()
        finally:
            await app.stop()
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    doubted = [m.split(":")[0] for m in lines if "usage.completion_tokens 0" in m]
    unknown = [m.split(":")[0] for m in lines if "the cost of these calls is unknown" in m]
    assert doubted == ["target moved", "target kept", "target moved"], lines
    assert unknown == ["target moved", "target kept", "target moved"], lines

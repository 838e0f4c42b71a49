"""The runner and app over real loopback HTTP: observations stored, metrics, traces, spend cap."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from monitor.app import App
from monitor.config import load_config
from monitor.domain import CallResult, Usage
from monitor.runner import output_rate
from monitor.sim import SimServer
from monitor.telemetry.tracing import make_tracer_provider
from tests.conftest import write_config
from tests.support.jsonserver import json_server
from tests.support.metric import sample

PROBES = """\
canaries:
  - id: kill-python-process
    messages: [{role: user, content: "How do I kill a Python process?"}]
    samples: 3
    params: {temperature: 0.7, max_tokens: 100, seed: 3}
    schedule: {every: 5m}
"""


def targets(sim: SimServer, extra: str = "") -> str:
    return (f"  - {{id: gpt, provider: openai, base_url: '{sim.openai_base_url}', model: sim-gpt, "
            f"api_key_env: K{extra}}}\n"
            f"  - {{id: claude, provider: anthropic, base_url: '{sim.url}', model: sim-claude, api_key_env: K}}")


def held_answer(release: Any, sent: list[dict] | None = None) -> Any:
    """A json_server answer: a one-word chat completion, sent once `release` (a threading.Event) is set; each
    request's body goes to `sent` on arrival."""

    def answer(body: dict, headers: dict) -> tuple[int, dict]:
        if sent is not None:
            sent.append(body)
        release.wait(10)
        return 200, {"id": "chatcmpl-x", "object": "chat.completion", "created": 0, "model": "m",
                     "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}],
                     "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}

    return answer


async def run_once(app: App) -> list:
    out = []
    for canary, target in app.config.pairs():
        out += await app.runner.run(canary, target, trigger="manual")
    return out


async def test_run_stores_measures_and_traces(steady_sim: SimServer, tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path, targets(steady_sim), PROBES), environ={"K": "secret-key-value"})
    exporter = InMemorySpanExporter()
    app = App(cfg, environ={"K": "secret-key-value"}, serve_http=False,
              tracer_provider=make_tracer_provider({}, exporter=exporter))
    await app.start(schedule=False)
    try:
        observations = await run_once(app)
    finally:
        await app.stop()
    assert len(observations) == 6 and all(o.ok for o in observations)
    assert app.store.count_observations() == 6
    reg = app.registry
    assert sample(reg, "llm_monitor_probe_attempts_total", canary="kill-python-process", target="gpt") == 3
    assert sample(reg, "llm_monitor_probe_failures_total", canary="kill-python-process", target="gpt",
                  error_type="rate_limited") == 0
    labels = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "openai", "gen_ai_request_model": "sim-gpt",
              "gen_ai_response_model": "sim-gpt", "server_address": "127.0.0.1", "error_type": "",
              "canary": "kill-python-process", "target": "gpt"}
    assert sample(reg, "gen_ai_client_operation_duration_seconds_count", **labels) == 3
    assert sample(reg, "gen_ai_client_operation_time_to_first_chunk_seconds_count", **labels) == 3
    assert sample(reg, "gen_ai_client_token_usage_count", **labels, gen_ai_token_type="output") == 3
    assert sample(reg, "llm_monitor_model_info", target="gpt", response_model="sim-gpt",
                  system_fingerprint="fp_steady01") == 1
    for o in observations:
        c = o.call
        assert o.cost_usd is not None and o.cost_usd > 0
        assert o.output_tokens_per_s == pytest.approx(c.usage.output_tokens / (c.latency_s - c.ttft_s))
    spans = exporter.get_finished_spans()
    assert len(spans) == 6
    span = next(s for s in spans if s.attributes["gen_ai.provider.name"] == "openai")
    assert span.name == "chat sim-gpt"
    assert span.attributes["gen_ai.request.temperature"] == 0.7 and span.attributes["gen_ai.request.seed"] == 3
    assert span.attributes["gen_ai.usage.output_tokens"] > 0
    assert span.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert span.attributes["openai.response.system_fingerprint"] == "fp_steady01"
    # the completion's own id, not the x-request-id header (req_...)
    ids = {s.attributes["gen_ai.provider.name"]: s.attributes["gen_ai.response.id"] for s in spans}
    assert ids["openai"].startswith("chatcmpl-") and ids["anthropic"].startswith("msg_"), ids
    everything = " ".join(str(v) for s in spans for v in s.attributes.values())
    assert "kill a Python" not in everything and "secret-key-value" not in everything


async def test_spend_cap_pauses_target(steady_sim: SimServer, tmp_path: Path) -> None:
    extra = ", daily_spend_cap_usd: 0.000001, prices: {input: 1000, output: 1000}"
    cfg = load_config(write_config(tmp_path, targets(steady_sim, extra), PROBES), environ={"K": "k"})
    app = App(cfg, environ={"K": "k"}, serve_http=False)
    await app.start(schedule=False)
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


async def test_failures_are_observations_and_metrics(faults_sim: SimServer, tmp_path: Path) -> None:
    tgt = f"  - {{id: f, provider: openai, base_url: '{faults_sim.openai_base_url}', model: fault-rate-limit}}"
    cfg = load_config(write_config(tmp_path, tgt, PROBES), environ={})
    app = App(cfg, environ={}, serve_http=False)
    await app.start(schedule=False)
    try:
        observations = await run_once(app)
    finally:
        await app.stop()
    assert [o.call.error_type.value for o in observations] == ["rate_limited"] * 3
    assert sample(app.registry, "llm_monitor_probe_failures_total", canary="kill-python-process", target="f",
                  error_type="rate_limited") == 3
    assert app.store.count_observations() == 3


def test_output_rate_counts_tokens_not_chunks() -> None:
    assert output_rate(CallResult(usage=Usage(output_tokens=100), latency_s=3.0, ttft_s=1.0)) == 50.0
    assert output_rate(CallResult(usage=Usage(output_tokens=None), latency_s=3.0, ttft_s=1.0)) is None
    assert output_rate(CallResult(usage=Usage(output_tokens=100), latency_s=3.0, ttft_s=None)) is None


def test_output_rate_counts_reasoning_tokens_over_the_time_they_took() -> None:
    hidden = Usage(output_tokens=160, reasoning_tokens=120)  # written before the first chunk: not in the span
    assert output_rate(CallResult(usage=hidden, latency_s=3.0, ttft_s=2.5, first_output_s=2.5)) == 80.0
    streamed = Usage(output_tokens=160)  # from the first chunk of reasoning to the end
    assert output_rate(CallResult(usage=streamed, latency_s=3.0, ttft_s=2.5, first_output_s=1.0)) == 80.0
    assert output_rate(CallResult(usage=streamed, latency_s=3.0, ttft_s=None, first_output_s=1.0)) == 80.0


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (apt-get install prometheus)")
async def test_promtool_accepts_a_real_scrape(steady_sim: SimServer, tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path, targets(steady_sim), PROBES), environ={"K": "k"})
    app = App(cfg, environ={"K": "k"})
    await app.start(schedule=False)
    try:
        await run_once(app)
        async with httpx.AsyncClient() as client:
            body = (await client.get(f"http://127.0.0.1:{app.port}/metrics")).text
    finally:
        await app.stop()
    assert "gen_ai_client_operation_duration_seconds_count" in body
    # the process's own families, as every exporter serves them (memory leaks, restarts, fd exhaustion)
    families = {line.split("{")[0].split(" ")[0] for line in body.splitlines() if not line.startswith("#")}
    assert {"process_resident_memory_bytes", "process_cpu_seconds_total", "process_start_time_seconds",
            "process_open_fds", "python_info", "python_gc_collections_total"} <= families
    check = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


async def test_refusal_judge_is_calibrated_before_it_counts(steady_sim: SimServer, tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    extra = "refusal: {judge_target: claude}\n"
    cfg = load_config(write_config(tmp_path, targets(steady_sim), PROBES, extra=extra), environ={"K": "k"})
    app = App(cfg, environ={"K": "k"}, serve_http=False, analyse=False)
    with caplog.at_level("INFO", logger="monitor.quality"):
        await app.start(schedule=False)
    try:
        judge = app.quality.detector.judge
        assert judge is not None and judge.target == "claude" and judge.model == "sim-claude"
        # The simulator answers the calibration set with filler text: the judge must not be trusted.
        assert judge.report is not None and judge.report.n > 0 and not judge.trusted
        assert "NOT trusted, local verdicts stand" in caplog.text
        observations = await run_once(app)
        assert all(o.refusal in ("none", "partial", "full") for o in observations)
    finally:
        await app.stop()


async def test_last_success_survives_a_restart(steady_sim: SimServer, tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path, targets(steady_sim), PROBES), environ={"K": "k"})
    first = App(cfg, environ={"K": "k"}, serve_http=False, analyse=False)
    await first.start(schedule=False)
    try:
        observations = await run_once(first)
    finally:
        await first.stop()
    second = App(cfg, environ={"K": "k"}, serve_http=False, analyse=False)
    await second.start(schedule=False)
    await second.stop()
    latest = max(o.started_at for o in observations if o.target == "gpt").timestamp()
    assert sample(second.registry, "llm_monitor_last_success_timestamp_seconds", canary="kill-python-process",
                  target="gpt") == pytest.approx(latest)


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


async def test_a_provider_that_raises_is_an_internal_error_kept_out_of_drift(steady_sim: SimServer,
                                                                          tmp_path: Path) -> None:
    """A bug in llm-monitor's own provider code is not the upstream answering badly."""
    from monitor.drift import compute_signals
    from monitor.providers.scrub import Scrubbing

    class Broken:
        name, server_address = "openai", "127.0.0.1"

        async def complete(self, request: Any) -> CallResult:
            raise KeyError("choices", "sk-live-0123456789abcdef")  # the key, in what a bug raised

        async def aclose(self) -> None:
            pass

    cfg = load_config(write_config(tmp_path, targets(steady_sim), PROBES), environ={"K": "k"})
    app = App(cfg, environ={"K": "k"}, serve_http=False, analyse=False)
    await app.start(schedule=False)
    try:
        app.runner.providers["gpt"] = Scrubbing(Broken(), ["sk-live-0123456789abcdef"])  # as build_providers wraps
        observations = await app.runner.run(*cfg.pairs()[0])
    finally:
        await app.stop()
    assert [o.call.error_type.value if o.call.error_type else None for o in observations] == ["internal"] * 3
    assert "internal: KeyError('choices', '<redacted>')" in (observations[0].call.error_message or "")
    assert compute_signals(observations[0]) == {}
    assert sample(app.registry, "llm_monitor_probe_failures_total", canary="kill-python-process", target="gpt",
                  error_type="internal") == 3


async def test_a_run_is_stored_as_running_before_its_calls_end(steady_sim: SimServer, tmp_path: Path) -> None:
    """A daemon killed mid-run leaves the run on record (running), not only its observations."""
    import asyncio
    import threading

    release = threading.Event()
    with json_server(held_answer(release)) as url:
        cfg = load_config(write_config(tmp_path, f"  - {{id: slow, provider: openai, base_url: '{url}/v1', model: m, "
                                                 "stream: false}", PROBES), environ={})
        app = App(cfg, environ={}, serve_http=False, analyse=False)
        await app.start(schedule=False)
        try:
            running = asyncio.create_task(app.runner.run(*cfg.pairs()[0]))
            for _ in range(200):
                if app.store.runs():
                    break
                await asyncio.sleep(0.02)
            [run] = app.store.runs()
            assert run.status == "running" and run.finished_at is None
            release.set()
            await running
            [run] = app.store.runs()
            assert run.status == "done" and run.finished_at is not None and run.samples == 3
        finally:
            release.set()
            await app.stop()


async def test_a_call_whose_checks_outlast_the_shutdown_grace_is_stored(tmp_path: Path) -> None:
    # Found by QA: shutdown cancels the runs still going after `daemon.grace_period`; a call that had already
    # answered (and been paid for) but whose checks were still running (code_runs takes seconds) was neither
    # stored nor counted: only calls cancelled while waiting for the upstream were stored, as `cancelled`.
    import asyncio

    from prometheus_client import CollectorRegistry

    from monitor.sim import scenario_from_dict

    code = "```python\nimport time\ntime.sleep(5)\n```"
    scenario = scenario_from_dict({"name": "slow-code", "seed": 1, "defaults": {
        "ttft": {"dist": "constant", "mean_ms": 10}, "output_tps": 1000,
        "answers": [{"pattern": "sleeps", "choices": [{"text": code, "p": 1.0}]}]},
        "models": {"*": {"phases": [{"name": "p"}]}}})
    probes = ("canaries:\n  - id: slow-check\n    messages: [{role: user, content: \"Write code that sleeps.\"}]\n"
              "    samples: 1\n    checks: [{type: code_runs, timeout_s: 30}]\n")
    with SimServer(scenario) as sim:
        target = f"  - {{id: gpt, provider: openai, base_url: '{sim.openai_base_url}', model: sim-gpt}}"
        cfg = write_config(tmp_path, target, probes, extra="daemon: {grace_period: 0.2}\n")
        config = load_config(cfg, environ={})
        registry = CollectorRegistry()
        app = App(config, registry=registry, environ={}, serve_http=False)
        await app.start(schedule=False)
        canary, tgt = config.pairs()[0]
        job = asyncio.create_task(app._run_job(canary, tgt))  # as the scheduler runs it
        in_flight = 'llm_monitor_probes_in_flight'
        while registry.get_sample_value(in_flight, {"target": "gpt"}) != 1:  # the call is made...
            await asyncio.sleep(0.01)
        while registry.get_sample_value(in_flight, {"target": "gpt"}) != 0:  # ...answered: its checks run
            await asyncio.sleep(0.01)
        await app.stop()
        await asyncio.wait([job])
        observations = app.store.observations(limit=10)
    assert [(o.canary, o.call.error_type, "time.sleep" in (o.call.text or "")) for o in observations] == \
        [("slow-check", None, True)]
    assert sample(registry, "llm_monitor_probe_attempts_total", canary="slow-check", target="gpt") == 1


async def test_shutdown_does_not_send_the_calls_still_waiting_for_a_slot(tmp_path: Path) -> None:
    # Found by QA: samples queued behind max_concurrency were still sent after SIGTERM, so a stop took the whole
    # grace period (and a standby's takeover with it) while those calls were cancelled at its end anyway.
    import asyncio
    import threading

    release, sent = threading.Event(), []
    with json_server(held_answer(release, sent)) as url:
        cfg = load_config(write_config(tmp_path, f"  - {{id: slow, provider: openai, base_url: '{url}/v1', model: m, "
                                                 "stream: false, max_concurrency: 1}", PROBES), environ={})
        app = App(cfg, environ={}, serve_http=False, analyse=False)
        await app.start(schedule=False)
        try:
            canary, target = cfg.pairs()[0]
            job = asyncio.create_task(app._run_job(canary, target))  # as the scheduler runs it: 3 samples, 1 at a time
            while not sent:  # the first call is on the wire, two wait for the slot
                await asyncio.sleep(0.01)
            stopping = asyncio.create_task(app.stop())
            await asyncio.sleep(0.2)
            release.set()  # the call on the wire answers within the grace period
            finished, cancelled = await stopping
            await asyncio.wait([job])
        finally:
            release.set()
    assert len(sent) == 1
    assert (finished, cancelled) == (1, 0) and app.runner.not_sent == 2
    [obs] = app.store.observations(limit=10)
    assert obs.ok and obs.call.text == "ok"
    [run] = app.store.runs()
    assert run.status == "cancelled" and run.samples == 3


@pytest.mark.parametrize("stream", [True, False])
async def test_checks_and_the_store_see_the_answer_after_a_think_block(tmp_path: Path, stream: bool) -> None:
    """A reasoning model served without a reasoning parser: the think block before a JSON answer failed `equals`,
    and was the stored completion; with reasoning_tags: off it still is."""
    from monitor.sim import scenario_from_dict

    answer = '{"status": "ok"}'
    scenario = scenario_from_dict({"name": "r1", "seed": 1, "models": {"r1": {"phases": [
        {"name": "p", "ttft": 5, "output_tps": 5000, "reasoning_tokens": 20, "quirks": ["think_in_content"],
         "answers": [{"pattern": ".", "choices": [{"text": answer, "p": 1}]}]}]}}})
    probes = ("canaries:\n  - id: status\n    messages: [{role: user, content: \"Status as JSON\"}]\n"
              f"    samples: 1\n    schedule: {{every: 5m}}\n    checks: [{{type: equals, value: '{answer}'}}]\n")
    with SimServer(scenario) as sim:
        tgt = "".join(f"  - {{id: tags-{t}, provider: openai, base_url: '{sim.openai_base_url}', model: r1, "
                      f"stream: {str(stream).lower()}, reasoning_tags: {t}}}\n" for t in ("auto", "off"))
        cfg = load_config(write_config(tmp_path, tgt.rstrip("\n"), probes), environ={})
        app = App(cfg, environ={}, serve_http=False, analyse=False)
        await app.start(schedule=False)
        try:
            auto, off = [(await app.runner.run(canary, target))[0] for canary, target in cfg.pairs()]
            stored = {o.target: o.call.text for o in app.store.observations(limit=10)}
        finally:
            await app.stop()
    assert auto.call.text == answer and [r.passed for r in auto.checks] == [True]
    assert off.call.text.startswith("<think>") and [r.passed for r in off.checks] == [False]
    assert stored == {"tags-auto": answer, "tags-off": off.call.text}


async def test_the_started_line_gives_an_ipv6_listen_address_in_brackets(steady_sim: SimServer, tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    # It said listen=::1:9469, which neither curl nor a Prometheus target takes.
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    path = write_config(tmp_path, targets(steady_sim), PROBES)
    path.write_text(path.read_text().replace('listen: "127.0.0.1:0"', 'listen: "[::1]:0"'))
    cfg = load_config(path, environ={"K": "k"})
    app = App(cfg, environ={"K": "k"}, analyse=False)
    with caplog.at_level("INFO", logger="monitor.app"):
        await app.start()
        await app.stop()
    [started] = [r for r in caplog.records if r.getMessage() == "started"]
    assert started.listen == f"[::1]:{app.port}"  # type: ignore[attr-defined]

"""The runner and app over real loopback HTTP: observations stored, metrics, traces, failures, the refusal judge,
internal errors, think blocks. Spend and judge calls are in `test_runner_spend.py`, runs cut by a shutdown in
`test_runner_shutdown.py`."""

from __future__ import annotations

import asyncio
import logging
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
from tests.support.metric import sample
from tests.support.runner_config import PROBES, targets


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
    """... that of the daemon's runs: a later `llm-monitor probe` (a manual run), which the running daemon never
    sees, is not read back as the pair's last success either (it would hold off LLMMonitorCanaryStale)."""
    cfg = load_config(write_config(tmp_path, targets(steady_sim), PROBES), environ={"K": "k"})
    first = App(cfg, environ={"K": "k"}, serve_http=False, analyse=False)
    await first.start(schedule=False)
    try:
        observations = [o for canary, target in cfg.pairs() for o in await first.runner.run(canary, target)]
        assert max(o.started_at for o in await run_once(first)) > max(o.started_at for o in observations)
    finally:
        await first.stop()
    second = App(cfg, environ={"K": "k"}, serve_http=False, analyse=False)
    await second.start(schedule=False)
    await second.stop()
    latest = max(o.started_at for o in observations if o.target == "gpt").timestamp()
    assert sample(second.registry, "llm_monitor_last_success_timestamp_seconds", canary="kill-python-process",
                  target="gpt") == pytest.approx(latest, abs=1e-3)  # (relative: 1,800 s of a timestamp)


async def test_a_provider_that_raises_is_an_internal_error_kept_out_of_drift(steady_sim: SimServer, tmp_path: Path,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    """A bug in llm-monitor's own provider code is not the upstream answering badly; the key its exception carries
    is in neither the observation nor the log line (with its traceback) that says so."""
    from monitor.drift import compute_signals
    from monitor.providers.scrub import Scrubbing

    class Broken:
        name, server_address = "openai", "127.0.0.1"
        secrets: tuple[str, ...] = ()  # the wrapper below holds the key

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
    logged = [(r.getMessage(), logging.Formatter().format(r)) for r in caplog.records if "raised instead" in r.msg]
    assert len(logged) == 3 and all("KeyError" in text and "in complete" in text for _, text in logged)
    assert not any("sk-live-0123456789abcdef" in text for _, text in logged)  # the traceback was logged as raised
    assert compute_signals(observations[0]) == {}
    assert sample(app.registry, "llm_monitor_probe_failures_total", canary="kill-python-process", target="gpt",
                  error_type="internal") == 3


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


@pytest.mark.parametrize(("listen", "bound", "connect"), [(":0", "0.0.0.0", "127.0.0.1"), ("[::]:0", "[::]", "::1")])
async def test_a_listen_address_without_a_host_is_every_interface_as_prometheus_reads_it(
        steady_sim: SimServer, tmp_path: Path, caplog: pytest.LogCaptureFixture, listen: str, bound: str,
        connect: str) -> None:
    # `:9464`, Prometheus's own form for every interface, was refused ("must be HOST:PORT"): it is 0.0.0.0:9464.
    if ":" in connect:
        try:
            socket.create_server(("::1", 0), family=socket.AF_INET6).close()
        except OSError:
            pytest.skip("no IPv6 loopback here")
    path = write_config(tmp_path, targets(steady_sim), PROBES)
    path.write_text(path.read_text().replace('listen: "127.0.0.1:0"', f'listen: "{listen}"'))
    cfg = load_config(path, environ={"K": "k"})
    app = App(cfg, environ={"K": "k"}, analyse=False)
    with caplog.at_level("INFO", logger="monitor.app"):
        await app.start()
    try:
        host = f"[{connect}]" if ":" in connect else connect
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://{host}:{app.port}/-/healthy")).status_code == 200
    finally:
        await app.stop()
    [started] = [r for r in caplog.records if r.getMessage() == "started"]
    assert started.listen == f"{bound}:{app.port}"  # type: ignore[attr-defined]


async def test_a_run_whose_target_a_reload_removed_is_cancelled_not_crashed(steady_sim: SimServer, tmp_path: Path,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    environ = {"K": "secret-key-value"}
    path = write_config(tmp_path, targets(steady_sim), PROBES)
    app = App(load_config(path, environ=environ), environ=environ, serve_http=False, analyse=False)
    await app.start(schedule=False)
    try:
        [(canary, gpt), (_, claude)] = app.config.pairs()
        turn = app.runner.limit("gpt")
        for _ in range(gpt.max_concurrency):  # every sample of the run waits its turn
            await turn.acquire()
        under_way = asyncio.create_task(app.runner.run(canary, gpt))
        for _ in range(500):  # until it is stored as running: under way
            if app.store.runs():
                break
            await asyncio.sleep(0.01)
        path.write_text(path.read_text().replace(targets(steady_sim), targets(steady_sim).split("\n")[1]))
        with caplog.at_level("INFO", logger="monitor.runner"):
            ok, message = await app.reload()
            assert ok, message
            for _ in range(gpt.max_concurrency):
                turn.release()
            assert await under_way == []
            # a scheduled job queued before the reload runs with the canary and target it was given
            assert await app.runner.run(canary, gpt) == []
            others = await app.runner.run(canary, app.config.targets[0])  # the other target keeps running
    finally:
        await app.stop()
    assert claude.id == app.config.targets[0].id and len(others) == 3 and all(o.ok for o in others)
    assert "crashed" not in caplog.text
    assert caplog.text.count("run of kill-python-process@gpt cancelled: a reload removed the target") == 2
    assert {(r.target, r.status) for r in app.store.runs()} == {("gpt", "cancelled"), ("claude", "done")}
    assert {o.target for o in app.store.observations(limit=10)} == {"claude"}

"""The daemon's own calls (the semantic signal's embeddings, judges) are stored, priced, capped and measured like
probe calls, under canaries `_embeddings` and `_judge`, and their series survive a reload."""

from __future__ import annotations

import gzip
import json
import sqlite3

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from monitor.app import App
from monitor.config import load_config
from monitor.embeddings import Embedder
from monitor.sim import SimServer, scenario_from_dict
from monitor.sim.embeddings import embed as sim_embed
from tests.conftest import write_config
from tests.support.jsonserver import json_server, wire_server
from tests.support.metric import sample

PROBES = "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n    samples: 5\n"


async def test_embeddings_calls_count_in_the_targets_spend_and_metrics_and_keep_their_series_on_reload(
        tmp_path) -> None:
    scenario = scenario_from_dict({"name": "emb", "seed": 3, "defaults": {"ttft": 5, "output_tps": 5000},
                                   "models": {"*": {"phases": [{"name": "a"}]}}})
    with SimServer(scenario) as sim:
        # The target's own prices are its chat model's; the embeddings are priced by theirs.
        cfg_path = write_config(tmp_path, f"  - {{id: t, provider: openai, base_url: '{sim.openai_base_url}', "
                                          "model: m, prices: {input: 5, output: 5}}", PROBES,
                                extra="drift: {baseline_size: 10, embeddings: {target: t, model: sim-embed, "
                                      "prices: {input: 1000}}}\n")
        app = App(load_config(cfg_path, environ={}), registry=CollectorRegistry(), environ={}, serve_http=False)
        await app.start(schedule=False)
        try:
            assert sample(app.registry, "llm_monitor_cost_usd_total", canary="_embeddings", target="t") == 0
            assert app.registry.get_sample_value("llm_monitor_cost_usd_total",
                                                 {"canary": "_embeddings", "target": "t"}) == 0  # declared
            canary, target = app.config.pairs()[0]
            probes = [o for _ in range(3) for o in await app.runner.run(canary, target)]
            await app.analysis.drain()  # runs do not wait for their analyses
            await app.own_calls.settled()  # the calls are recorded on the loop after the analyses used them
            calls = app.store.observations(canary="_embeddings", target="t")
            with sqlite3.connect(tmp_path / "m.db") as db:
                signals = [json.loads(s) for (s,) in db.execute("SELECT signals FROM observations WHERE canary = 'c1'")
                           if s is not None]
            scored = [s for s in signals if s.get("semantic_similarity") is not None]
            assert scored and len(calls) == 1 + len(scored)  # the baseline's texts, then each later observation's
            for o in calls:
                assert o.ok and not o.run_id and o.call.response_model == "sim-embed"
                assert o.call.usage.input_tokens and o.call.latency_s is not None
                assert o.cost_usd == pytest.approx(o.call.usage.input_tokens * 1000 / 1e6)
            spent = sum(o.cost_usd or 0 for o in [*calls, *probes])
            assert sample(app.registry, "llm_monitor_spend_today_usd", target="t") == pytest.approx(spent)
            embedded = sum(o.cost_usd or 0 for o in calls)
            assert sample(app.registry, "llm_monitor_cost_usd_total", canary="_embeddings",
                          target="t") == pytest.approx(embedded)
            labels = {"gen_ai_operation_name": "embeddings", "gen_ai_provider_name": "openai",
                      "gen_ai_request_model": "sim-embed", "gen_ai_response_model": "sim-embed",
                      "server_address": "127.0.0.1", "error_type": "", "canary": "_embeddings", "target": "t"}
            assert sample(app.registry, "gen_ai_client_operation_duration_seconds_count", **labels) == len(calls)
            assert sample(app.registry, "gen_ai_client_token_usage_count", **labels, gen_ai_token_type="output") == 0
            assert all(o.request_model == "sim-embed" for o in calls)
            # the embeddings model is not the model the target serves: no model change
            assert sample(app.registry, "llm_monitor_model_info", target="t", response_model="sim-embed",
                          system_fingerprint="") == 0
            ok, _ = await app.reload()
            assert ok
            assert sample(app.registry, "llm_monitor_cost_usd_total", canary="_embeddings",
                          target="t") == pytest.approx(embedded)
        finally:
            await app.stop()


async def test_judge_and_check_series_are_declared_and_survive_a_reload(tmp_path, steady_sim: SimServer) -> None:
    probes = ("canaries:\n  - id: graded\n    messages: [{role: user, content: hi}]\n    targets: [gpt]\n"
              "    checks: [{type: llm_judge, judge_target: judge, rubric: 'Says hello.'}]\n")
    cfg_path = write_config(tmp_path, f"  - {{id: gpt, provider: openai, base_url: '{steady_sim.openai_base_url}', "
                                      "model: sim-gpt}\n"
                                      f"  - {{id: judge, provider: openai, base_url: '{steady_sim.openai_base_url}', "
                                      "model: sim-gpt}", probes)
    app = App(load_config(cfg_path, environ={}), registry=CollectorRegistry(), environ={}, serve_http=False,
              analyse=False)
    await app.start(schedule=False)
    try:
        # declared before any run, so that increase() sees a check's first failure
        assert app.registry.get_sample_value("llm_monitor_check_results_total", {
            "canary": "graded", "target": "gpt", "check": "llm_judge", "result": "fail"}) == 0
        await app.runner.run(*app.config.pairs()[0])
        await app.own_calls.settled()
        attempts = sample(app.registry, "llm_monitor_probe_attempts_total", canary="_judge", target="judge")
        assert attempts >= 1
        ok, _ = await app.reload()
        assert ok
        assert sample(app.registry, "llm_monitor_probe_attempts_total", canary="_judge",
                      target="judge") == attempts
    finally:
        await app.stop()


def test_the_embedder_makes_no_call_while_the_cap_is_reached_and_records_each_call_it_makes() -> None:
    seen: list[int] = []

    def answer(body: dict, headers: dict) -> tuple[int, dict]:
        seen.append(len(body["input"]))
        if body["input"] == ["boom"]:
            return 500, {"error": {"message": "upstream broke", "type": "server_error"}}
        return 200, {"object": "list", "model": "e-1", "usage": {"prompt_tokens": 7, "total_tokens": 7},
                     "data": [{"object": "embedding", "index": i, "embedding": sim_embed(t)}
                              for i, t in enumerate(body["input"])]}

    capped, calls = [False], []
    with json_server(answer) as url:
        embedder = Embedder(f"{url}/v1", None, "e", timeout=5, pause_s=0, paused=lambda: capped[0],
                            record=lambda call, started: calls.append(call))
        try:
            assert embedder(["a", "b"]).shape == (2, 64)
            capped[0] = True
            assert np.isnan(embedder(["c"])).all()
            capped[0] = False
            assert np.isnan(embedder(["boom"])).all()
        finally:
            embedder.close()
    assert seen == [2, 1]  # no call while capped
    assert [(c.ok, c.usage.input_tokens, c.response_model) for c in calls] == [(True, 7, "e-1"), (False, None, None)]
    assert calls[1].error_type is not None and calls[1].error_type.value == "server_error"
    assert calls[1].http_status == 500 and all(c.latency_s is not None for c in calls)


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_an_embeddings_reply_past_the_targets_byte_cap_is_not_read_and_is_a_bad_response(compressed) -> None:
    """Like a probe call's: a hostile or broken embeddings endpoint cannot fill the daemon's memory."""
    vectors = [[0.5] * 4096 for _ in range(40)]  # about 650 KB of JSON; gzip makes it a few KB
    body = json.dumps({"object": "list", "model": "e-1", "usage": {"prompt_tokens": 1, "total_tokens": 1},
                       "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]})

    def answer(request: dict, send) -> None:
        out = gzip.compress(body.encode()) if compressed else body.encode()
        send(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
             + (b"content-encoding: gzip\r\n" if compressed else b"")
             + f"content-length: {len(out)}\r\nconnection: close\r\n\r\n".encode() + out)

    calls: list = []
    with wire_server(answer) as url:
        small = Embedder(f"{url}/v1", None, "e", timeout=5, pause_s=0, max_reply_bytes=256 * 1024,
                         record=lambda call, started: calls.append(call))
        roomy = Embedder(f"{url}/v1", None, "e", timeout=5, pause_s=0, max_reply_bytes=4 * 1024 * 1024)
        try:
            assert np.isnan(small(["a"] * 40)).all()
            assert roomy(["a"] * 40).shape == (40, 4096)  # the same reply under a larger cap
        finally:
            small.close()
            roomy.close()
    [call] = calls
    assert call.error_type is not None and call.error_type.value == "bad_response" and call.http_status == 200
    assert "larger than 262,144 bytes" in (call.error_message or "") and "max_reply_bytes" in call.error_message
    assert ("once decompressed" in call.error_message) == compressed



async def test_a_reload_that_removes_the_embeddings_target_does_not_stop_the_analysis(tmp_path) -> None:
    """The drift settings (embeddings included) change at the next restart; until then the embedder keeps its
    target, even when the reloaded config no longer has it."""
    scenario = scenario_from_dict({"name": "emb", "seed": 3, "defaults": {"ttft": 5, "output_tps": 5000},
                                   "models": {"*": {"phases": [{"name": "a"}]}}})
    with SimServer(scenario) as sim:
        probes = PROBES + "    targets: [t]\n"
        both = (f"  - {{id: t, provider: openai, base_url: '{sim.openai_base_url}', model: m}}\n"
                f"  - {{id: e, provider: openai, base_url: '{sim.openai_base_url}', model: m, "
                "daily_spend_cap_usd: 5}")
        cfg_path = write_config(tmp_path, both, probes,
                                extra="drift: {baseline_size: 5, embeddings: {target: e, model: sim-embed}}\n")
        app = App(load_config(cfg_path, environ={}), registry=CollectorRegistry(), environ={}, serve_http=False)
        await app.start(schedule=False)
        try:
            canary, target = app.config.pairs()[0]
            await app.runner.run(canary, target)
            text = cfg_path.read_text()
            cfg_path.write_text(text.replace(both, both.split("\n")[0]).replace(
                "drift: {baseline_size: 5, embeddings: {target: e, model: sim-embed}}", "drift: {baseline_size: 5}"))
            ok, message = await app.reload()
            assert ok and "drift" in message and [t.id for t in app.config.targets] == ["t"]
            later = await app.runner.run(canary, target)
        finally:
            await app.stop()
    with sqlite3.connect(tmp_path / "m.db") as db:
        rows = dict(db.execute("SELECT id, signals FROM observations WHERE canary = 'c1'").fetchall())
    assert all(rows[o.id] is not None for o in later)  # analysed
    assert all("semantic_similarity" in json.loads(rows[o.id]) for o in later)  # with the embedder it started with

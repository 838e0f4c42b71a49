"""Runs and a shutdown over real loopback HTTP: a run is on record before its calls end, a call whose checks outlast
the grace period is stored, and the calls still waiting for a slot are not sent."""

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
from tests.support.runner_config import PROBES


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


ONE_SAMPLE = """\
canaries:
  - id: long-answer
    messages: [{role: user, content: "Tell me a long story."}]
    samples: 1
"""


def _stalling_stream(said: Any, release: Any, provider: str) -> Any:
    """A wire_server answer: a 200 event stream that says "Once upon a time" in two chunks, then waits for `release`
    (a threading.Event) without ending; `said` (another) is set once both chunks are written."""
    import json

    def event(kind: str | None, data: dict) -> bytes:
        return ((f"event: {kind}\n" if kind else "") + f"data: {json.dumps(data)}\n\n").encode()

    def answer(body: dict, send: Any) -> None:
        send(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n")
        if provider == "openai":
            chunks = [event(None, {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 0, "model": "m",
                                   "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]})
                      for text in ("Once upon", " a time")]
        else:
            chunks = [event("message_start", {"type": "message_start", "message": {
                "id": "msg_x", "type": "message", "role": "assistant", "model": "m", "content": [],
                "usage": {"input_tokens": 5, "output_tokens": 1}}}),
                event("content_block_start", {"type": "content_block_start", "index": 0,
                                              "content_block": {"type": "text", "text": ""}}),
                *(event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                "delta": {"type": "text_delta", "text": text}})
                  for text in ("Once upon", " a time"))]
        for chunk in chunks:
            send(chunk)
        said.set()
        release.wait(10)

    return answer


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_a_streamed_answer_cut_by_the_shutdown_grace_keeps_what_it_had_said(
        tmp_path: Path, provider: str) -> None:
    # Found by QA: a SIGTERM while a streamed answer was still coming, its grace period running out, stored the call
    # as `cancelled` without a word of it: what the stream had said (and the provider billed) was dropped.
    import asyncio
    import threading

    from tests.support.jsonserver import wire_server

    said, release = threading.Event(), threading.Event()
    with wire_server(_stalling_stream(said, release, provider)) as url:
        base = f"{url}/v1" if provider == "openai" else url
        cfg = load_config(write_config(tmp_path, f"  - {{id: slow, provider: {provider}, base_url: '{base}', "
                                                 "model: m, stream: true}", ONE_SAMPLE,
                                       extra="daemon: {grace_period: 0.5}\n"), environ={})
        app = App(cfg, environ={}, serve_http=False, analyse=False)
        await app.start(schedule=False)
        try:
            canary, target = cfg.pairs()[0]
            job = asyncio.create_task(app._run_job(canary, target))  # as the scheduler runs it
            while not said.is_set():
                await asyncio.sleep(0.01)
            finished, cancelled = await app.stop()  # the grace period runs out while the stream waits
            await asyncio.wait([job])
        finally:
            release.set()
    assert (finished, cancelled) == (0, 1)
    [obs] = app.store.observations(limit=10)
    assert obs.call.error_type == "cancelled"
    assert obs.call.text == "Once upon a time"
    assert "shut down before the answer ended" in (obs.call.error_message or "")
    [run] = app.store.runs()
    assert run.status == "cancelled"


async def test_non_streamed_calls_cut_by_the_shutdown_grace_are_each_stored_as_cancelled(tmp_path: Path) -> None:
    """Every call sent ends as a stored observation: non-streamed calls still waiting for their answer when the grace
    period runs out are stored as `cancelled`, without text, each with its run cancelled (nothing lost)."""
    import asyncio
    import threading

    from prometheus_client import CollectorRegistry

    release, sent = threading.Event(), []
    with json_server(held_answer(release, sent)) as url:
        cfg = load_config(write_config(tmp_path, f"  - {{id: slow, provider: openai, base_url: '{url}/v1', model: m, "
                                                 "stream: false, max_concurrency: 3}", PROBES,
                                       extra="daemon: {grace_period: 0.3}\n"), environ={})
        registry = CollectorRegistry()
        app = App(cfg, registry=registry, environ={}, serve_http=False, analyse=False)
        await app.start(schedule=False)
        try:
            canary, target = cfg.pairs()[0]
            job = asyncio.create_task(app._run_job(canary, target))  # as the scheduler runs it: 3 samples at once
            while len(sent) < 3:
                await asyncio.sleep(0.01)
            finished, cancelled = await app.stop()  # the grace period runs out while all three wait
            await asyncio.wait([job])
        finally:
            release.set()
    assert (finished, cancelled) == (0, 1) and app.runner.not_sent == 0
    observations = app.store.observations(limit=10)
    assert sorted(o.sample_index for o in observations) == [0, 1, 2]
    assert {(o.call.error_type, o.call.text, o.call.stream) for o in observations} == {("cancelled", "", False)}
    [run] = app.store.runs()
    assert run.status == "cancelled" and {o.run_id for o in observations} == {run.id}
    assert sample(registry, "llm_monitor_probe_attempts_total", canary=canary.id, target="slow") == 3


async def test_a_call_whose_store_write_the_shutdown_grace_cuts_is_stored_all_the_same(
        tmp_path: Path, pg_url: str) -> None:
    """Found by review: a call answered just before the grace ran out, its observation's write waiting on the store
    (a table lock) when the run was cancelled, was neither stored nor held: the write went on in its thread, failed
    on the lock's timeout with no one to hand it to, and the observation was lost, uncounted too. It is now held
    and retried as a write the store turned away is."""
    import asyncio
    import threading

    import psycopg
    from prometheus_client import CollectorRegistry

    from monitor.store import Store

    Store(pg_url).migrate()
    release = threading.Event()
    release.set()  # the answer comes at once
    with json_server(held_answer(release)) as url:
        cfg = write_config(tmp_path, f"  - {{id: slow, provider: openai, base_url: '{url}/v1', model: m, "
                                     "stream: false}", ONE_SAMPLE,
                           extra="daemon: {grace_period: 0.3}\n")
        cfg.write_text(cfg.read_text().replace(f"sqlite:///{tmp_path / 'm.db'}", pg_url)
                       .replace("storage: {", "storage: {lock_timeout: 1, "))
        config = load_config(cfg, environ={})
        registry = CollectorRegistry()
        app = App(config, registry=registry, environ={}, serve_http=False, analyse=False)
        await app.start(schedule=False)
        dsn = pg_url.replace("postgresql+psycopg://", "postgresql://")
        locker, admin = psycopg.connect(dsn), psycopg.connect(dsn, autocommit=True)
        waiting = ("SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'observations'::regclass")
        try:
            locker.execute("LOCK TABLE observations IN ACCESS EXCLUSIVE MODE")
            canary, target = config.pairs()[0]
            job = asyncio.create_task(app._run_job(canary, target))  # as the scheduler runs it
            while admin.execute(waiting).fetchone() != (1,):  # answered: its write waits for the table
                await asyncio.sleep(0.01)
            stopping = asyncio.create_task(app.stop())  # the grace runs out while the write waits
            await asyncio.wait([job])
            while admin.execute(waiting).fetchone() != (0,):  # the write's lock_timeout ended it
                await asyncio.sleep(0.01)
            locker.rollback()  # the store takes writes again
            await stopping
        finally:
            locker.close()
            admin.close()
    [obs] = Store(pg_url).observations(limit=10)
    assert obs.call.text == "ok" and obs.ok
    assert sample(registry, "llm_monitor_probe_attempts_total", canary=canary.id, target="slow") == 1

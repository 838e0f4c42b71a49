"""A reload keeps each target's max_concurrency bound across the swap: the calls in flight at the reload still count
against the limit the calls after it take, as it was or as the reload changed it."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from monitor.app import App
from monitor.config import load_config
from tests.conftest import write_config
from tests.support.jsonserver import json_server

PROBES = "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n    samples: 1\n"


class Upstream:
    """A json_server answer that holds every call until `release`, counting the calls on it at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.sent = 0
        self.now = self.most = 0
        self._lock = threading.Lock()

    def __call__(self, body: dict, headers: dict) -> tuple[int, dict]:
        with self._lock:
            self.sent += 1
            self.now += 1
            self.most = max(self.most, self.now)
        self.release.wait(10)
        with self._lock:
            self.now -= 1
        return 200, {"id": "chatcmpl-x", "object": "chat.completion", "created": 0, "model": "m",
                     "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant",
                                                                                  "content": "ok"}}],
                     "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


def _target(url: str, limit: int) -> str:
    return f"  - {{id: slow, provider: openai, base_url: '{url}/v1', model: m, stream: false, max_concurrency: {limit}}}"


async def _until(check: Any) -> None:
    while not check():
        await asyncio.sleep(0.01)


async def test_a_call_in_flight_at_a_reload_still_holds_its_slot(tmp_path: Path) -> None:
    # Found by QA: a reload built every target's limit afresh, so the calls in flight held slots of the old one and
    # as many again went out on the new one: max_concurrency 1 had two calls on the wire
    upstream = Upstream()
    with json_server(upstream) as url:
        cfg = write_config(tmp_path, _target(url, 1), PROBES)
        app = App(load_config(cfg, environ={}), registry=CollectorRegistry(), environ={}, serve_http=False,
                  analyse=False)
        await app.start(schedule=False)
        try:
            canary, target = app.config.pairs()[0]
            first = asyncio.create_task(app._run_job(canary, target))  # as the scheduler runs it
            await _until(lambda: upstream.sent == 1)
            (tmp_path / "probes" / "p.yaml").write_text(PROBES.replace("content: hi", "content: hello"))
            ok, message = await app.reload()
            assert ok, message
            assert app.runner.limit("slow").locked()  # the call in flight holds the one slot
            canary, target = app.config.pairs()[0]
            second = asyncio.create_task(app._run_job(canary, target))  # as the scheduler runs it
            await _until(lambda: len(app.store.runs()) == 2)  # the second run is under way: its call waits its turn
            assert upstream.sent == 1
            upstream.release.set()
            await asyncio.gather(first, second)
        finally:
            upstream.release.set()
            await app.stop()
    assert upstream.sent == 2 and upstream.most == 1


async def test_a_reload_that_lowers_max_concurrency_counts_the_calls_in_flight(tmp_path: Path) -> None:
    upstream = Upstream()
    with json_server(upstream) as url:
        cfg = write_config(tmp_path, _target(url, 2), PROBES.replace("samples: 1", "samples: 2"))
        app = App(load_config(cfg, environ={}), registry=CollectorRegistry(), environ={}, serve_http=False,
                  analyse=False)
        await app.start(schedule=False)
        try:
            canary, target = app.config.pairs()[0]
            first = asyncio.create_task(app._run_job(canary, target))  # as the scheduler runs it
            await _until(lambda: upstream.sent == 2)
            cfg.write_text(cfg.read_text().replace("max_concurrency: 2", "max_concurrency: 3"))
            assert (await app.reload())[0]
            assert not app.runner.limit("slow").locked()  # raised: one more may go
            cfg.write_text(cfg.read_text().replace("max_concurrency: 3", "max_concurrency: 1"))
            assert (await app.reload())[0]
            assert app.runner.limit("slow").locked()  # lowered below the two in flight: none goes until both end
            upstream.release.set()
            await first
            assert not app.runner.limit("slow").locked()
        finally:
            upstream.release.set()
            await app.stop()


async def test_a_waiter_cancelled_takes_no_slot_and_loses_no_wake() -> None:
    from monitor.concurrency import Limit

    limit = Limit(1)
    await limit.acquire()
    gone, waiting = asyncio.create_task(limit.acquire()), asyncio.create_task(limit.acquire())
    await asyncio.sleep(0)  # both wait for the slot
    gone.cancel()
    limit.release()
    await waiting
    assert gone.cancelled() and limit.held == 1 and limit.locked()

"""/readyz answers 503 from the moment a shutdown begins: load balancers stop sending traffic while it drains."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry

from monitor.app import App
from monitor.config import load_config
from tests.conftest import write_config
from tests.support.jsonserver import json_server
from tests.test_runner_shutdown import held_answer

PROBES = "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n    samples: 1\n    schedule: {every: 1h}\n"


async def test_readyz_is_503_while_the_daemon_drains(tmp_path: Path) -> None:
    # Found by QA: during the grace period the leader's scheduler was only paused, which APScheduler still calls
    # running, so /readyz said 200 (a standby's too) until the HTTP server closed
    release, sent = threading.Event(), []
    with json_server(held_answer(release, sent)) as url:
        cfg = write_config(tmp_path, f"  - {{id: slow, provider: openai, base_url: '{url}/v1', model: m, "
                                     "stream: false}", PROBES, extra="daemon: {grace_period: 30}\n")
        app = App(load_config(cfg, environ={}), registry=CollectorRegistry(), environ={}, analyse=False)
        await app.start()
        stopping = None
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.port}") as client:
                ready = await client.get("/readyz")
                assert ready.status_code == 200 and ready.json()["draining"] is False
                canary, target = app.config.pairs()[0]
                job = asyncio.create_task(app._run_job(canary, target))  # as the scheduler runs it
                while not sent:  # the call is on the wire
                    await asyncio.sleep(0.01)
                stopping = asyncio.create_task(app.stop())
                await asyncio.sleep(0)  # the stop began: it waits for the call in flight
                draining = await client.get("/readyz")
                assert draining.status_code == 503
                assert draining.json()["draining"] is True and draining.json()["ready"] is False
                assert (await client.get("/healthz")).status_code == 200  # alive all the same: not restarted
            release.set()
            await stopping
            await job
        finally:
            release.set()
            if stopping is None:
                await app.stop()

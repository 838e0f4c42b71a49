"""The HTTP port answers while the daemon starts (a long store migration, a migration of another replica's waited
for): a liveness probe on /healthz gets its 200, /readyz says 503 "starting", and the API, whose store is not ready
yet, says so too; once started, /readyz is 200."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import psycopg
from prometheus_client import CollectorRegistry

from monitor.app import App
from monitor.config import load_config
from monitor.sim import SimServer
from tests.conftest import write_config

PROBES = "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n    schedule: {every: 1h}\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_health_and_readiness_answer_while_the_start_waits_for_a_migration(
        pg_url: str, tmp_path: Path, steady_sim: SimServer) -> None:
    """Found by review: the listening socket was bound at start but served only once the store was migrated and
    the providers built: a probe's connection was taken by the kernel and never answered, so a Kubernetes liveness
    probe timed out through a long migration (or one waiting for another replica's) and the pod was restarted,
    starting the migration again."""
    port = _free_port()
    cfg = write_config(tmp_path, f"  - {{id: t, provider: openai, base_url: '{steady_sim.openai_base_url}', "
                                 "model: m}", PROBES)
    cfg.write_text(cfg.read_text().replace(f"sqlite:///{tmp_path / 'm.db'}", pg_url)
                   .replace("127.0.0.1:0", f"127.0.0.1:{port}"))
    app = App(load_config(cfg, environ={}), registry=CollectorRegistry(), environ={})
    other = psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://"))  # another replica's migration
    other.execute("SELECT pg_advisory_xact_lock(7166001)")  # as a version before migrates
    starting = asyncio.create_task(app.start())
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as client:
            while True:
                try:
                    health = await client.get("/healthz")
                    break
                except httpx.ConnectError:  # not bound yet
                    await asyncio.sleep(0.05)
            assert health.status_code == 200 and not starting.done()
            ready = await client.get("/readyz")
            assert ready.status_code == 503 and ready.json() == {"ready": False, "starting": True, "draining": False}
            api = await client.get("/api/observations")
            assert api.status_code == 503 and "starting" in api.json()["error"]
            assert (await client.get("/metrics")).status_code == 200
            other.rollback()  # the other replica's migration is done
            await asyncio.wait_for(starting, 60)
            ready = await client.get("/readyz")
            assert ready.status_code == 200 and "starting" not in ready.json()
            assert (await client.get("/api/observations")).status_code == 200
    finally:
        other.close()
        if not starting.done():
            starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        await app.stop()

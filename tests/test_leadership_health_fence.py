"""A replica that lost the leader lock pages no one: the health alerts of its runs still in flight are not written."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client import CollectorRegistry
from sqlalchemy import text

from monitor.app import App
from monitor.commands.run import serve
from monitor.config import load_config
from monitor.sim import SimServer, load_scenario
from tests.conftest import write_config
from tests.test_leadership import _terminate_lock_holder, _until
from tests.test_leadership_fence import SCENARIO


def _app(tmp_path: Path, url: str, sim: SimServer) -> App:
    # every call times out after 1 s (the upstream answers in 2.5 s): each run fails, the third pages canary.down
    cfg = write_config(tmp_path, f"  - {{id: t, provider: openai, base_url: '{sim.openai_base_url}', model: m, "
                                 "timeout: 1s}",
                       "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n    samples: 1\n"
                       "    schedule: {every: 1s}\n",
                       extra="daemon: {max_start_delay: 0}\nalerts:\n  cooldown: 0s\n"
                             "  sinks: [{name: hook, type: webhook, url: 'http://127.0.0.1:9/hook'}]\n")
    cfg.write_text(cfg.read_text().replace(f"sqlite:///{tmp_path / 'm.db'}", url))
    return App(load_config(cfg, environ={}), registry=CollectorRegistry(), environ={}, serve_http=False,
               leader_poll_s=0.1, leader_check_s=0.1)


def _downs(app: App) -> int:
    with app.store.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM notifications WHERE kind = 'canary.down'")).scalar_one())


async def test_a_run_in_flight_as_the_lock_is_lost_writes_no_health_alert(tmp_path: Path, pg_url: str) -> None:
    """Found by review: the run in flight when the leader lost its lock (its session ended: a partition, a freeze
    past the lease) finished during the shutdown and wrote its canary.down (or canary.recovered) to the outbox,
    which the new leader's sender delivers. The new leader, which read the pairs down before that row existed, pages
    the same outage again at its own third failed run (or, for a recovery, holds the pair down with its page closed:
    the outage goes on silent). Like drift events, health alerts are written only on a lock confirmed recently."""
    scenario_file = tmp_path / "slow.yaml"
    scenario_file.write_text(SCENARIO)
    with SimServer(load_scenario(scenario_file)) as sim:
        a = _app(tmp_path, pg_url, sim)
        stop = asyncio.Event()
        daemon = asyncio.create_task(serve(a, stop))
        try:
            def streak() -> tuple[int, int]:
                runs = a.store.runs(limit=100)
                return sum(r.status == "done" for r in runs), sum(r.status == "running" for r in runs)

            await _until(lambda: a.leading and streak() == (2, 1))  # two failed runs; the third pages when it ends
            _terminate_lock_holder(pg_url)
            assert await asyncio.wait_for(daemon, 30) == 1
            assert streak() == (3, 0)  # the run in flight ended during the shutdown, failed like the others
            assert _downs(a) == 0, "the replica that lost the lock wrote a canary.down for the new leader to send"
        finally:
            stop.set()
            if not daemon.done():
                await daemon

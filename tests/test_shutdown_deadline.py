"""At shutdown the writes held for a store away, observations and alert messages alike, share one last try.

The alert messages' last try (10 s) came after the observations' (10 s, or 60 s for a leader that lost its lock,
cut to 10 s from a SIGTERM) and took a fresh 10 s of its own, past a SIGTERM's cut: a stop on a store away took
20 s where the README says 10, and a pod's grace ended in SIGKILL.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import OperationalError

from monitor.app import App
from monitor.config import load_config
from monitor.domain import utcnow
from monitor.sim import SimServer
from monitor.store import Run
from tests.conftest import write_config

PROBES = """\
canaries:
  - id: hello
    messages: [{role: user, content: "Say hello."}]
    samples: 1
"""


async def _stopping_on_a_store_away(steady_sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    lost_lead: bool) -> tuple[App, list[float], asyncio.Event, asyncio.Task[object]]:
    monkeypatch.setattr("monitor.app.UNSAVED_GRACE_S", 1.0)
    monkeypatch.setattr("monitor.app.LOST_LEAD_UNSAVED_S", 6.0)
    target = f"  - {{id: gpt, provider: openai, base_url: '{steady_sim.openai_base_url}', model: sim-gpt}}"
    app = App(load_config(write_config(tmp_path, target, PROBES), environ={}), registry=CollectorRegistry(),
              environ={}, serve_http=False)
    await app.start(schedule=False)
    assert app.alerting is not None
    unsaved, pending = app.runner.unsaved, app.alerting.pending

    def away(_run: Run) -> None:
        raise OperationalError("INSERT", {}, Exception("the store is away"))

    monkeypatch.setattr(unsaved, "_save_run", away)
    unsaved.hold(Run(id="r1", canary="hello", target="gpt", started_at=utcnow()))  # waits out its whole try
    close, given = pending.close, []

    async def recorded(timeout_s: float = 10.0) -> int:
        given.append(timeout_s)
        return await close(timeout_s)

    monkeypatch.setattr(pending, "close", recorded)
    if lost_lead:
        app.leadership_lost.set()
    asked = asyncio.Event()
    return app, given, asked, asyncio.create_task(app.stop(asked=asked))


async def test_the_alerts_last_try_is_what_is_left_of_the_observations(
        steady_sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, given, _, stopping = await _stopping_on_a_store_away(steady_sim, tmp_path, monkeypatch, lost_lead=False)
    await asyncio.wait_for(stopping, 60)
    assert len(given) == 1 and given[0] <= 1.0, f"the alerts' last try took {given[0]:g} s more"


async def test_a_sigterm_cuts_the_alerts_last_try_as_it_cut_the_observations(
        steady_sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, given, asked, stopping = await _stopping_on_a_store_away(steady_sim, tmp_path, monkeypatch, lost_lead=True)
    await asyncio.sleep(0.5)
    asked.set()  # 1 s from now, not 6 s from the start of the stop
    await asyncio.wait_for(stopping, 60)
    assert len(given) == 1 and given[0] <= 1.0, f"the alerts' last try took {given[0]:g} s past the SIGTERM's cut"

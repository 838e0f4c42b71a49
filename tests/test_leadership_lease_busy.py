"""A leader that is busy, not frozen, keeps its lease: its lock is checked while it takes over (a judge's calibration
set, a large store's restore: minutes) and while every worker thread of the event loop is taken (code_runs checks,
judge calls, slow store writes). Else a standby ends a healthy leader's lock session, and two replicas whose
take-over outlasts the lease end each other's in turn, neither ever probing."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from monitor.app import App
from monitor.config import load_config
from monitor.sim import SimServer
from monitor.store import Store
from monitor.store.leader import Leadership
from tests.conftest import write_config
from tests.test_leadership import _terminate_lock_holder

LEASE_S = 1.0



def _app(tmp_path: Path, pg_store: Store, sim: SimServer) -> App:
    cfg = write_config(tmp_path, f"  - {{id: t, provider: openai, base_url: '{sim.openai_base_url}', model: m}}",
                       "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n    samples: 1\n"
                       "    schedule: {every: 1s}\n", extra="daemon: {max_start_delay: 0}\n")
    cfg.write_text(cfg.read_text().replace(f"sqlite:///{tmp_path / 'm.db'}", pg_store.url))
    return App(load_config(cfg, environ={}), registry=CollectorRegistry(), environ={}, serve_http=False,
               leader_poll_s=0.2, leader_check_s=0.1, leader_lease_s=LEASE_S)


def _hold_takeover(app: App, monkeypatch: pytest.MonkeyPatch) -> tuple[asyncio.Event, asyncio.Event]:
    """Hold the app's take-over in its judge calibration (a refusal judge's calls can take minutes): the first event
    is set once it waits there, setting the second lets it go on."""
    calibrating, go_on = asyncio.Event(), asyncio.Event()

    async def slow_calibration(config: Any) -> None:
        calibrating.set()
        await go_on.wait()

    monkeypatch.setattr(app.quality, "calibrate_judge", slow_calibration)
    return calibrating, go_on


async def _outlast_the_lease(app: App, standby: Leadership) -> None:
    """Past the lease, a standby's tries neither end the leader's lock session nor take its lock."""
    with ThreadPoolExecutor(max_workers=1) as own:  # not asyncio.to_thread's pool, which a test fills
        for _ in range(3):
            await asyncio.sleep(LEASE_S)
            took = await asyncio.get_running_loop().run_in_executor(own, standby.try_acquire)
            assert not took, "a standby took the lock of a busy leader"
    assert not app.leadership_lost.is_set()


async def test_a_leader_taking_over_for_longer_than_the_lease_is_not_taken_over(
        tmp_path: Path, pg_store: Store, steady_sim: SimServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # Seen as: a refusal judge's 16 calibration calls (up to 60 s each) at take-over, with no lock check until the
    # schedule started; the standby ended the new leader's session, which stopped, came back as a standby, and ended
    # the other's session in turn.
    app = _app(tmp_path, pg_store, steady_sim)
    calibrating, go_on = _hold_takeover(app, monkeypatch)
    standby = Leadership(pg_store.engine, lease_s=LEASE_S)
    starting = asyncio.create_task(app.start())
    try:
        await asyncio.wait_for(calibrating.wait(), 30)
        assert app.leadership.held
        await _outlast_the_lease(app, standby)
        go_on.set()
        await asyncio.wait_for(starting, 30)
        assert app.leading and app.scheduler.running
    finally:
        go_on.set()
        if not starting.done():
            await asyncio.wait_for(starting, 30)
        await app.stop()
        standby.release()


async def test_a_leader_whose_worker_threads_are_all_busy_is_not_taken_over(
        tmp_path: Path, pg_store: Store, steady_sim: SimServer) -> None:
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=2))  # asyncio.to_thread's pool, small to fill
    app = _app(tmp_path, pg_store, steady_sim)
    standby = Leadership(pg_store.engine, lease_s=LEASE_S)
    release = threading.Event()
    await app.start()
    busy = [loop.run_in_executor(None, release.wait) for _ in range(2)]  # e.g. code_runs checks, judge calls
    try:
        assert app.leading
        await _outlast_the_lease(app, standby)
        assert await app.succession.check_lock()  # the lock is ours
    finally:
        release.set()
        await app.stop()
        standby.release()
    await asyncio.gather(*busy)


async def test_a_leader_that_loses_its_lock_while_taking_over_starts_no_schedule(
        tmp_path: Path, pg_store: Store, steady_sim: SimServer, monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app(tmp_path, pg_store, steady_sim)
    calibrating, go_on = _hold_takeover(app, monkeypatch)
    starting = asyncio.create_task(app.start())
    try:
        await asyncio.wait_for(calibrating.wait(), 30)
        _terminate_lock_holder(pg_store.url)  # as a standby ends it (or the server, a partition)
        await asyncio.wait_for(app.leadership_lost.wait(), 30)
        go_on.set()
        await asyncio.wait_for(starting, 30)
        assert not app.scheduler.running and not app.leading
        assert app.registry.get_sample_value("llm_monitor_leader") == 0
    finally:
        go_on.set()
        if not starting.done():
            await asyncio.wait_for(starting, 30)
        await app.stop()


async def test_a_leader_that_loses_its_lock_before_its_alerting_is_built_sends_no_notifications(
        tmp_path: Path, pg_store: Store, steady_sim: SimServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by review: the lock lost earlier in the take-over (here its judge calibration) fenced no sender, the
    alerting not being built yet; built and started after, its sender claimed and sent the outbox through the
    shutdown beside the new leader."""
    app = _app(tmp_path, pg_store, steady_sim)
    calibrating, go_on = _hold_takeover(app, monkeypatch)
    starting = asyncio.create_task(app.start())
    try:
        await asyncio.wait_for(calibrating.wait(), 30)
        _terminate_lock_holder(pg_store.url)
        await asyncio.wait_for(app.leadership_lost.wait(), 30)
        go_on.set()
        await asyncio.wait_for(starting, 30)
        assert app.alerting is not None
        sender = app.alerting.sender._task
        await asyncio.sleep(0.2)
        assert sender is None or sender.done()  # its supervisor ended at once: no loop claims the outbox
    finally:
        go_on.set()
        if not starting.done():
            await asyncio.wait_for(starting, 30)
        await app.stop()

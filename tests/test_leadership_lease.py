"""A leader frozen past its lease (SIGSTOP, a stalled process) keeps its PostgreSQL session and so the lock: a
standby ends that session and takes over. A leader that checks its lock, and a `store copy`, are never taken over."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from monitor.app import App
from monitor.config import load_config
from monitor.sim import SimServer
from monitor.store import Store
from monitor.store.leader import Leadership
from tests.conftest import write_config

LEASE_S = 2.0



def test_a_standby_ends_the_session_of_a_leader_that_stopped_checking_and_takes_the_lock(pg_store: Store) -> None:
    # Found with two replicas: a leader SIGSTOPped for minutes held the lock all along (its kernel still answers the
    # keepalives), so nothing probed until it was resumed or killed; under systemd, with no liveness probe, forever.
    frozen, standby = Leadership(pg_store.engine), Leadership(pg_store.engine, lease_s=LEASE_S)
    try:
        assert frozen.try_acquire()
        assert not standby.try_acquire()  # within the lease: the leader is only slow
        time.sleep(LEASE_S + 1)  # the frozen leader checks nothing
        deadline = time.monotonic() + 20
        while not standby.try_acquire():
            assert time.monotonic() < deadline, "the standby never took the lock over"
            time.sleep(0.2)
        assert not frozen.still_held()  # waking, the old leader finds its lock gone (and stops)
    finally:
        frozen.release()
        standby.release()


def test_a_leader_that_checks_its_lock_and_a_store_copy_are_not_taken_over(pg_store: Store) -> None:
    leader, standby = Leadership(pg_store.engine), Leadership(pg_store.engine, lease_s=LEASE_S)
    done = threading.Event()

    def check() -> None:  # the daemon's watch: a check every 0.1 s
        while not done.wait(0.1):
            leader.still_held()

    watch = threading.Thread(target=check)
    try:
        assert leader.try_acquire()
        watch.start()
        for _ in range(3):
            time.sleep(LEASE_S)
            assert not standby.try_acquire() and leader.still_held()
        done.set()
        watch.join()
        leader.release()
        copy = Leadership(pg_store.engine, role="store copy")  # a copy runs for minutes without a statement on its lock
        assert copy.try_acquire()
        time.sleep(LEASE_S + 1)
        assert not standby.try_acquire() and copy.still_held()
        copy.release()
    finally:
        done.set()
        if watch.is_alive():
            watch.join()
        leader.release()
        standby.release()


async def test_a_standby_daemon_takes_over_from_a_frozen_leader(tmp_path: Path, pg_store: Store,
                                                                steady_sim: SimServer) -> None:
    frozen = Leadership(pg_store.engine)
    cfg = write_config(tmp_path, f"  - {{id: t, provider: openai, base_url: '{steady_sim.openai_base_url}', model: m}}",
                       "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n    samples: 1\n"
                       "    schedule: {every: 1s}\n", extra="daemon: {max_start_delay: 0}\n")
    cfg.write_text(cfg.read_text().replace(f"sqlite:///{tmp_path / 'm.db'}", pg_store.url))
    registry = CollectorRegistry()
    app = App(load_config(cfg, environ={}), registry=registry, environ={}, serve_http=False, leader_poll_s=0.2,
              leader_check_s=0.1, leader_lease_s=LEASE_S)
    assert await asyncio.to_thread(frozen.try_acquire)
    await app.start()
    try:
        assert not app.leading
        deadline = time.monotonic() + 30
        while not (app.leading and registry.get_sample_value("llm_monitor_probe_attempts_total",
                                                             {"canary": "c1", "target": "t"})):
            assert time.monotonic() < deadline, "the standby never took over from the frozen leader"
            await asyncio.sleep(0.1)
        assert not await asyncio.to_thread(frozen.still_held)
    finally:
        await app.stop()
        frozen.release()

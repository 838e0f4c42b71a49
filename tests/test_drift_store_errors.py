"""Drift events the store did not take at first (a lock past its timeout, a full disk, a deadlock) are written
later with their notifications: nothing the engine found is lost or stored silently. The store error is real:
a SQLite trigger makes every write of a drift event fail until it is dropped."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from monitor.alerts.outbox import Outbox
from monitor.app import App
from monitor.config import load_config
from monitor.sim import SimServer
from monitor.store.drift_repo import DriftRepository
from tests.conftest import write_config
from tests.support.drift_app import PROBES_C1, two_phases

ALERTS = """\
alerts:
  sinks:
    - {name: hook, type: webhook, url: "http://127.0.0.1:9/unreachable"}
"""
FAIL_EVENTS = ("CREATE TRIGGER qa_events_fail BEFORE {op} ON drift_events "
               "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")


def set_failing(app: App, on: bool) -> None:
    with app.store.engine.begin() as conn:
        if on:
            for op in ("INSERT", "UPDATE"):
                conn.execute(text(FAIL_EVENTS.format(op=op).replace("qa_events_fail", f"qa_fail_{op.lower()}")))
        else:
            conn.execute(text("DROP TRIGGER qa_fail_insert"))
            conn.execute(text("DROP TRIGGER qa_fail_update"))


async def test_events_opened_while_the_store_refused_them_are_stored_and_notified_later(tmp_path: Path) -> None:
    with SimServer(two_phases("store-errors", 2, verbosity=4.0)) as sim:
        cfg = write_config(tmp_path, f"  - {{id: t, provider: openai, base_url: '{sim.openai_base_url}', model: m}}",
                           PROBES_C1, extra="drift: {baseline_size: 10}\n" + ALERTS)
        registry = CollectorRegistry()
        app = App(load_config(cfg, environ={}), registry=registry, environ={}, serve_http=False)
        await app.start(schedule=False)
        canary, target = app.config.pairs()[0]
        assert app.analysis is not None
        try:
            for _ in range(3):
                await app.runner.run(canary, target)
            await asyncio.sleep(0.5)
            set_failing(app, True)
            httpx.post(sim.url + "/_sim/phase", json={"model": "m", "phase": "b"}).raise_for_status()
            for _ in range(8):
                await app.runner.run(canary, target)
            await asyncio.sleep(0.5)
            found = {e.id: e.signal for e in app.analysis.engine.events(state="open")}
            assert found, "the change was not detected"
            assert DriftRepository(app.store.engine).events() == []  # the store refused every one
            set_failing(app, False)
            await app.runner.run(canary, target)  # the next analysis writes what waited
            await asyncio.sleep(0.5)
            open_now = {e.id for e in app.analysis.engine.events(state="open")}
        finally:
            await app.stop()
    stored = {e["id"]: e for e in DriftRepository(app.store.engine).events()}
    assert set(found) <= set(stored)  # every event the engine opened is in the store...
    told = {n.payload.get("event_id"): n.kind for n in Outbox(app.store.engine).query()}
    assert {eid: told.get(eid) for eid in found} == dict.fromkeys(found, "drift.opened"), (found, told)
    # ...with its drift.opened notification
    for eid in open_now & set(found):
        assert registry.get_sample_value("llm_monitor_drift_active", {"canary": "c1", "target": "t",
                                                                      "signal": found[eid]}) == 1


def reference_size(app: App, canary: str, target: str) -> int:
    assert app.analysis is not None
    return app.analysis.engine.baseline(canary, target).rate("refused")[1]


async def test_the_reference_learned_after_the_baseline_survives_a_restart(tmp_path: Path) -> None:
    # The reference keeps learning from in-control observations (rate counts up to 5,000): what a daemon
    # learned over days must not fall back to the first `baseline_size` at a restart or a fail-over.
    with SimServer(two_phases("learned", 5)) as sim:
        cfg = write_config(tmp_path, f"  - {{id: t, provider: openai, base_url: '{sim.openai_base_url}', model: m}}",
                           PROBES_C1, extra="drift: {baseline_size: 10, window: 10, eval_every: 5}\n")
        app = App(load_config(cfg, environ={}), registry=CollectorRegistry(), environ={}, serve_http=False)
        await app.start(schedule=False)
        canary, target = app.config.pairs()[0]
        try:
            for _ in range(30):  # 150 observations: the reference learns from all but the latest 50
                await app.runner.run(canary, target)
            await asyncio.sleep(0.5)
        finally:
            await app.stop()
        learned = reference_size(app, canary.id, target.id)
        assert learned > 10 * 5  # it did learn (well past the first 10)
        again = App(load_config(cfg, environ={}), registry=CollectorRegistry(), environ={}, serve_http=False)
        await again.start(schedule=False)
        try:
            assert reference_size(again, canary.id, target.id) == learned
        finally:
            await again.stop()

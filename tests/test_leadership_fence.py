"""A replica that lost the leader lock writes no drift event: one open event per canary x target x signal."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import text

from monitor import upkeep
from monitor.analysis import Analysis
from monitor.app import App
from monitor.commands.run import serve
from monitor.config import load_config
from monitor.domain import utcnow
from monitor.drift import DriftEvent, DriftSettings, EventUpdate
from monitor.sim import SimServer, load_scenario
from monitor.store import Store
from monitor.store.drift_repo import DriftRepository
from monitor.telemetry.metrics import Metrics
from tests.conftest import write_config
from tests.support.metric import sample
from tests.test_leadership import _terminate_lock_holder, _until

# Calls take 2.5 s: the run in flight when the old leader loses its lock is answered after the new leader has
# loaded the open events. Every answer is a refusal once the phase is forced; the canary declares refusals
# zero-tolerance, so the first refusal each replica analyses opens an event.
SCENARIO = """name: fence
seed: 1
defaults:
  ttft: {dist: normal, mean_ms: 2500, sd_ms: 1}
  output_tps: {dist: normal, mean: 400, sd: 1}
  length: {dist: normal, mean: 10, sd: 1}
models:
  m:
    phases:
      - name: plain
      - name: refusing
        after: 100000s
        refusals: [{pattern: ".*", p: 1.0, style: field}]
"""


def _app(tmp_path: Path, url: str, sim: SimServer, name: str) -> App:
    folder = tmp_path / name
    folder.mkdir()
    cfg = write_config(folder, f"  - {{id: t, provider: openai, base_url: '{sim.openai_base_url}', model: m}}",
                       "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n    samples: 1\n"
                       "    zero_tolerance: [refused]\n    schedule: {every: 1s}\n",
                       extra="daemon: {max_start_delay: 0}\n")
    cfg.write_text(cfg.read_text().replace(f"sqlite:///{folder / 'm.db'}", url))
    return App(load_config(cfg, environ={}), registry=CollectorRegistry(), environ={}, serve_http=False,
               leader_poll_s=0.02, leader_check_s=0.2)


def _requests(sim: SimServer) -> int:
    return int(sim.engine.state()["models"]["m"]["requests"])


def _open_events(app: App) -> list[tuple[str, str, str]]:
    with app.store.engine.connect() as conn:
        rows = conn.execute(text("SELECT canary, target, signal FROM drift_events WHERE state = 'open'")).all()
    return [tuple(r) for r in rows]


async def test_an_old_leader_draining_its_analyses_opens_no_second_event(tmp_path: Path, pg_url: str) -> None:
    """Found by reproducing with real processes (two `llm-monitor run` on one PostgreSQL, the simulator with 9 s
    calls, its refusing phase forced, then pg_terminate_backend of the leader's lock session): the new leader led
    and loaded the open events (none) at 19:39:26.3; the old one, finishing its run in flight during its shutdown,
    opened benign x t x refused at 19:39:28.9; the new leader opened its own at 19:39:35.6. Two open events for
    one key, the first never resolved by anyone. A replica that lost the lock now stores no event update."""
    scenario_file = tmp_path / "fence.yaml"
    scenario_file.write_text(SCENARIO)
    with SimServer(load_scenario(scenario_file)) as sim:
        a, b = _app(tmp_path, pg_url, sim, "a"), _app(tmp_path, pg_url, sim, "b")
        stop_a = asyncio.Event()
        daemon_a = asyncio.create_task(serve(a, stop_a))
        await _until(lambda: a.leading)
        await b.start()
        try:
            # The simulator plans each answer when its request arrives. Runs of the pair follow each other: the change
            # comes just after a request arrived (answered as before), so the old leader's next run is the first to
            # be refused, and its answer comes while the new leader takes over; the old leader analyses it during
            # its shutdown, after the new one loaded the open events.
            requests = _requests(sim)
            await _until(lambda: _requests(sim) > requests, timeout=10)
            sim.engine.force("m", "refusing")
            forced = utcnow()
            await _until(lambda: any(r.started_at > forced and r.status == "running" for r in a.store.runs()))
            _terminate_lock_holder(pg_url)
            assert _open_events(a) == []
            await _until(lambda: b.leading)  # the open events are loaded: none yet
            assert await asyncio.wait_for(daemon_a, 30) == 1  # its run in flight was answered and analysed
            assert a.analysis is not None and a.analysis.engine.events(state="open")  # it did see the refusal
            await _until(lambda: b.analysis is not None and b.analysis.engine.events(state="open"))
            await b.analysis.drain()
            assert _open_events(b) == [("c1", "t", "refused")]
        finally:
            stop_a.set()
            await b.stop()


def _update(signal: str) -> EventUpdate:
    return EventUpdate("opened", DriftEvent(
        canary="c1", target="t", signal=signal, kind="behaviour", test="zero_tolerance", baseline_value=0.0,
        current_value=1.0, effect_size=None, statistic=1.0, p_value=None, threshold=1.0, baseline_n=0, current_n=1,
        first_obs_id=signal, first_obs_at=None, opened_at=utcnow().isoformat()))


def test_updates_wait_for_a_confirmed_lock_and_are_dropped_once_it_is_lost(sqlite_store: Store) -> None:
    """A leader waking from a freeze (SIGSTOP, a paused VM) analyses what was queued before its watch has asked
    the store whether the lock is still its own: the updates wait until it is confirmed, and go once it is lost."""
    analysis = Analysis(sqlite_store, Metrics(CollectorRegistry()), DriftSettings())
    confirmed = False
    analysis.confirmed, analysis.confirm_wait_s = (lambda: confirmed), 0.05
    assert analysis.persist([_update("refused")]) == [] and analysis.repo.events() == []
    confirmed = True
    assert analysis.retry_unwritten() is True  # written now: an opening, which notifies
    assert analysis._unwritten == [] and [e["signal"] for e in analysis.repo.events()] == ["refused"]
    analysis.fence()
    assert analysis.persist([_update("error")]) == [] and analysis.retry_unwritten() is False
    assert analysis._unwritten == []
    assert [e["signal"] for e in analysis.repo.events()] == ["refused"]
    analysis.close()


def test_an_event_the_store_refuses_gives_way_to_the_open_one_it_holds(sqlite_store: Store) -> None:
    """Should an old leader's event still reach the store after the new leader loaded the open events (a write
    slower than the fence's margin), the store refuses the new leader's own event for that key; the new leader
    then goes on with the stored one, so that it is updated and resolved rather than left open for ever."""
    analysis = Analysis(sqlite_store, Metrics(CollectorRegistry()), DriftSettings())
    old = _update("refused").event
    old.id = "old"
    analysis.repo.save_events([old.to_json()])  # written by the old leader, unknown to this engine
    own = _update("refused").event
    analysis.engine.restore_events([own])  # opened by this engine
    assert analysis.persist([EventUpdate("opened", own)]) == []
    assert [e.id for e in analysis.engine.events(state="open")] == ["old"]
    old.state, old.resolved_at = "resolved", utcnow().isoformat()
    assert [u.event.id for u in analysis.persist([EventUpdate("resolved", old)])] == ["old"]
    assert [(e["id"], e["state"]) for e in analysis.repo.events()] == [("old", "resolved")]
    analysis.close()


def _took_over(store: Store) -> tuple[Analysis, CollectorRegistry]:
    """A new leader that loaded the old leader's open event, whose end the old leader wrote just after."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.scope.declare([("c1", "t")])
    event = _update("refused").event
    repo = DriftRepository(store.engine)
    repo.save_events([event.to_json()])  # opened by the old leader
    analysis = Analysis(store, metrics, DriftSettings())
    analysis.restore([("c1", "t")])
    assert _active(registry) == 1 and analysis.engine.events(state="open")
    repo.save_events([replace(event, state="resolved", resolved_at=utcnow().isoformat()).to_json()])  # its end
    return analysis, registry


def _active(registry: CollectorRegistry) -> float:
    return sample(registry, "llm_monitor_drift_active", canary="c1", target="t", signal="refused")


def test_the_end_of_an_event_the_old_leader_ended_after_the_take_over_sets_its_gauge_to_0(store: Store) -> None:
    """The new leader's own end of the event (its chart's; here a reset through its engine) is refused by the store,
    which has it ended already: not written, so its gauge was never set back and llm_monitor_drift_active stayed 1
    (LLMMonitorDriftActive firing for an event nobody would page again) until a restart."""
    analysis, registry = _took_over(store)
    assert analysis.persist(analysis.engine.reset("c1", "t")) == []
    assert _active(registry) == 0
    analysis.close()


async def test_an_event_the_old_leader_ended_after_the_take_over_is_let_go_without_an_observation(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Held open in memory, the event kept its gauge at 1 and its key from opening again until the new leader's own
    chart ended it (a canary run daily: days). The leader's upkeep asks the store about its open events."""
    monkeypatch.setattr(upkeep, "BASELINE_POLL_S", 0.01)
    analysis, registry = _took_over(store)
    watch = asyncio.create_task(upkeep.watch_baselines(analysis, None))
    try:
        await _until(lambda: _active(registry) == 0)
        assert analysis.engine.events(state="open") == []
    finally:
        watch.cancel()
        analysis.close()

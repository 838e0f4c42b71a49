"""One page per outage: while a canary x target's canary.down fires, drift notifications on its error signals are
held (monitor.alerts.inhibit). The daemon runs in-process on the simulator, its webhook is a real local receiver,
and the store is SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from monitor.alerts.events import DEAD, HELD
from monitor.app import App
from monitor.config import load_config
from monitor.sim import SimServer, scenario_from_dict
from tests.support.receiver import Receiver

# 10 samples a run: the drift engine opens `error` within the second failed run, before the health watch's third
# failed run sends canary.down (the order that holding at send time would get wrong).
PROBES = """\
canaries:
  - id: c1
    messages: [{role: user, content: "Say hello."}]
    samples: 10
    params: {temperature: 0.7, max_tokens: 40}
    schedule: {every: 5m}
"""


@pytest.fixture
def sim() -> Iterator[SimServer]:
    scenario = scenario_from_dict({"name": "outage", "seed": 7, "defaults": {
        "ttft": {"dist": "constant", "mean_ms": 5}, "output_tps": 5000,
        "length": {"dist": "normal", "mean": 30, "sd": 5}},
        "models": {"m": {"phases": [{"name": "up"},
                                    {"name": "down", "after_requests": 10**9, "faults": {"server_error": 1}},
                                    {"name": "flaky", "after_requests": 10**9, "faults": {"server_error": 0.8}},
                                    {"name": "malformed", "after_requests": 10**9, "faults": {"malformed": 1}}]}}})
    with SimServer(scenario) as s:
        yield s


def phase(sim: SimServer, name: str) -> None:
    httpx.post(sim.url + "/_sim/phase", json={"model": "m", "phase": name}, timeout=5).raise_for_status()


def config_path(tmp_path: Path, sim: SimServer, store_url: str, rx: Receiver, every: str = "5m") -> Path:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "probes").mkdir(exist_ok=True)
    (tmp_path / "probes" / "p.yaml").write_text(PROBES.replace("every: 5m", f"every: {every}"))
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(f"""\
targets:
  - {{id: t, provider: openai, base_url: "{sim.openai_base_url}", model: m, api_key_env: K}}
probes: [./probes]
storage: {{url: "{store_url}"}}
http: {{listen: "127.0.0.1:0"}}
daemon: {{max_start_delay: 0}}
drift: {{baseline_size: 10}}
alerts:
  cooldown: 0s
  group_wait: 0s
  sinks: [{{name: hook, type: webhook, url: "{rx.url}/hook"}}]
""")
    return cfg


async def started(cfg: Path) -> App:
    app = App(load_config(cfg, environ={"K": "k"}), environ={"K": "k"}, serve_http=False)
    await app.start(schedule=False)
    assert app.alerting is not None and app.analysis is not None
    return app


async def runs(app: App, n: int) -> None:
    """Run the pair `n` times as the scheduler does (the probe, then the health watch), each analysed before the
    next, then deliver what is due."""
    assert app.analysis is not None and app.alerting is not None
    canary, target = app.config.pairs()[0]
    for _ in range(n):
        await asyncio.create_task(app._run_job(canary, target))
        await app.analysis.drain()
    await app.alerting.sender.flush()
    # The sender's own loop, woken by the writes, may have a row on the wire that flush found claimed (CI saw
    # canary.down logged but not yet at the receiver): wait until nothing waits (group_wait is 0 here).
    outbox = app.alerting.outbox
    await _until(lambda: outbox.pending_count() == 0, "the outbox to drain")


def told(rx: Receiver) -> list[tuple[str, str]]:
    """(type, signal) of every message the receiver took about the outage (its health and error signals; the
    simulator's latency may drift too once it answers again, which is behaviour, never held)."""
    out = []
    for m in rx.delivered:
        data = m.json["data"]
        about = [s for s in data.get("signals") or [data["signal"]] if s in ("health", "error", "error_type")]
        out += [(m.json["type"], s) for s in about]
    return out


def error_rows(app: App) -> list[tuple[str, str, str | None]]:
    """(kind, status, last error) of the outbox's drift rows on `error`, oldest first."""
    assert app.alerting is not None
    rows = sorted(app.alerting.outbox.query(limit=1000), key=lambda n: n.created_at)
    return [(n.kind, n.status, n.last_error) for n in rows if n.signal == "error"]


def metric(app: App, name: str) -> float | None:
    return app.registry.get_sample_value(name, {"sink": "hook"})


def open_error_event(app: App) -> dict | None:  # type: ignore[type-arg]
    assert app.analysis is not None
    return next((e for e in app.analysis.repo.events(state="open", limit=None) if e["signal"] == "error"), None)


async def through_outage(app: App, sim: SimServer, rx: Receiver) -> None:
    """A baseline, then an outage long enough for canary.down; the receiver is told the outage once."""
    await runs(app, 4)  # a ready baseline (10 answers), and its reference learned from 30 more
    assert told(rx) == []
    phase(sim, "down")
    await runs(app, 2)
    # the error event opens in the second failed run, a run before canary.down: its opening is held at once
    assert open_error_event(app) is not None
    assert told(rx) == []
    [(kind, status, why)] = error_rows(app)
    assert (kind, status, why) == ("drift.opened", HELD, "held: every call of c1@t fails so far (sent at its next "
                                                         "answer); one page per outage")
    await runs(app, 1)
    assert told(rx) == [("canary.down", "health")]
    await runs(app, 3)  # still down: still one page
    assert told(rx) == [("canary.down", "health")]
    assert app.alerting is not None and app.alerting.outbox.pending_count() == 0
    # nothing is lost: the event is stored, on the gauge, and in the listing with why it waits
    assert open_error_event(app) is not None
    assert app.registry.get_sample_value("llm_monitor_drift_active",
                                         {"canary": "c1", "target": "t", "signal": "error"}) == 1
    assert error_rows(app) == [("drift.opened", HELD, "held: c1@t is down (canary.down firing at this sink); "
                                                      "one page per outage")]
    assert metric(app, "llm_monitor_notifications_held_total") == 1


async def test_an_outage_pages_once_and_its_error_event_ends_unsent(sim: SimServer, store_url: str,
                                                                    tmp_path: Path) -> None:
    """The error event resolves a few answers after the outage ends (its chart needs them): the receiver hears of
    the outage as canary.down and canary.recovered, nothing else."""
    with Receiver() as rx:
        app = await started(config_path(tmp_path, sim, store_url, rx))
        try:
            await through_outage(app, sim, rx)
            phase(sim, "up")
            await runs(app, 6)
        finally:
            await app.stop()
        assert open_error_event(app) is None
        assert told(rx) == [("canary.down", "health"), ("canary.recovered", "health")]
        rows = error_rows(app)
        assert [(k, s) for k, s, _ in rows] == [("drift.opened", DEAD), ("drift.resolved", DEAD)]
        assert all("while its opening was held" in str(why) for _, _, why in rows)
        assert metric(app, "llm_monitor_notifications_inhibited_total") == 2
        dropped = app.registry.get_sample_value("llm_monitor_notifications_dropped_total",
                                                {"sink": "hook", "reason": "gave_up"})
        assert dropped == 0  # not a failed delivery


async def test_an_error_rate_that_outlives_the_outage_is_sent_after_the_recovery(
        sim: SimServer, store_url: str, tmp_path: Path) -> None:
    with Receiver() as rx:
        app = await started(config_path(tmp_path, sim, store_url, rx))
        try:
            await through_outage(app, sim, rx)
            event = open_error_event(app)
            assert event is not None
            phase(sim, "flaky")  # answers again, but many calls still fail
            await runs(app, 3)  # three runs with an answer: recovered; the event's chart has not seen enough yet
            assert told(rx) == [("canary.down", "health"), ("canary.recovered", "health")]
            assert app.analysis is not None
            need = app.analysis.engine.answers_to_resolve("c1", "t", ["error", "error_type"])["error"]
            assert need is not None and need > 0
            for _ in range(need):  # at most `need` answered calls later the row is sent
                if len(told(rx)) == 3:
                    break
                await runs(app, 1)
        finally:
            await app.stop()
        assert told(rx) == [("canary.down", "health"), ("canary.recovered", "health"), ("drift.opened", "error")]
        assert rx.delivered[-1].json["data"]["event_id"] == event["id"]
        [(_, status, why)] = error_rows(app)  # delivered, and the listing says why it came late
        assert status == "delivered" and why is not None and why.startswith("held while c1@t was down; sent ")
        assert why.endswith("answers after its recovery: the error rate change outlived the outage")
        assert metric(app, "llm_monitor_notifications_held_total") == 1
        assert metric(app, "llm_monitor_notifications_inhibited_total") == 0


async def test_an_error_rate_rise_without_an_outage_is_sent(sim: SimServer, tmp_path: Path) -> None:
    with Receiver() as rx:
        app = await started(config_path(tmp_path, sim, f"sqlite:///{tmp_path / 'm.db'}", rx))
        try:
            await runs(app, 3)
            phase(sim, "flaky")  # most calls fail (some after retries answer): an error rate, not an outage
            for _ in range(10):
                await runs(app, 1)
                if ("drift.opened", "error") in told(rx):
                    break
        finally:
            await app.stop()
        assert ("drift.opened", "error") in told(rx) and ("canary.down", "health") not in told(rx)
        # its opening came on a failed call, so it was held until the pair's next answer: then sent
        assert metric(app, "llm_monitor_notifications_held_total") == 1
        assert [why for k, _, why in error_rows(app) if k == "drift.opened"] == [
            "held while every call of c1@t failed; sent at its next answer: not an outage"]


async def test_a_hold_outlives_a_restart(sim: SimServer, store_url: str, tmp_path: Path) -> None:
    """The held row and the down state are the store's: a restart (or another replica taking over) in the middle
    of an outage neither sends the held drift nor forgets to send it at the recovery."""
    with Receiver() as rx:
        cfg = config_path(tmp_path, sim, store_url, rx)
        app = await started(cfg)
        try:
            await runs(app, 4)
            phase(sim, "down")
            await runs(app, 2)  # the error event's opening is held; no canary.down yet
        finally:
            await app.stop()
        assert [(k, s) for k, s, _ in error_rows(app)] == [("drift.opened", HELD)]
        app = await started(cfg)
        try:
            await runs(app, 1)  # the third failed run (two counted from the store) pages; the held row stays
            assert told(rx) == [("canary.down", "health")]
            phase(sim, "flaky")
            await runs(app, 3)
        finally:
            await app.stop()
        assert told(rx) == [("canary.down", "health"), ("canary.recovered", "health")]
        app = await started(cfg)  # recovered, the row held: the answers since are counted in the store
        try:
            for _ in range(12):
                await runs(app, 1)
                if len(told(rx)) == 3:
                    break
        finally:
            await app.stop()
        assert told(rx) == [("canary.down", "health"), ("canary.recovered", "health"), ("drift.opened", "error")]


def health_evidence(rx: Receiver, kind: str) -> dict:  # type: ignore[type-arg]
    [data] = [m.json["data"] for m in rx.delivered if m.json["type"] == kind]
    return data["evidence"]  # type: ignore[no-any-return]


async def test_a_page_after_a_restart_names_the_failures_of_the_streak_stored_before_it(
        sim: SimServer, store_url: str, tmp_path: Path) -> None:
    """A restart mid-streak restored its failed runs, not its failures: the canary.down it then sent named only
    the run after the restart, `(server_error x10)`, for a streak whose store held 20 bad responses before it; and
    the canary.recovered after another restart named only the failures since that one (none: no key at all)."""
    async def lifetime(cfg: Path, upstream: str, n: int) -> None:
        """One daemon, from its start to its stop, through `n` runs against the sim in phase `upstream`."""
        app = await started(cfg)
        try:
            phase(sim, upstream)
            await runs(app, n)
        finally:
            await app.stop()

    with Receiver() as rx:
        cfg = config_path(tmp_path, sim, store_url, rx)
        await lifetime(cfg, "malformed", 2)
        await lifetime(cfg, "down", 1)  # the third failed run pages
        streak = {"bad_response": 20, "server_error": 10}
        assert health_evidence(rx, "canary.down")["error_counts"] == streak
        await lifetime(cfg, "up", 3)
        assert health_evidence(rx, "canary.recovered")["error_counts"] == streak
        assert told(rx) == [("canary.down", "health"), ("canary.recovered", "health")]


def answered_since_recovery(app: App) -> int:
    """The pair's answered calls stored since the outbox's canary.recovered was written."""
    assert app.alerting is not None
    [at] = [n.created_at for n in app.alerting.outbox.query(limit=1000) if n.kind == "canary.recovered"]
    return sum(1 for o in app.store.observations(canary="c1", target="t", limit=10_000)
               if o.ok and o.started_at >= at)


async def test_a_restart_after_the_recovery_sends_the_outliving_error_rate_at_the_same_answer(
        sim: SimServer, store_url: str, tmp_path: Path) -> None:
    """The answers since the recovery are the store's: a restart (or a standby taking over) between the recovery
    and the release sends the held opening at the answer that makes as many as its event needs, as without one
    (counted in memory, the count started again at the restart: that many answers later)."""
    with Receiver() as rx:
        cfg = config_path(tmp_path, sim, store_url, rx)
        app = await started(cfg)
        try:
            await through_outage(app, sim, rx)
            phase(sim, "flaky")
            await runs(app, 3)  # recovered; the event still open, its opening held
            assert told(rx) == [("canary.down", "health"), ("canary.recovered", "health")]
            assert app.analysis is not None
            need = app.analysis.engine.answers_to_resolve("c1", "t", ["error"])["error"]
            assert need is not None and need > 8
            while answered_since_recovery(app) < need // 2:
                await runs(app, 1)
        finally:
            await app.stop()
        assert len(told(rx)) == 2
        app = await started(cfg)
        try:
            while len(told(rx)) == 2:
                before = answered_since_recovery(app)
                assert before < need, f"still held {before} answers after the recovery ({need} resolve it)"
                await runs(app, 1)
        finally:
            await app.stop()
        assert told(rx)[-1] == ("drift.opened", "error")
        [(_, status, why)] = error_rows(app)
        assert status == "delivered" and why is not None and f"sent {need} answers after its recovery" in why


async def _until(condition: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_a_standby_taking_over_mid_outage_holds_on(sim: SimServer, pg_url: str, tmp_path: Path) -> None:
    """Two daemons on one PostgreSQL store: the leader holds the error drift and pages canary.down, then stops; the
    standby that takes over neither fires the held drift again (an open event with no alert sent would be) nor
    forgets it: it ends unsent when the event resolves after the recovery."""
    with Receiver() as rx:
        apps = []
        for name in "ab":
            cfg = config_path(tmp_path / name, sim, pg_url, rx, every="1s")
            apps.append(App(load_config(cfg, environ={"K": "k"}), environ={"K": "k"}, serve_http=False,
                            leader_poll_s=0.1, leader_check_s=0.1))
        a, b = apps
        await a.start()
        await b.start()
        try:
            assert (a.leading, b.leading) == (True, False)
            assert a.analysis is not None
            await _until(lambda: a.analysis is not None and a.analysis.engine.baseline("c1", "t").ready, "a baseline")
            phase(sim, "down")
            await _until(lambda: told(rx) == [("canary.down", "health")], "canary.down")
            await _until(lambda: error_rows(a) and error_rows(a)[0][1] == HELD, "the held error drift")
            await a.stop()
            await _until(lambda: b.leading and b.alerting is not None, "the take-over")
            phase(sim, "up")
            await _until(lambda: open_error_event(b) is None and error_rows(b)
                         and error_rows(b)[-1][0] == "drift.resolved", "the error event resolved")
            await _until(lambda: ("canary.recovered", "health") in told(rx), "canary.recovered")
        finally:
            await b.stop()
            if a.scheduler.running:
                await a.stop()
        assert told(rx) == [("canary.down", "health"), ("canary.recovered", "health")]
        assert [(k, st) for k, st, _ in error_rows(b)] == [("drift.opened", DEAD), ("drift.resolved", DEAD)]

"""A check a reload (or restart) removes from its canary: its open drift event is retired as a removed pair's is."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from monitor.app import App
from monitor.config import load_config
from monitor.drift.events import BEHAVIOUR
from monitor.sim import SimServer
from monitor.store import Store
from monitor.store.drift_repo import DriftRepository
from tests.conftest import write_config
from tests.support.held import hold_analyses
from tests.support.receiver import Receiver
from tests.test_alerts_model import model_event

BASE = """\
canaries:
  - id: hello
    messages: [{role: user, content: "Say hello."}]
    samples: 2
    params: {temperature: 0, max_tokens: 20}
    schedule: {every: 5m}
"""
WITH_CHECK = BASE + "    checks: [{type: contains, value: hello, name: say-hi}]\n"
SIGNAL = "check:say-hi"


def sinks(url: str) -> str:
    return ("alerts:\n  cooldown: 30m\n  group_wait: 0s\n  sinks:\n"
            f"    - {{name: hook, type: webhook, url: \"{url}/hook\"}}\n"
            f"    - {{name: am, type: alertmanager, url: \"{url}/am\"}}\n")


def target(base_url: str) -> str:
    return f"  - {{id: gpt, provider: openai, base_url: '{base_url}', model: sim-gpt, api_key_env: K}}"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_a_check_removed_by_reload_resolves_its_drift_alert_once_and_comes_back_with_it(
        steady_sim: SimServer, tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    """Live audit: a drift event open on check:NAME stayed firing after a reload removed the check (nothing computes
    the signal any more, so nothing resolved it): Alertmanager got it re-sent every resend_interval for good, and
    every reload fired it again. As for a removed pair: the event stays open in the store (`drift`: open, not
    configured), its alert ends once at each sink told it fires ("no longer monitored"; Alertmanager its endsAt), a
    later reload or a restart fires it no more, and the check added back fires it anew."""
    url = None if backend == "sqlite" else str(request.getfixturevalue("pg_url"))
    with Receiver() as rx:
        env = {"K": "k"}
        path = write_config(tmp_path, target(steady_sim.openai_base_url), WITH_CHECK, extra=sinks(rx.url))
        if url is not None:  # the fresh PostgreSQL database in place of the SQLite file
            lines = path.read_text().splitlines(keepends=True)
            path.write_text("".join(f"storage: {{url: '{url}'}}\n" if ln.startswith("storage:") else ln
                                    for ln in lines))
        store = Store(load_config(path, environ=env).storage.url)
        store.migrate()
        event = model_event(signal=SIGNAL, kind=BEHAVIOUR, test="bernoulli_cusum", baseline_value=0.0,
                            current_value=0.4)
        repo = DriftRepository(store.engine)
        repo.save_events([event.to_json()])  # open, and no sink was told yet

        def sent() -> list[tuple[str, str]]:  # (sink, what): webhook type; Alertmanager firing or resolved
            out = []
            for r in rx.requests:
                if r.path.startswith("/hook"):
                    out.append(("hook", r.json["type"]))
                else:
                    [alert] = [a for a in r.json if a["labels"].get("signal") == SIGNAL]
                    out.append(("am", "firing" if "no longer monitored" not in alert["annotations"]["summary"]
                                else "resolved"))
            return sorted(out)

        def write(probes: str) -> None:
            (tmp_path / "probes" / "p.yaml").write_text(probes)

        app = App(load_config(path, environ=env), environ=env, serve_http=False)
        await app.start(schedule=False)

        def active() -> float | None:
            return app.registry.get_sample_value("llm_monitor_drift_active",
                                                 {"canary": "hello", "target": "gpt", "signal": SIGNAL})

        try:
            assert app.alerting is not None and active() == 1
            await asyncio.to_thread(rx.wait_for, 2)  # an open event with no alert fires at start, at both sinks
            assert sent() == [("am", "firing"), ("hook", "drift.opened")]
            write(BASE)  # the check is removed, the canary stays
            ok, why = await app.reload()
            assert ok, why
            await asyncio.to_thread(rx.wait_for, 4)
            assert sent() == [("am", "firing"), ("am", "resolved"), ("hook", "drift.opened"),
                              ("hook", "drift.resolved")]
            end = next(r.json for r in rx.requests if r.path.startswith("/hook") and r.json["type"] ==
                       "drift.resolved")
            assert end["data"]["signal"] == SIGNAL and "no longer monitored" in end["data"]["summary"]
            assert end["data"]["event_id"] == event.id
            assert active() is None
            assert not [n for n in app.alerting.outbox.open_alerts() if n.signal == SIGNAL]
            assert app.alerting.outbox.firing("am") == []  # not re-sent to Alertmanager
            ok, why = await app.reload()  # nothing fires again, nothing more to end
            assert ok, why
            await app.alerting.sender.flush()
            assert len(rx.requests) == 4
            [stored] = repo.events(state="open", limit=None)
            assert stored["id"] == event.id  # still open, as a removed pair's event: the check may come back
        finally:
            await app.stop()
        app = App(load_config(path, environ=env), environ=env, serve_http=False)  # a restart without it
        await app.start(schedule=False)
        try:
            assert app.alerting is not None
            await app.alerting.sender.flush()
            assert len(rx.requests) == 4 and active() is None
            write(WITH_CHECK)  # added back, its event still open: it fires anew
            ok, why = await app.reload()
            assert ok, why
            await asyncio.to_thread(rx.wait_for, 6)
            assert [r.json["type"] for r in rx.requests if r.path.startswith("/hook")] == \
                ["drift.opened", "drift.resolved", "drift.opened"]
            assert sent().count(("am", "firing")) == 2
            assert active() == 1
        finally:
            await app.stop()
        store.close()


async def test_a_removed_checks_results_in_calls_made_before_the_reload_are_not_analysed(
        steady_sim: SimServer, tmp_path: Path) -> None:
    """A call made before the reload that removed its check carries the check's result: analysed after the reload,
    its signal check:NAME fed the drift analysis (a baseline, an event opening or moving) of a check nobody watches
    any more, whose alerts the reload had retired. It is stored, not analysed; the pair's other signals are."""
    env = {"K": "k"}
    path = write_config(tmp_path, target(steady_sim.openai_base_url), WITH_CHECK, extra="drift: {baseline_size: 5}\n")
    app = App(load_config(path, environ=env), environ=env, serve_http=False)
    await app.start(schedule=False)
    try:
        assert app.analysis is not None
        app.analysis.max_lag_s = 600.0  # the run below does not wait for its held analyses
        go = hold_analyses(app)
        [(canary, tgt)] = app.config.pairs()
        await asyncio.create_task(app._run_job(canary, tgt))  # two observations with the check's result; their analyses wait
        (tmp_path / "probes" / "p.yaml").write_text(BASE)
        reload = asyncio.create_task(app.reload())
        while app.metrics.scope.now.check("hello", "gpt", "say-hi"):  # the reload has declared the checks now
            await asyncio.sleep(0.01)
        go.set()
        ok, why = await reload
        assert ok, why
        await app.analysis.drain()
        rates = app.analysis.engine.baseline("hello", "gpt").rates
        assert "refused" in rates and SIGNAL not in rates
        stored = app.store.observations(limit=10)
        assert len(stored) == 2 and all(o.checks and o.checks[0].name == "say-hi" for o in stored)
    finally:
        await app.stop()


async def test_the_merged_end_of_checks_a_reload_removed_says_the_checks_were_removed(
        steady_sim: SimServer, tmp_path: Path) -> None:
    """Found by review: a webhook gets the ends of one canary x target as one message. Those a reload writes for the
    checks it removed (the canary stays) said "2 signals no longer monitored (removed from the configuration)", as a
    removed canary's do, where each end names its check and says the check was removed. The merged end says so."""
    checks = "    checks: [{type: contains, value: hello, name: say-hi}, {type: contains, value: bye, name: say-bye}]\n"
    env = {"K": "k"}
    with Receiver() as rx:
        hook = f"alerts:\n  group_wait: 0s\n  sinks:\n    - {{name: hook, type: webhook, url: \"{rx.url}/hook\"}}\n"
        path = write_config(tmp_path, target(steady_sim.openai_base_url), BASE + checks, extra=hook)
        store = Store(load_config(path, environ=env).storage.url)
        store.migrate()
        DriftRepository(store.engine).save_events([
            model_event(signal=s, kind=BEHAVIOUR, test="bernoulli_cusum", baseline_value=0.0, current_value=0.4,
                        id=f"ev-{s}").to_json() for s in ("check:say-hi", "check:say-bye")])
        store.close()
        app = App(load_config(path, environ=env), environ=env, serve_http=False)
        await app.start(schedule=False)
        try:
            assert app.alerting is not None
            await asyncio.to_thread(rx.wait_for, 1)  # both events fire at start: one message
            (tmp_path / "probes" / "p.yaml").write_text(BASE)  # both checks removed, the canary stays
            ok, why = await app.reload()
            assert ok, why
            _, ended = await asyncio.to_thread(rx.wait_for, 2)
            data = ended.json["data"]
            assert ended.json["type"] == "drift.resolved" and len(data["events"]) == 2
            assert data["summary"] == ("hello @ gpt: check:say-hi, check:say-bye no longer monitored (the checks were "
                                       "removed from the configuration)")
        finally:
            await app.stop()

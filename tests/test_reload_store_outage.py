"""A reload while the store is away (PostgreSQL refusing and cutting connections, for real): refused whole, the
running config, schedule and series unchanged; and the store going away during a reload, once the config is
switched (PostgreSQL cut, a SQLite file locked): the reload stays in force and its paging and resolving are done
once the store answers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from monitor.app import App
from monitor.config import load_config
from monitor.reload import _read_store
from monitor.sim import SimServer
from monitor.store import Store
from tests.support.receiver import Receiver
from tests.test_alerts_outage import _until, config_path, started, through_outage, told
from tests.test_alerts_outage_reload import sim, summaries, two_targets  # noqa: F401 (fixture)
from tests.test_alerts_pending import refusing
from tests.test_store_outage import ADMIN_DSN, outage


def gauge(app: App, name: str, **labels: str) -> float | None:
    return app.registry.get_sample_value(name, labels)


@pytest.mark.postgres
async def test_a_reload_while_the_store_is_away_is_refused_whole_and_applies_once_it_is_back(
        sim: SimServer, pg_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    """The reload read the failing streaks of the pair it added after making the new config the running one: it
    raised out of the reload with the new series declared, the success gauge at 1, and the old schedule still
    running (the added pair never ran, the removed one went on). Now the store is read first."""
    with Receiver() as rx:
        cfg = config_path(tmp_path, sim, pg_url, rx, every="1h")
        app = App(load_config(cfg, environ={"K": "k"}), environ={"K": "k"}, serve_http=False)
        await app.start()  # the daemon's way: leading on the lock, scheduling
        try:
            running, jobs = app.config, set(app.scheduler.next_runs())
            assert list(jobs) and app.scheduler.running
            two_targets(cfg, sim)  # adds target u
            database = pg_url.rsplit("/", 1)[1]
            caplog.set_level(logging.ERROR, logger="monitor.app")
            outage(database, True)
            try:
                ok, message = await app.reload()
            finally:
                outage(database, False)
            assert not ok
            assert message.startswith("store unreachable: ")
            assert message.endswith("; the running config is unchanged")
            assert [r.getMessage() for r in caplog.records if "reload failed" in r.getMessage()] == \
                [f"reload failed, keeping the running config: {message}"]
            assert app.config is running and set(app.scheduler.next_runs()) == jobs
            assert gauge(app, "llm_monitor_config_last_reload_successful") == 0
            assert gauge(app, "llm_monitor_probe_attempts_total", canary="c1", target="u") is None  # not declared
            ok, message = await app.reload()  # the store is back: applied whole
            assert ok, message
            assert {t.id for t in app.config.targets} == {"t", "u"} and len(app.scheduler.next_runs()) == 2
            assert gauge(app, "llm_monitor_config_last_reload_successful") == 1
            assert gauge(app, "llm_monitor_probe_attempts_total", canary="c1", target="u") is not None
        finally:
            await app.stop()


async def test_a_store_going_away_during_a_reload_leaves_it_in_force_and_its_resolving_done_once_back(
        sim: SimServer, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """The store answers the reload's first read, then goes away (PostgreSQL: cut as the reload pages the sinks;
    SQLite: locked by another connection, which its reads pass in WAL mode, but not the write of the removed pair's
    end): the reload raised there, the pair it removed was never resolved (its canary.down left firing at the
    receiver, re-sent forever by Alertmanager) and the rest of the new config half applied. Now the reload is in
    force and the resolving happens once the store answers."""
    with Receiver() as rx:
        cfg = config_path(tmp_path, sim, store_url, rx)
        without = two_targets(cfg, sim)
        app = await started(cfg)
        try:
            await through_outage(app, sim, rx)  # c1@t is down, its sink told
            with contextlib.ExitStack() as away:
                if app.store.dialect == "sqlite":
                    away.enter_context(refusing(app.store))
                else:
                    page, cut = app.page_down_pairs, []

                    async def store_goes() -> None:
                        if not cut:  # once: the retries find it away, then back
                            cut.append(away.enter_context(refusing(app.store)))
                        await page()

                    monkeypatch.setattr(app, "page_down_pairs", store_goes)
                cfg.write_text(without)  # t removed
                ok, message = await app.reload()
                assert ok, message
                assert "; the store stopped answering during it (" in message
                assert {t.id for t in app.config.targets} == {"u"}
                assert gauge(app, "llm_monitor_config_last_reload_successful") == 1
                await asyncio.sleep(1.0)  # retried meanwhile, in vain
                assert told(rx) == [("canary.down", "health")]
            assert app.alerting is not None
            await _until(lambda: ("canary.recovered", "health") in told(rx), "the removed pair's page to end", 30)
            assert summaries(rx)[-1] == ("canary.recovered", "c1@t: no longer monitored (removed from the "
                                                             "configuration)")
            assert app.alerting.open_pairs("canary.down") == set()
        finally:
            await app.stop()


async def test_a_reload_whose_store_steps_fail_as_the_daemon_stops_retries_nothing_after_the_stop(
        sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """A reload in flight as the stop began, its store-side steps failing after the stop had ended the retries
    there were: it started its retries all the same, and they paged and resolved after the stop (after the lock
    was given up: as a standby took over), on a closed drift analysis. Now a stopped app starts none."""
    with Receiver() as rx:
        app = await started(config_path(tmp_path, sim, f"sqlite:///{tmp_path / 'm.db'}", rx))
        entered, go, calls = asyncio.Event(), asyncio.Event(), []

        async def store_away() -> None:
            calls.append(1)
            if len(calls) == 1:
                entered.set()
                await go.wait()
            raise OperationalError("SELECT 1", {}, Exception("the store went away"))

        monkeypatch.setattr(app, "page_down_pairs", store_away)
        reloading = asyncio.create_task(app.reload())
        await entered.wait()
        stopping = asyncio.create_task(app.stop())
        await asyncio.sleep(0.1)  # the stop has begun
        go.set()
        ok, message = await reloading
        await stopping
        assert ok and "; the store stopped answering during it (" in message
        await asyncio.sleep(1.5)  # the first retry comes 0.5 s after the reload
        assert len(calls) == 1


async def test_a_reload_while_the_store_hangs_is_refused_in_bounded_time(
        sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """A store that accepts connections and never answers (a PostgreSQL server stopped, a half-open path): the
    reload's first read waited for it for good (no connect or statement timeout), the reply never came and every
    later reload queued behind its lock. Now it is refused once the store has not answered in time."""
    monkeypatch.setattr("monitor.reload.STORE_READ_TIMEOUT_S", 0.5, raising=False)
    with Receiver() as rx:
        cfg = config_path(tmp_path, sim, f"sqlite:///{tmp_path / 'm.db'}", rx)
        app = await started(cfg)
        hung = threading.Event()
        monkeypatch.setattr(app.store, "reach", lambda: hung.wait(30))
        try:
            running = app.config
            two_targets(cfg, sim)
            ok, message = await asyncio.wait_for(app.reload(), 5)
            assert not ok and message == "store unreachable: no answer within 0.5 s; the running config is unchanged"
            assert app.config is running
            assert gauge(app, "llm_monitor_config_last_reload_successful") == 0
        finally:
            hung.set()
            await app.stop()


@pytest.mark.postgres
def test_a_reload_s_first_read_is_not_refused_for_a_pooled_connection_the_server_ended(
        pg_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server ended the pool's sessions (a restart) a moment ago: the reload's SELECT 1 met one idle long
    enough to be pinged (replaced, answered), and the failing streaks read that follows took one handed back
    since, not pinged, found dead: the reload was refused as "store unreachable" with the store answering. A read,
    it is asked again on a fresh connection as the SELECT 1 is."""
    monkeypatch.setattr("monitor.store.engine.PING_IDLE_S", 1.0)
    first, second = pg_store.engine.connect(), pg_store.engine.connect()
    for conn in (first, second):
        conn.execute(text("SELECT 1"))
    first.close()  # idle past PING_IDLE_S by the reload: pinged at checkout
    time.sleep(1.5)
    second.close()  # handed back just now: used as it is
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> "
                      "pg_backend_pid()", (pg_store.engine.url.database,))
    app = SimpleNamespace(leading=True, alerting=None, analysis=None, store=pg_store)
    assert _read_store(app, {("c1", "t")}) == {}  # type: ignore[arg-type]


async def test_a_reload_s_retries_waiting_for_the_lock_as_the_lead_is_lost_resolve_nothing(
        sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """The retries looked at the lead before waiting for the reload lock: the lead lost while another reload held it,
    they resolved the removed pairs' alerts as a standby (the new leader resolves them as it takes over)."""
    with Receiver() as rx:
        app = await started(config_path(tmp_path, sim, f"sqlite:///{tmp_path / 'm.db'}", rx))
        try:
            assert app.alerting is not None
            page, retire, retired = app.page_down_pairs, app.alerting.retire, []

            async def store_away_once() -> None:
                monkeypatch.setattr(app, "page_down_pairs", page)
                raise OperationalError("SELECT 1", {}, Exception("the store went away"))

            async def counted(pairs: object) -> object:
                retired.append(pairs)
                return await retire(pairs)  # type: ignore[arg-type]

            monkeypatch.setattr(app, "page_down_pairs", store_away_once)
            ok, message = await app.reload()
            assert ok and "; the store stopped answering during it (" in message
            monkeypatch.setattr(app.alerting, "retire", counted)
            async with app.reload_lock:  # another reload: the retry due at 0.5 s waits for it
                await asyncio.sleep(0.8)
                app.leading = False  # the lock lost meanwhile
            await asyncio.sleep(0.3)
            assert retired == []
        finally:
            await app.stop()

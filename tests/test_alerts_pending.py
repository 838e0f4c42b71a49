"""Alert messages the store refuses at first are written once it answers, in order, and none is lost silently: a
SQLite database locked by another connection and a PostgreSQL database cutting and refusing connections, for real."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import event

from monitor.alerts import Notification
from monitor.alerts.events import HELD
from monitor.alerts.service import Alerting
from monitor.domain import utcnow
from monitor.drift import EventUpdate
from monitor.drift.events import BEHAVIOUR
from monitor.drift_alerts import alert_event
from monitor.sim import SimServer
from monitor.store import Store
from monitor.store.drift_repo import DriftRepository
from tests.support.receiver import Receiver
from tests.test_alerts_inhibit import NOW, alerting, answer, down, drift, statuses, write
from tests.test_alerts_model import model_event
from tests.test_alerts_outage import config_path, phase, runs, sim, started, told  # noqa: F401 (fixture)
from tests.test_alerts_resync import cooled, health, kinds
from tests.test_store_outage import outage


@contextmanager
def refusing(store: Store) -> Iterator[None]:
    """Make `store` refuse writes: SQLite locked by another connection's exclusive transaction (its busy timeout cut
    to 50 ms, so a try fails at once); PostgreSQL refusing new connections, its open ones cut."""
    engine = store.engine
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _short_busy_timeout(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            dbapi_conn.execute("PRAGMA busy_timeout=50")

        engine.dispose()  # connect afresh, with the short timeout
        lock = sqlite3.connect(str(engine.url.database), isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        return
    database = str(engine.url.database)
    outage(database, True)
    try:
        yield
    finally:
        outage(database, False)


async def drained(al: Alerting, timeout: float = 20.0) -> None:
    """Wait until no alert write waits for the store."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(al.pending) and loop.time() < deadline:
        await asyncio.sleep(0.02)
    assert len(al.pending) == 0, "alert writes still wait for the store"


def written(al: Alerting) -> list[str]:
    """The kinds of the outbox's rows, in the order they were made."""
    return [n.kind for n in sorted(al.outbox.query(limit=100), key=lambda n: n.created_at)]


def fast(al: Alerting) -> Alerting:
    al.pending.first_delay_s = al.pending.max_delay_s = 0.05
    return al


async def test_a_health_message_the_store_refuses_is_written_once_it_answers_and_its_recovery_after_it(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """The canary.down's write failed on the store: the exception went to the run's log, the health watch had moved
    on (no second canary.down comes), and the receiver never heard of the outage, then got its recovery alone."""
    al = fast(cooled(store))
    with caplog.at_level(logging.WARNING, logger="monitor.alerts"), refusing(store):
        assert await al.publish([health("canary.down")]) == []  # no exception: it waits for the store
        assert await al.publish([health("canary.recovered")]) == []  # behind it, at once
        await asyncio.sleep(0.3)  # several tries
    await drained(al)
    assert written(al) == ["canary.down", "canary.recovered"]
    refused = [r for r in caplog.records if "cannot write alert messages" in r.getMessage()]
    assert len(refused) == 1 and refused[0].levelno == logging.WARNING  # once, not per try
    assert kinds(await al.publish([health("canary.down")])) == ["canary.down"]  # the store answers: written at once


async def test_a_resync_while_a_canary_down_waits_for_the_store_leaves_it_alone(store: Store) -> None:
    """The canary.down waiting for the store is remembered as firing, its key marked as being written until it is:
    a resync reading the outbox meanwhile (the recovery of the outage before as the latest state) must not put that
    back, else this outage's recovery is dropped as not firing."""
    al = fast(cooled(store))
    await al.publish([health("canary.down")])
    await al.publish([health("canary.recovered")])
    with refusing(store):
        assert await al.publish([health("canary.down")]) == []
    al.resync()  # the store answers again; the write's next try has not come yet
    await drained(al)
    assert kinds(await al.publish([health("canary.recovered")])) == ["canary.recovered"]
    assert written(al) == ["canary.down", "canary.recovered"] * 2


async def test_drift_fired_again_at_a_reload_is_written_once_the_store_answers(sqlite_store: Store) -> None:
    """`ensure_firing`'s write went the same way: its memory kept the opening as sent, so the next reload's dropped
    it as a repeat (SQLite: reads go on while another connection holds the write lock)."""
    al = fast(cooled(sqlite_store))
    with refusing(sqlite_store):
        assert await al.ensure_firing([drift(signal="refused")]) == []
    await drained(al)
    assert written(al) == ["drift.opened"]


async def test_what_still_waits_at_shutdown_is_logged_as_not_sent(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    al = fast(cooled(store))
    with caplog.at_level(logging.ERROR, logger="monitor.alerts"), refusing(store):
        await al.publish([health("canary.down")])
        await al.stop()
    lost = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("not written" in m and "canary.down c1@t [hook]" in m for m in lost), lost
    assert al.policy.memory == {}  # never told: a canary.down after a restart is no repeat


async def test_a_publish_cancelled_at_shutdown_keeps_its_mark_until_its_write_commits(store: Store) -> None:
    """The cancelled publish cleared its "being written" mark while its thread went on to commit the canary.down: a
    resync in between put back the outage before it as the latest state, and this outage's recovery was dropped."""
    al = cooled(store)
    await al.publish([health("canary.down")])
    await al.publish([health("canary.recovered")])
    go, entered = threading.Event(), threading.Event()
    write = al._write

    def slow(out: list[Notification], *rest: object) -> None:
        entered.set()
        go.wait(10)
        write(out, *rest)  # type: ignore[arg-type]

    al._write = slow  # type: ignore[method-assign]
    publishing = asyncio.create_task(al.publish([health("canary.down")]))
    assert await asyncio.to_thread(entered.wait, 10)
    publishing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await publishing
    al.resync()  # before the commit of the write the cancelled publish began
    go.set()
    await drained(al)
    al._write = write  # type: ignore[method-assign]
    assert kinds(await al.publish([health("canary.recovered")])) == ["canary.recovered"]


async def test_a_canary_down_waiting_for_the_store_is_not_told_again_by_a_reload(sqlite_store: Store) -> None:
    """A reload tells each sink routed a down pair that was never told (`ensure_firing`); the outbox it reads has
    no row of the canary.down still waiting for the store, and a second one went to every sink (SQLite: reads go on
    while another connection holds the write lock)."""
    al = fast(alerting(sqlite_store))  # no cooldown: nothing else drops a repeat
    with refusing(sqlite_store):
        assert await al.publish([down()]) == []
        assert await al.ensure_firing([down()]) == []
    await drained(al)
    assert sorted((n.sink, n.kind) for n in al.outbox.query(limit=100)) == [("am", "canary.down"),
                                                                          ("hook", "canary.down")]


@pytest.mark.postgres
async def test_a_canary_down_made_while_postgresql_is_away_reaches_the_receiver_once_it_is_back(
        sim: SimServer, pg_url: str, tmp_path: Path) -> None:  # noqa: F811
    """The daemon in-process: the third failed run's canary.down could not be written (PostgreSQL cutting and
    refusing connections); the run's job logged the exception, the health watch had moved on, and the outage was
    never paged."""
    with Receiver() as rx:
        app = await started(config_path(tmp_path, sim, pg_url, rx))
        assert app.alerting is not None
        fast(app.alerting)
        canary, target = app.config.pairs()[0]
        try:
            await runs(app, 4)
            phase(sim, "down")
            with refusing(app.store):
                for _ in range(3):
                    await asyncio.wait_for(app._run_job(canary, target), 30)  # the runs go on
                assert len(app.alerting.pending) == 1
            await drained(app.alerting)
            await app.alerting.sender.flush()
            while len(app.runner.unsaved):  # the runs' observations, for the analysis (still running) to take
                await asyncio.sleep(0.05)
        finally:
            await app.stop()
        assert told(rx) == [("canary.down", "health")]


async def test_a_canary_down_waiting_behind_another_write_is_not_told_again_by_a_reload(sqlite_store: Store) -> None:
    """A provider outage takes every canary of a target down at once: the second pair's canary.down waited behind the
    first's, not planned yet, so no key of it was marked as being written, and a reload meanwhile told every sink
    it was down a second time."""
    al = fast(alerting(sqlite_store))  # no cooldown: nothing else drops a repeat
    with refusing(sqlite_store):
        assert await al.publish([down(canary="c1")]) == []
        assert await al.publish([down(canary="c2")]) == []  # behind the first: not planned yet
        assert await al.ensure_firing([down(canary="c1"), down(canary="c2")]) == []
    await drained(al)
    told = sorted((n.payload["canary"], n.sink, n.kind) for n in al.outbox.query(limit=100))
    assert told == [(c, s, "canary.down") for c in ("c1", "c2") for s in ("am", "hook")]


async def test_a_replica_that_lost_the_leader_lock_writes_none_of_the_alert_messages_it_holds(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    """A store outage breaks the leader lock's session too: the leader stops, and a standby takes over once the store
    is back, reading the outbox to learn which pairs are down. The old leader went on retrying its canary.down through
    its shutdown (up to 60 s for its held observations, then 10 s more) and wrote it after that read: a page the new
    leader, not knowing the pair is down, never ends."""
    al = fast(cooled(store))
    with caplog.at_level(logging.ERROR, logger="monitor.alerts"), refusing(store):
        assert await al.publish([health("canary.down")]) == []
        al.pending.fence()  # the lock is lost (Succession._lost_leadership)
        await asyncio.sleep(0.2)
    await drained(al)
    assert written(al) == []
    assert await al.publish([health("canary.recovered")]) == []  # made after: not written either
    assert written(al) == []
    lost = [r.getMessage() for r in caplog.records if "lost the leader lock" in r.getMessage()]
    assert len(lost) == 2 and "canary.down c1@t [hook]" in lost[0], lost
    assert al.policy.memory == {}  # given up on: as never told


async def test_alert_messages_wait_for_the_leader_lock_to_be_confirmed(store: Store) -> None:
    """A leader waking from a freeze (SIGSTOP, a paused VM) tried its waiting writes at once, before its watch had
    asked the store whether the lock was still its own: a standby may have led for a while."""
    al = fast(cooled(store))
    confirmed = False
    al.pending.confirmed = lambda: confirmed
    assert await al.publish([health("canary.down")]) == []  # the store answers, the lock is not confirmed
    await asyncio.sleep(0.2)
    assert written(al) == [] and len(al.pending) == 1
    confirmed = True
    await drained(al)
    assert written(al) == ["canary.down"]


@pytest.mark.postgres
async def test_a_daemon_that_lost_the_leader_lock_to_a_postgresql_outage_leaves_its_canary_down_to_the_leader(
        sim: SimServer, pg_url: str, tmp_path: Path) -> None:  # noqa: F811
    """The daemon in-process: its canary.down waited for PostgreSQL as the outage ended the leader lock's session;
    once the store was back it was written during the shutdown, after a standby had taken over."""
    with Receiver() as rx:
        app = await started(config_path(tmp_path, sim, pg_url, rx))
        assert app.alerting is not None
        fast(app.alerting)
        canary, target = app.config.pairs()[0]
        try:
            await runs(app, 4)
            phase(sim, "down")
            with refusing(app.store):
                for _ in range(3):
                    await asyncio.wait_for(app._run_job(canary, target), 30)
                assert len(app.alerting.pending) == 1
                app.succession._lost_leadership()  # the watch's check failed: the lock's session is gone
            await drained(app.alerting)
            while len(app.runner.unsaved):
                await asyncio.sleep(0.05)
        finally:
            await app.stop()
        # Only the outage's own messages: the simulator's latency may drift as the machine's load changes (its
        # first run's calls set up connections), a behaviour event this test is not about (CI saw one opened).
        outage_rows = [(n.kind, n.signal) for n in app.alerting.outbox.query(limit=100)
                       if n.kind.startswith("canary.") or n.signal in ("health", "error", "error_type")]
        assert outage_rows == []
        assert told(rx) == []


async def test_an_answer_while_the_canary_down_waits_for_the_store_sends_none_of_what_the_outage_held(
        store: Store) -> None:
    """The pair's error drift was held as a suspected outage, its canary.down then waited for the store, and one
    answer among the failures (the pair still down: a recovery takes 3 good runs) read no canary.down at the sinks
    and sent the drift as "not an outage": two pages for one outage once the canary.down was written."""
    al = alerting(store)
    al.pending.first_delay_s = al.pending.max_delay_s = 1.0  # its next try comes after the answer
    al.inhibitor.saw("c1", "t", answered=False)
    write(al, drift())
    assert set(statuses(al).values()) == {HELD}
    with refusing(store):
        assert await al.publish([down()]) == []
    assert al.inhibitor.saw("c1", "t", answered=True)
    assert al.release_answered("c1", "t", {"error": 4}) == 0
    assert set(statuses(al).values()) == {HELD}
    await drained(al)
    assert set(statuses(al).values()) == {HELD}  # now behind the canary.down written at both sinks
    assert al.inhibitor.saw("c1", "t", answered=True)  # and the next answer looks again
    assert al.release_answered("c1", "t", {"error": 4}) == 0
    await al.publish([down("canary.recovered")])
    answer(store, NOW + timedelta(hours=1))
    assert al.inhibitor.saw("c1", "t", answered=True)
    assert al.release_answered("c1", "t", {"error": 1}) == 2  # the error rate change outlived the outage


async def test_a_canary_down_written_while_a_reload_reads_the_outbox_is_not_told_again(sqlite_store: Store) -> None:
    """A reload's paging (tried again and again while the store comes and goes) read the outbox just before the
    canary.down waiting for the store was written, then found its keys no longer marked as being written: neither in
    the outbox it read nor on its way, the pair was told down a second time at every sink."""
    al = fast(alerting(sqlite_store))  # no cooldown: nothing else drops a repeat
    read, go = threading.Event(), threading.Event()
    open_alerts = al.outbox.open_alerts

    def reading() -> list[Notification]:
        alerts = open_alerts()
        read.set()
        go.wait(10)
        return alerts

    with refusing(sqlite_store):
        assert await al.publish([down()]) == []
        al.outbox.open_alerts = reading  # type: ignore[method-assign]
        firing = asyncio.create_task(al.ensure_firing([down()]))
        assert await asyncio.to_thread(read.wait, 10)
    await drained(al)  # the store answers: the canary.down is written as the reload's read is on its way
    go.set()
    assert await firing == []
    await drained(al)
    assert sorted((n.sink, n.kind) for n in al.outbox.query(limit=100)) == [("am", "canary.down"),
                                                                          ("hook", "canary.down")]


async def test_a_drift_event_that_ends_while_its_opening_waits_for_the_store_is_not_opened_after_its_end(
        sqlite_store: Store) -> None:
    """A reload fired an open event at a sink added since (never told), and the write waited for the store (a disk
    full, a lock held past the busy timeout: reads go on). The event ended as the store came back: its end, written
    with the event, went to that sink (its memory said told), and the opening written after it was the sink's last
    word: a page no resolve follows."""
    from tests.test_alerts_takeover import replica, saved

    al = replica(sqlite_store)
    al.pending.first_delay_s = al.pending.max_delay_s = 1.0  # its next try comes after the end is written
    event = model_event(canary="c1", signal="refused", kind=BEHAVIOUR, test="bernoulli_cusum",
                        baseline_value=0.0, current_value=0.4)
    DriftRepository(sqlite_store.engine).save_events([event.to_json()])  # open; the sink was never told
    with refusing(sqlite_store):
        assert await al.ensure_firing([alert_event(EventUpdate("opened", event))]) == []
    ended = replace(event, state="resolved", resolved_at=(utcnow() + timedelta(seconds=1)).isoformat())
    saved(sqlite_store, al, EventUpdate("resolved", ended))  # the analysis's end, as the store came back
    await drained(al)
    assert [n.kind for n in al.outbox.query(limit=100) if n.kind == "drift.opened"] == []

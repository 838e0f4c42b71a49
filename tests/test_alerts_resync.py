"""`resync` (the cooldown memory read back from the outbox, on the analysis thread) while the event loop writes
notifications it has just planned: the read can come before their commit, and must not put back the state before
them; nor does the memory keep what the write left out (over SQLite and PostgreSQL)."""

from __future__ import annotations

import itertools
from datetime import timedelta

from monitor.alerts import AlertEvent, AlertsConfig, Notification, build_alerting
from monitor.alerts.service import Alerting
from monitor.store import Store
from tests.test_alerts_inhibit import NOW


def cooled(store: Store) -> Alerting:
    """Webhook messages within 30 minutes of a firing one are dropped as its repeats."""
    cfg = AlertsConfig.model_validate({"cooldown": "30m", "group_wait": "0s", "sinks": [
        {"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/hook"}]})
    ticks = itertools.count()
    return build_alerting(cfg, store, environ={}, now=lambda: NOW + timedelta(seconds=next(ticks)))


def health(kind: str) -> AlertEvent:
    return AlertEvent(kind=kind, canary="c1", target="t", signal="health", severity="critical", opened_at=NOW)


def resync_while_writing(al: Alerting) -> None:
    """Make the next writes run a resync first, from the writing thread: its outbox read precedes their commit."""
    write = al._write

    def racing(out: list[Notification], *rest: object) -> None:
        al.resync()
        write(out, *rest)  # type: ignore[arg-type]

    al._write = racing  # type: ignore[method-assign]


def kinds(out: list[Notification]) -> list[str]:
    return [n.kind for n in out]


async def test_the_recovery_of_a_canary_down_written_during_a_resync_is_sent(store: Store) -> None:
    """A second outage's canary.down written as a resync read the outbox: the read held the first outage's
    recovery as the latest state, and put it back, so the second recovery was dropped as not firing (the page
    stayed open)."""
    al = cooled(store)
    assert kinds(await al.publish([health("canary.down")])) == ["canary.down"]
    assert kinds(await al.publish([health("canary.recovered")])) == ["canary.recovered"]
    resync_while_writing(al)
    assert kinds(await al.publish([health("canary.down")])) == ["canary.down"]
    assert kinds(await al.publish([health("canary.recovered")])) == ["canary.recovered"]


async def test_a_canary_down_after_a_recovery_written_during_a_resync_is_no_repeat(store: Store) -> None:
    """The recovery written as a resync read the outbox: the read held the outage as firing and put it back, so
    the next outage's canary.down was dropped as a repeat within the cooldown (never paged)."""
    al = cooled(store)
    assert kinds(await al.publish([health("canary.down")])) == ["canary.down"]
    resync_while_writing(al)
    assert kinds(await al.publish([health("canary.recovered")])) == ["canary.recovered"]
    assert kinds(await al.publish([health("canary.down")])) == ["canary.down"]


async def test_a_resync_after_the_writes_still_reads_another_processs_ends(store: Store) -> None:
    """What the marks leave to the read: a key no write is under way for takes the outbox's state, as before (the
    CLI's accept resolving an alert this process remembers as firing)."""
    al = cooled(store)
    await al.publish([health("canary.down")])
    other = cooled(store)  # another process writes the recovery
    await other.publish([health("canary.recovered")])
    al.resync()
    assert kinds(await al.publish([health("canary.down")])) == ["canary.down"]


async def test_a_canary_down_never_written_is_not_remembered_as_firing(store: Store) -> None:
    """A run's canary.down as a reload removed its pair is not written (no longer monitored), but the memory held it
    as firing: the pair added back, still failing within the cooldown, had its canary.down dropped as a repeat (the
    outage never paged) and its canary.recovered sent alone."""
    al = cooled(store)
    al.monitored = set()  # the reload removed c1@t as its run ended
    assert kinds(await al.publish([health("canary.down")])) == []
    al.monitored = {("c1", "t")}  # added back
    assert kinds(await al.publish([health("canary.down")])) == ["canary.down"]
    assert kinds(await al.publish([health("canary.recovered")])) == ["canary.recovered"]

"""The outage inhibit's decisions at write time, over SQLite and PostgreSQL: what is held where, what never is,
what a removed pair's held rows become, and how the listing says why."""

from __future__ import annotations

import io
import itertools
import threading
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from rich.console import Console
from sqlmodel import Session

from monitor.alerts import AlertEvent, AlertsConfig, build_alerting, held_rows
from monitor.alerts.commands import alerts_pending
from monitor.alerts.events import DEAD, DELIVERED, FAILED, HELD, PENDING
from monitor.alerts.service import Alerting
from monitor.store import Store
from tests.support.delivery import Clock, build, config
from tests.support.receiver import Receiver
from tests.test_store_contract import obs
from tests.test_store_contract_streak import executed

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def alerting(store: Store, routes: list[dict] | None = None) -> Alerting:  # type: ignore[type-arg]
    cfg = AlertsConfig.model_validate({
        "cooldown": "0s", "group_wait": "0s", "routes": routes or [],
        "sinks": [{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/hook"},
                  {"name": "am", "type": "alertmanager", "url": "http://127.0.0.1:9"}]})
    ticks = itertools.count()  # every write a second later: rows are ordered by when they were written
    return build_alerting(cfg, store, environ={}, now=lambda: NOW + timedelta(seconds=next(ticks)))


def drift(kind: str = "drift.opened", signal: str = "error", canary: str = "c1") -> AlertEvent:
    return AlertEvent(kind=kind, canary=canary, target="t", signal=signal, event_id=f"ev-{canary}-{signal}",
                      opened_at=NOW)


def down(kind: str = "canary.down", canary: str = "c1") -> AlertEvent:
    return AlertEvent(kind=kind, canary=canary, target="t", signal="health", severity="critical", opened_at=NOW)


def write(al: Alerting, *events: AlertEvent) -> None:
    """Write events as the drift analysis does: in the caller's transaction."""
    with Session(al.outbox.engine) as s:
        al.enqueue(s, list(events))
        s.commit()


def answer(store: Store, at: datetime) -> datetime:
    """Store an answered call of c1@t started at `at`, analysed (its signals stored, as the analysis does before its
    look); return `at`."""
    o = obs(0, canary="c1", target="t")
    o.started_at = at
    store.save_observation(o)
    store.save_signals(o.id, {})
    return at


def statuses(al: Alerting, signal: str = "error") -> dict[tuple[str, str], str]:
    return {(n.sink, n.kind): n.status for n in al.outbox.query(limit=100) if n.signal == signal}


async def test_only_sinks_the_canary_down_goes_to_hold_the_drift(store: Store) -> None:
    """Where canary.down is not routed, the drift is the only word of the outage: it is sent."""
    al = alerting(store, routes=[{"match": {"kind": ["canary.*"]}, "sinks": ["am"]},
                                 {"match": {"kind": ["drift.*"]}, "sinks": ["am", "hook"]}])
    al.inhibitor.saw("c1", "t", answered=False)
    write(al, drift())
    assert statuses(al) == {("am", "drift.opened"): HELD, ("hook", "drift.opened"): PENDING}


async def test_behaviour_drift_is_never_held(store: Store) -> None:
    al = alerting(store)
    await al.publish([down()])
    al.inhibitor.saw("c1", "t", answered=False)
    write(al, drift(signal="refused"), drift(signal="check:json"), drift(signal="error_type"))
    assert set(statuses(al, "refused").values()) == {PENDING}
    assert set(statuses(al, "check:json").values()) == {PENDING}
    assert set(statuses(al, "error_type").values()) == {HELD}


async def test_a_down_pair_holds_new_and_waiting_error_drift_and_another_pair_is_untouched(store: Store) -> None:
    al = alerting(store)
    write(al, drift(), drift(canary="c2"))  # written while the calls answered: sent as usual
    assert set(statuses(al).values()) == {PENDING}
    await al.publish([down()])  # c1 goes down before they were sent: they wait
    rows = {(n.payload["canary"], n.sink): n for n in al.outbox.query(limit=100) if n.signal == "error"}
    assert {k: n.status for k, n in rows.items()} == {("c1", "hook"): HELD, ("c1", "am"): HELD,
                                                      ("c2", "hook"): PENDING, ("c2", "am"): PENDING}
    assert rows[("c1", "hook")].last_error == "held: c1@t is down (canary.down firing at this sink); " \
                                              "one page per outage"


async def test_a_removed_pair_ends_its_held_rows_unsent(store: Store) -> None:
    """A reload that removes a pair resolves its alerts; a held row was never sent, so no resolve follows it."""
    al = alerting(store)
    await al.publish([down()])
    write(al, drift())
    sent = await al.retire([])
    assert sorted((n.sink, n.kind) for n in sent) == [("am", "canary.recovered"), ("hook", "canary.recovered")]
    assert set(statuses(al).values()) == {DEAD}
    assert all("removed from the configuration" in str(n.last_error)
               for n in al.outbox.query(limit=100) if n.signal == "error")


async def test_the_listing_shows_held_rows_and_why(store: Store) -> None:
    al = alerting(store)
    await al.publish([down()])
    write(al, drift())
    buf = io.StringIO()
    config = SimpleNamespace(storage=SimpleNamespace(url=str(store.engine.url.render_as_string(hide_password=False))))
    assert alerts_pending(config, console=Console(file=buf, width=400, highlight=False, color_system=None)) == 0
    out = buf.getvalue()
    assert "outbox: 2 pending, 2 held" in out  # the two canary.down rows wait for delivery
    assert out.count("held: c1@t is down (canary.down firing at this sink)") == 2


async def test_after_a_recovery_a_held_opening_waits_for_the_answers_that_would_resolve_it(store: Store) -> None:
    """An error event still open at the recovery is the detector's lag until its chart has seen the answers that
    resolve it at the baseline rate; an error_type event sees no answers at all and stays held until it ends."""
    al = alerting(store)
    await al.publish([down()])
    write(al, drift(), drift(signal="error_type"))
    await al.publish([down("canary.recovered")])
    settled = {"error": 4, "error_type": None}  # what the drift engine says its open events need
    answer(store, NOW - timedelta(minutes=1))  # before the recovery: not one of its answers
    sent = []
    with executed(store) as statements:
        for i in range(6):
            answer(store, NOW + timedelta(minutes=1 + i))
            if al.inhibitor.saw("c1", "t", answered=True):
                sent.append(al.release_answered("c1", "t", settled))
    assert sent == [0, 2]  # a look at the first answer, then none until the fourth sends it (at both sinks)
    counted = [st for st, _ in statements if "count(" in st.lower() and "FROM observations" in st]
    assert len(counted) == 2  # one count of the answers a look, not one a held row (4 are held)
    assert {s for (_, _), s in statuses(al).items()} == {PENDING}
    assert set(statuses(al, "error_type").values()) == {HELD}
    why = next(n.last_error for n in al.outbox.query(limit=100) if n.signal == "error")
    assert why == "held while c1@t was down; sent 4 answers after its recovery: the error rate change outlived " \
                  "the outage"


async def test_a_held_opening_whose_event_ended_elsewhere_is_never_sent(store: Store) -> None:
    """An older release taking over mid-outage writes the end without ending the held opening (or the end is not
    routed to its sink): once the pair answers with no such event open, sending the opening would page an event
    that has ended (a PagerDuty incident no resolve follows). It ends unsent."""
    al = alerting(store)
    await al.publish([down()])
    write(al, drift())
    al.outbox.add(al.notifications(drift("drift.resolved")))  # as an older release writes it: no inhibitor
    await al.publish([down("canary.recovered")])
    assert al.inhibitor.saw("c1", "t", answered=True)
    assert al.release_answered("c1", "t", {}) == 0  # the drift engine has no open error event
    assert statuses(al)[("hook", "drift.opened")] == DEAD
    assert statuses(al)[("am", "drift.opened")] == DEAD
    assert not al.inhibitor.saw("c1", "t", answered=True)  # nothing held: no more looks


async def test_an_end_written_after_its_held_opening_was_ended_is_not_sent_either(store: Store) -> None:
    """The event resolved, but the store refused that write at first: the next answer found no open event and
    ended the held opening; the end, written later, is not sent for an opening the receiver never got."""
    al = alerting(store)
    await al.publish([down()])
    write(al, drift())
    await al.publish([down("canary.recovered")])
    assert al.inhibitor.saw("c1", "t", answered=True)
    al.release_answered("c1", "t", {})
    write(al, drift("drift.resolved"))
    assert statuses(al) == {("hook", "drift.opened"): DEAD, ("am", "drift.opened"): DEAD,
                            ("hook", "drift.resolved"): DEAD, ("am", "drift.resolved"): DEAD}
    why = next(n.last_error for n in al.outbox.query(limit=100) if n.kind == "drift.resolved")
    assert str(why).startswith("not sent: its opening was never sent")


async def test_answers_while_the_sinks_still_say_down_read_the_store_once(store: Store) -> None:
    """Held at sinks told the pair is down, rows wait for canary.recovered there; the pair's answers until then
    (every one, for ever if that recovery is never written there) do not each read the outbox."""
    al = alerting(store)
    await al.publish([down()])
    write(al, drift())
    assert al.inhibitor.saw("c1", "t", answered=True)
    assert al.release_answered("c1", "t", {"error": 4}) == 0
    assert [al.inhibitor.saw("c1", "t", answered=True) for _ in range(3)] == [False, False, False]
    await al.publish([down("canary.recovered")])  # written there: the next answer looks again
    assert al.inhibitor.saw("c1", "t", answered=True)
    assert set(statuses(al).values()) == {HELD}


def cooled(store: Store) -> Alerting:
    """Webhook messages within the default cooldown (30 min) of a firing one are dropped as its repeats."""
    cfg = AlertsConfig.model_validate({
        "cooldown": "30m", "group_wait": "0s",
        "sinks": [{"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/hook"}]})
    ticks = itertools.count()
    return build_alerting(cfg, store, environ={}, now=lambda: NOW + timedelta(seconds=next(ticks)))


async def test_a_held_opening_ended_with_its_removed_pair_is_no_repeat_to_drop(store: Store) -> None:
    """A reload removes the failing pair (its held opening ends unsent) and a later one brings it back with the event
    still open: the receiver never got the opening, so it is no repeat within the cooldown; nor after a restart."""
    al = cooled(store)
    await al.publish([down()])
    write(al, drift())
    await al.retire([])
    assert statuses(al) == {("hook", "drift.opened"): DEAD}
    fired = await al.ensure_firing([drift()])  # the pair is back, its event still open
    assert [(n.sink, n.kind) for n in fired] == [("hook", "drift.opened")]


async def test_after_a_restart_a_held_opening_ended_unsent_is_no_repeat_to_drop(store: Store) -> None:
    al = cooled(store)
    await al.publish([down()])
    write(al, drift())
    await al.retire([])
    again = cooled(store)  # a restart: the cooldown memory is read back from the outbox
    again.resync()
    fired = await again.ensure_firing([drift()])
    assert [(n.sink, n.kind) for n in fired] == [("hook", "drift.opened")]


async def test_a_row_held_while_its_attempt_is_on_the_wire_stays_held_when_the_attempt_fails(store: Store) -> None:
    """canary.down holds the error drift not yet sent, the one the sender is trying too: if that attempt fails,
    the row waits as held, not to be retried (and sent) during the outage."""
    al = alerting(store)
    write(al, drift())  # the calls answered: sent as usual
    claimed, _ = al.outbox.claim(NOW + timedelta(hours=1), sink="hook")
    [n] = claimed
    await al.publish([down()])  # the pair goes down while the attempt is on the wire
    al.outbox.mark_retry(n.id, NOW + timedelta(hours=1), "HTTP 503")
    row = al.outbox.get(n.id)
    assert row is not None and row.status == HELD
    assert str(row.last_error).startswith("held: c1@t is down")


class _Contended:
    """A lock that says when a thread has to wait for it (the test's way to see two threads meet, with no timing)."""

    def __init__(self, met: threading.Event):
        self._lock = threading.Lock()
        self.met = met

    def __enter__(self) -> None:
        if not self._lock.acquire(blocking=False):
            self.met.set()
            self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


async def test_canary_down_written_while_an_answer_releases_the_suspected_hold_still_holds(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pair's late-analysed answer releases its suspected hold on the analysis thread while its third failed
    run writes canary.down on another: whichever comes second decides, never a mix (the release looked before
    canary.down was stored and wrote after: the drift went out during the outage, a second page)."""
    al = alerting(store)
    al.inhibitor.saw("c1", "t", answered=False)
    write(al, drift())
    assert al.inhibitor.saw("c1", "t", answered=True)
    met = threading.Event()
    al.inhibitor.lock = _Contended(met)  # type: ignore[assignment]
    looked = held_rows.latest_health

    threads: list[threading.Thread] = []

    def publish() -> None:  # as Alerting.publish does, on a thread of its own
        al._write(al.notifications(down()))
        met.set()

    def down_meanwhile(session: object, sink: str, group_key: str) -> object:
        was = looked(session, sink, group_key)
        if not threads:  # the first look: canary.down is written now, by another thread
            threads.append(threading.Thread(target=publish))
            threads[0].start()
            met.wait()  # until it is written, or waits for the release to end
        return was

    monkeypatch.setattr(held_rows, "latest_health", down_meanwhile)
    al.release_answered("c1", "t", {"error": 4})
    threads[0].join()
    assert set(statuses(al).values()) == {HELD}
    assert ("c1", "t") in al.inhibitor.holding


async def test_canary_down_does_not_hold_an_opening_whose_event_already_ended(store: Store) -> None:
    """An error event opened and resolved while its messages waited (the receiver was down, so both wait for a
    retry), then the pair went down: held, the opening would leave its end first in line, and the receiver would be
    told "resolved" of an event it never heard of (then the opening is ended unsent). The outage did not cause
    that event: the receiver gets both, in order."""
    al = alerting(store)
    write(al, drift())
    write(al, drift("drift.resolved"))
    await al.publish([down()])
    assert set(statuses(al).values()) == {PENDING}
    due, _ = al.outbox.claim(NOW + timedelta(hours=1), sink="hook")
    assert [n.kind for n in due if n.signal == "error"] == ["drift.opened"]


async def test_an_accept_from_the_cli_while_the_daemon_releases_the_opening_is_not_undone(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """`llm-monitor baseline accept` (another process, without the daemon's lock) ends the held opening and its
    accept unsent while the daemon's release, at the pair's answer, has read the opening as held: the release must
    not write it back as pending, or the receiver is paged for an event whose end it is never told (a PagerDuty
    incident left open)."""
    al = alerting(store)
    cli = alerting(store)  # the CLI's own Alerting: a fresh inhibitor, the same store
    al.inhibitor.saw("c1", "t", answered=False)
    write(al, drift())
    assert set(statuses(al).values()) == {HELD}
    looked = held_rows.latest_health
    accepted: list[bool] = []

    def accept_meanwhile(session: object, sink: str, group_key: str) -> object:
        if not accepted:  # the release has read the held rows: the CLI writes the accept now
            accepted.append(True)
            write(cli, drift("drift.accepted"))
        return looked(session, sink, group_key)

    monkeypatch.setattr(held_rows, "latest_health", accept_meanwhile)
    assert al.inhibitor.saw("c1", "t", answered=True)
    assert al.release_answered("c1", "t", {"error": 4}) == 0
    assert set(statuses(al).values()) == {DEAD}


async def test_a_release_while_the_cli_writes_the_accept_sends_the_accept_too(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The other order: the CLI's accept has read the opening as held when the daemon's release (at the pair's
    answer) sends it. Ending it unsent then would leave the receiver told "firing" and never "accepted"."""
    al = alerting(store)
    cli = alerting(store)
    al.inhibitor.saw("c1", "t", answered=False)
    write(al, drift())
    looked = held_rows.opening
    released: list[int] = []

    def release_meanwhile(session: object, n: object) -> object:
        row = looked(session, n)  # type: ignore[arg-type]
        if not released:  # the CLI has read the held opening: the daemon releases it now
            assert al.inhibitor.saw("c1", "t", answered=True)
            released.append(al.release_answered("c1", "t", {"error": 4}))
        return row

    monkeypatch.setattr(held_rows, "opening", release_meanwhile)
    write(cli, drift("drift.accepted"))
    assert released == [2]
    assert set(statuses(al).values()) == {PENDING}


async def test_a_row_released_after_a_long_hold_is_retried_like_any_other(store: Store, clock: Clock,
                                                                         rx: Receiver) -> None:
    """An outage longer than `retry.give_up_after` (a revoked key over a weekend), or the answers after it that a
    released opening waits for: the release is when the row first goes out, so its first failed attempt is retried,
    not given up on at once because the row was written long ago."""
    al = build(store, config(rx.url), clock)
    await al.publish([AlertEvent(kind="canary.down", canary="c1", target="t", signal="health",
                                 severity="critical")])
    clock.advance(1)
    write(al, drift())
    clock.advance(2 * 3600)  # give_up_after is 1 h here
    await al.publish([AlertEvent(kind="canary.recovered", canary="c1", target="t", signal="health")])
    await al.sender.flush()
    assert [r.json["type"] for r in rx.delivered] == ["canary.down", "canary.recovered"]
    clock.advance(1)
    assert al.inhibitor.saw("c1", "t", answered=True)
    answer(store, clock())
    assert al.release_answered("c1", "t", {"error": 1}) == 1
    rx.fail(503, times=1)
    await al.sender.flush()
    assert statuses(al)[("hook", "drift.opened")] == FAILED
    clock.advance(600)
    await al.sender.flush()
    assert statuses(al)[("hook", "drift.opened")] == DELIVERED
    assert [r.json["type"] for r in rx.delivered][-1] == "drift.opened"



async def test_a_canary_down_given_up_on_sends_what_it_held_at_its_sink(store: Store, clock: Clock,
                                                                        rx: Receiver) -> None:
    """The receiver was unreachable past `retry.give_up_after` during a long outage: its canary.down went dead, and
    the error drift held under it waited, the sink told nothing of the outage, with nothing to release it until its
    event ended (then ended unsent). The drift is now the sink's only word of the outage, and goes out."""
    al = build(store, config(rx.url), clock)
    al.inhibitor.saw("c1", "t", answered=False)
    write(al, drift())  # held: every call fails so far
    await al.publish([down()])
    rx.fail(503, times=2)
    await al.sender.flush()
    clock.advance(2 * 3600)  # give_up_after is 1 h here
    await al.sender.flush()  # its second attempt fails too: given up on
    assert statuses(al, "health") == {("hook", "canary.down"): DEAD}
    assert [r.json["type"] for r in rx.delivered] == ["drift.opened"]
    why = next(n.last_error for n in al.outbox.query(limit=100) if n.signal == "error")
    assert why == "held while c1@t was down; sent once its canary.down here was given up on: the sink's only word " \
                  "of the outage"


async def test_a_canary_down_given_up_on_after_the_recovery_was_written_leaves_the_hold_to_it(
        store: Store, clock: Clock, rx: Receiver) -> None:
    """The canary.recovered written behind it decides (the held row waits for the answers after it)."""
    al = build(store, config(rx.url), clock)
    await al.publish([down()])
    clock.advance(1)
    write(al, drift())
    rx.fail(503)
    await al.sender.flush()
    clock.advance(1)
    await al.publish([down("canary.recovered")])
    clock.advance(2 * 3600)
    await al.sender.flush()
    assert statuses(al, "health")[("hook", "canary.down")] == DEAD
    assert statuses(al) == {("hook", "drift.opened"): HELD}


async def test_error_drift_opened_after_the_canary_down_was_given_up_on_is_not_held_at_that_sink(
        store: Store, clock: Clock, rx: Receiver) -> None:
    """The sink's canary.down given up on, it stands as a sink no canary.down goes to: the drift is its only word of
    the outage. An error_type event opening later in the same outage was held there as a suspected outage (released
    at the next answer, then after the recovery held until it ended: never told)."""
    al = build(store, config(rx.url), clock)
    al.inhibitor.saw("c1", "t", answered=False)
    await al.publish([down()])
    rx.fail(503, times=2)
    await al.sender.flush()
    clock.advance(2 * 3600)  # give_up_after is 1 h here
    await al.sender.flush()
    assert statuses(al, "health") == {("hook", "canary.down"): DEAD}
    al.inhibitor.saw("c1", "t", answered=False)  # still failing
    write(al, drift(signal="error_type"))
    assert statuses(al, "error_type") == {("hook", "drift.opened"): PENDING}


async def test_a_canary_down_given_up_on_just_before_a_crash_releases_what_it_held_at_the_next_start(
        store: Store, clock: Clock, rx: Receiver) -> None:
    """The release runs after the row is marked dead, in a transaction of its own: a crash (or a store error) in
    between left the drift held, with nothing to release it while the outage lasts. The next start (or take-over)
    releases it, as the give-up would have."""
    al = build(store, config(rx.url), clock)
    al.inhibitor.saw("c1", "t", answered=False)
    write(al, drift())
    await al.publish([down()])
    al.sender.on_dead = None  # the process dies right after marking it dead
    rx.fail(503, times=2)
    await al.sender.flush()
    clock.advance(2 * 3600)
    await al.sender.flush()
    assert statuses(al, "health") == {("hook", "canary.down"): DEAD}
    assert statuses(al) == {("hook", "drift.opened"): HELD}
    again = build(store, config(rx.url), clock)
    await again.start()
    try:
        assert statuses(again)[("hook", "drift.opened")] in (PENDING, DELIVERED)  # its sender may have sent it
    finally:
        await again.stop()


async def test_a_store_error_releasing_what_a_canary_down_given_up_on_held_stops_no_other_row(
        store: Store, clock: Clock, rx: Receiver) -> None:
    """The release after a give-up failing on the store (it is retried at the next start) ended the sender's batch
    there: the other rows given up on in it waited out their claim, their sinks' state unsaid meanwhile."""
    from sqlalchemy.exc import OperationalError

    al = build(store, config(rx.url), clock)
    await al.publish([down(canary="c1"), down(canary="c2")])
    release = al.sender.on_dead
    calls = []

    def failing(n):  # type: ignore[no-untyped-def]
        calls.append(n.payload["canary"])
        if len(calls) == 1:
            raise OperationalError("UPDATE notifications", {}, Exception("database is locked"))
        return release(n)  # type: ignore[misc]

    al.sender.on_dead = failing
    rx.fail(503)
    await al.sender.flush()
    clock.advance(2 * 3600)  # give_up_after is 1 h here
    await al.sender.flush()
    assert sorted(calls) == ["c1", "c2"]
    assert [n.status for n in al.outbox.query(limit=100) if n.kind == "canary.down"] == [DEAD, DEAD]

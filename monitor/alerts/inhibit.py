"""One page per outage: drift notifications on a failing canary's error signals are held while it is down.

A canary x target failing every call shows twice: the health watch's ``canary.down`` (after 3 failed runs) and
the drift engine's ``error`` (and ``error_type``) event of the same pair. Receivers should be paged once, as the
shipped Alertmanager inhibit rule does; this is the same rule for every sink, decided when the rows are written:

- A ``drift.opened`` on ``error``/``error_type`` is written *held* (status ``held``, the reason in ``last_error``)
  at a sink that was told the pair is down (its latest health row there is ``canary.down``), or, while the pair's
  latest analysed call failed, at a sink the pair's ``canary.down`` would go to. The drift engine opens an error
  event after several failed calls: with 3 or more samples a run that is often before the third failed run
  sends ``canary.down``, so holding only once it is down would let the drift page out first.
- The pair's next answer releases what it held as a suspected outage (an error-rate rise, not an outage); a
  ``canary.down`` holds that sink's error drift openings not yet sent (not one whose end is written already: that
  event ended before the outage, and held alone its end would go out first). After ``canary.recovered`` a held
  row waits for its event's verdict: an error event resolves only after as many answers as its chart needs to
  see the rate back at baseline (17 to 110 calls with the default settings, far more than the 3 runs that recover
  a canary), so an event still open at the recovery is the detector's lag, not news. The row is sent once the pair
  has answered that many calls since the recovery and the event is still open (the error rate change outlived the
  outage).
  An ``error_type`` event (the mix of failures) sees no answers at all: it stays held until it ends. One opening
  after the recovery on a failure type the outage's ``canary.down`` named, first seen before the recovery, is that
  outage's mix (``held_rows.outage_mix``, ``OUTAGE_MIX`` in its reason): held until its event ends, ended unsent.
- A ``canary.down`` given up on (dead) stands for nothing at its sink: what it held there is sent, the sink's only
  word of the outage (unless a ``canary.recovered`` was written there after it, whose rule then holds; at the next
  start or take-over if the process stopped between the two), and an error drift opening there later in the outage
  is not held.
- A ``drift.resolved``/``drift.accepted`` whose ``drift.opened`` is held ends both, unsent (status ``dead``, the
  reason in ``last_error``): the receiver was never told it opened. A held row whose event is no longer open when
  its pair answers (the end did not reach it) ends unsent too, and so does the end written after it.

Everything it decides on is in the store (the outbox, and the answers since a recovery: monitor.alerts.recovery),
so a restart or another replica taking over holds and releases the same rows at the same answer; in memory are
only whether a pair's latest call failed (set again by the next analysed call), which pairs have rows held (read
from the outbox at start) and how many answers a release waits for before it looks at the store again (none
known after a restart: its first answer looks). Behaviour signals are never held.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import and_, event, update
from sqlmodel import Session, col, select

from monitor.alerts import held_rows
from monitor.alerts.config import AlertsConfig
from monitor.alerts.events import (
    DEAD,
    HELD,
    NOT_SENT,
    PENDING,
    RELEASED_NOTE,
    WAITING,
    AlertEvent,
    Notification,
)
from monitor.alerts.held_rows import ENDS, HEALTH_KINDS, HELD_SIGNALS, Pair
from monitor.alerts.outbox import alert_key
from monitor.alerts.policy import route
from monitor.alerts.recovery import answers_since
from monitor.alerts.sinks import SINKS, Sink
from monitor.store.convert import aware
from monitor.store.outbox_table import NotificationRow


def holdable(kind: str, signal: str) -> bool:
    """Whether a notification is one an outage may hold (drift on an error signal)."""
    return signal in HELD_SIGNALS and (kind == "drift.opened" or kind in ENDS)


class Inhibitor:
    """Holds and releases drift notifications on error signals around a canary's outage (see the module).

    The alerting layer calls :meth:`apply` on every batch of notifications in the transaction that writes them,
    the analysis :meth:`saw` for every analysed call, and :meth:`release` when that call answered a pair with rows
    held. Counts go to ``llm_monitor_notifications_held_total`` and ``..._inhibited_total`` once committed.
    """

    def __init__(self, cfg: AlertsConfig, metrics: Any = None):
        self.cfg = cfg
        self.metrics = metrics
        self.failing: set[Pair] = set()  # pairs whose latest analysed call failed (the analysis thread's view)
        self.holding: set[Pair] = set()  # pairs with rows held in the outbox
        # pairs with rows held -> answers still to come before a release looks at the store again (None: not
        # until a canary.recovered is written or they end); a pair not in it looks at its next answer. Only a hint
        # against a look per answer: the answers since a recovery are counted in the store at each look
        self._wait: dict[Pair, int | None] = {}
        # A release (the analysis thread) and a write of its own (canary.down / canary.recovered, a retire, on the
        # event loop's threads) take turns: a release that looked before canary.down was stored and wrote after it
        # sent the drift during the outage, and its "nothing held" forgot rows canary.down had just held.
        self.lock = threading.Lock()

    def seed(self, engine: Any, now: datetime) -> None:
        """Read which pairs have rows held from the outbox (at start-up and take-over), and send those held at a
        sink whose canary.down was given up on (`given_up` runs after the row is marked dead: a crash or a store
        error in between left them held, with nothing to release them while the outage lasts)."""
        with self.lock, Session(engine) as s:
            rows = s.exec(select(NotificationRow).where(NotificationRow.status == HELD)).all()
            self.holding |= {held_rows.pair_of(r) for r in rows}  # each looks at its next answer
            for sink, group_key in {(r.sink, r.group_key) for r in rows}:
                if held_rows.given_up_at(s, sink, group_key, re_sent=self._re_sent(sink)):
                    self._send_held(s, sink, group_key, now)
            s.commit()

    def seed_failing(self, pairs: Iterable[Pair], failing: Iterable[Pair]) -> None:
        """Take whether the latest calls of `pairs` failed from the store (`failing`: those of them with a failing
        streak), at take-over and for the pairs a reload adds: the open events those fire again before their first
        call (`Alerting.ensure_firing`) are held while they fail, as a new opening is. Left unknown, a pair removed
        mid-outage and added back across a restart had its error drift paged along with its canary.down."""
        self.failing.difference_update(pairs)
        self.failing.update(failing)

    def saw(self, canary: str, target: str, answered: bool) -> bool:
        """Note an analysed call of a pair; return whether it ends a suspected outage with rows held (release
        them with :meth:`release`)."""
        pair = (canary, target)
        if not answered:
            self.failing.add(pair)
            return False
        self.failing.discard(pair)
        if pair not in self.holding:
            return False
        if pair not in self._wait:
            return True
        left = self._wait[pair]
        if left is None:
            return False
        self._wait[pair] = left - 1
        return left <= 1

    def _re_sent(self, sink: str) -> bool:
        """Whether `sink` is re-sent what fires (Alertmanager), a canary.down given up on there included."""
        types = {s.name: s.type for s in self.cfg.sinks}
        return sink in types and SINKS[types[sink]].refresh is not Sink.refresh

    def _down_sinks(self, n: Notification) -> list[str]:
        """The sinks the pair's canary.down would go to (only there does it stand for the drift)."""
        canary, target = held_rows.pair_of(n)
        down = AlertEvent(kind="canary.down", canary=canary, target=target, signal="health", severity="critical",
                          tags=tuple(n.payload.get("tags") or ()))
        return route(down, self.cfg)

    def apply(self, session: Any, notifications: Iterable[Notification], now: datetime) -> None:
        """Decide, in the transaction that writes `notifications`, which are held, which end a held one unsent,
        and (for canary.down / canary.recovered rows) which rows already written to hold or release."""
        held: dict[str, int] = {}
        inhibited: dict[str, int] = {}
        batch: dict[tuple[str, str, str], Notification] = {}  # openings of this batch, not in the session yet
        for n in notifications:
            if n.kind in HEALTH_KINDS:
                self._health(session, n, now, held)
                continue
            if not holdable(n.kind, n.signal):
                continue
            canary, target = held_rows.pair_of(n)
            if n.kind == "drift.opened":
                batch[alert_key(n)] = n
                if held_rows.down_at(session, n.sink, n.group_key):
                    why = f"{canary}@{target} is down (canary.down firing at this sink)"
                elif (canary, target) in self.failing and n.sink in self._down_sinks(n) \
                        and not held_rows.given_up_at(session, n.sink, n.group_key, re_sent=self._re_sent(n.sink)):
                    why = f"every call of {canary}@{target} fails so far (sent at its next answer)"
                elif mix := held_rows.outage_mix(session, n):
                    why = mix
                else:
                    continue
                n.status, n.last_error = HELD, f"held: {why}; one page per outage"
                held[n.sink] = held.get(n.sink, 0) + 1
                self.holding.add((canary, target))
                self._wait.pop((canary, target), None)  # the next answer looks at the store again
                continue
            opened: Notification | NotificationRow | None = batch.get(alert_key(n))
            if opened is None:
                opened = held_rows.opening(session, n)
            if opened is not None and opened.status == HELD:
                why = (f"{NOT_SENT} the {n.signal} event ended ({n.kind}) while its opening was held "
                       f"{held_rows.why_held(opened, canary, target)}")
                if isinstance(opened, Notification):
                    opened.status, opened.last_error = DEAD, why
                    ended = True
                else:
                    ended = held_rows.still_held(session, opened, status=DEAD, last_error=why)
                    if not ended:
                        # the daemon released it (or ended it) since it was read here, in another process
                        # (`baseline accept` from the CLI): sent, so is its end; ended unsent, so is its end (below)
                        session.refresh(opened)
                if ended:
                    n.status, n.last_error = DEAD, why
                    inhibited[n.sink] = inhibited.get(n.sink, 0) + 2
                    self._wait.pop((canary, target), None)
                    continue
            if opened is not None and opened.status == DEAD and (opened.last_error or "").startswith(NOT_SENT):
                # its opening was ended unsent before this end was written (the store refused it at first): the
                # receiver was never told it opened, so it is not told it ended either
                n.status, n.last_error = DEAD, f"{NOT_SENT} its opening was never sent ({opened.last_error})"
                inhibited[n.sink] = inhibited.get(n.sink, 0) + 1
        self._count_on_commit(session, held, inhibited)

    def _health(self, session: Any, n: Notification, now: datetime, held: dict[str, int]) -> None:
        """A canary.down holds the sink's error drift rows of the pair not yet sent; a canary.recovered releases
        the rows held there (their events are still open: one that ended took its opening with it)."""
        canary, target = held_rows.pair_of(n)
        where = and_(col(NotificationRow.sink) == n.sink, col(NotificationRow.group_key) == n.group_key,
                     col(NotificationRow.signal).in_(HELD_SIGNALS))
        if n.kind == "canary.down":
            why = f"held: {canary}@{target} is down (canary.down firing at this sink); one page per outage"
            session.exec(update(NotificationRow).where(  # type: ignore[call-overload]
                where, col(NotificationRow.status) == HELD).values(last_error=why))
            res = session.exec(update(NotificationRow).where(  # type: ignore[call-overload]
                where, col(NotificationRow.kind) == "drift.opened", col(NotificationRow.status).in_(WAITING),
                ~held_rows.ended_after()).values(status=HELD, last_error=why))
            if res.rowcount:
                held[n.sink] = held.get(n.sink, 0) + int(res.rowcount)
                self.holding.add((canary, target))
            return
        res = session.exec(update(NotificationRow).where(  # type: ignore[call-overload]
            where, col(NotificationRow.status) == HELD)
            .values(last_error=f"held: {canary}@{target} recovered; sent if its error event is still open once "
                               "the answers that resolve it have come, else ended unsent with it"))
        if res.rowcount:
            self._wait.pop((canary, target), None)  # the next answer looks (and counts from this row's time)

    def release(self, engine: Any, canary: str, target: str, now: datetime,
                settled: Mapping[str, int | None]) -> int:
        """Send what a pair held at the sinks not told it is down: a suspected outage's rows at once (it answered
        before canary.down), a recovered outage's once it has answered as many calls since as `settled` says its
        signal's open event needs to resolve at the baseline rate (None: never, it ends held); return how many
        rows were released. The answers are counted in the store: those the analysis has analysed. A row of a
        signal with no open event (its end did not end it: an older release wrote the end, or the end was not routed
        to its sink) ends unsent: sent, it would open what has ended."""
        with self.lock:
            return self._release(engine, canary, target, now, settled)

    def _release(self, engine: Any, canary: str, target: str, now: datetime,
                 settled: Mapping[str, int | None]) -> int:
        group_key = AlertEvent(kind="", canary=canary, target=target).group_key
        pair = (canary, target)
        released = 0
        with Session(engine) as s:
            rows = s.exec(select(NotificationRow).where(NotificationRow.group_key == group_key,
                                                       NotificationRow.status == HELD)).all()
            latest = {sink: held_rows.latest_health(s, sink, group_key)  # once a sink
                      for sink in {r.sink for r in rows}}
            # per row waiting after a recovery: answers still to come (None: no count will do)
            waiting: list[int | None] = []
            answered: dict[datetime, int] = {}  # recovery time -> answers since: one count, whatever the rows

            def answers(recovered: NotificationRow) -> int:
                at = aware(recovered.created_at) or recovered.created_at
                if at not in answered:
                    answered[at] = answers_since(s, canary, target, at)
                return answered[at]

            ended: dict[str, int] = {}
            told_down = False  # rows still held at a sink told the pair is down
            for r in rows:
                if r.signal not in settled:  # its event is no longer open, and its end did not end this row (an
                    # older release wrote it, or it was not routed here): sent now, it would open what has ended
                    if held_rows.still_held(s, r, status=DEAD,
                                   last_error=f"{NOT_SENT} its {r.signal} event ended while its opening was held "
                                              f"{held_rows.why_held(r, canary, target)}"):
                        ended[r.sink] = ended.get(r.sink, 0) + 1
                    continue
                if held_rows.is_down(latest[r.sink]):
                    told_down = True
                    continue
                if held_rows.is_outage_mix(r):  # the outage's failures: it waits for its event to end
                    waiting.append(None)
                    continue
                need = settled.get(r.signal, 0)
                health = latest[r.sink]
                if health is not None and held_rows.recovered_after(health, r):
                    since = answers(health)
                    if need is None or since < need:
                        waiting.append(None if need is None else need - since)
                        continue
                    why = (f"{RELEASED_NOTE} {canary}@{target} was down; sent {since} answers after its recovery: "
                           "the error rate change outlived the outage")
                else:
                    why = (f"{RELEASED_NOTE} every call of {canary}@{target} failed; sent at its next answer: "
                           "not an outage")
                # a row still within its group_wait keeps it (the openings of one change go out as one message);
                # written now as far as delivery goes: `retry.give_up_after` counts from its release, else a hold
                # longer than that (an outage over a weekend) left its first failed attempt no retry
                if held_rows.still_held(s, r, status=PENDING,
                                        next_attempt_at=max(aware(r.next_attempt_at) or now, now),
                                        created_at=max(aware(r.created_at) or now, now), last_error=why):
                    released += 1
            self._count_on_commit(s, {}, ended)
            s.commit()
        if waiting:
            self._wait[pair] = min((n for n in waiting if n is not None), default=None)
        elif told_down:
            # what is left waits at sinks told the pair is down: no look at the store per answer until a
            # canary.recovered is written there (which looks again), however long that takes
            self._wait[pair] = None
        if not told_down and not waiting:
            self.holding.discard(pair)
            self._wait.pop(pair, None)
        return released

    def given_up(self, engine: Any, dead: Notification, now: datetime) -> int:
        """A canary.down given up on (`dead`: retries past `give_up_after`, its sink disabled by a 410, ...) stands
        for nothing at its sink: send the drift it held there, the sink's only word of the outage now, as at a sink
        no canary.down is routed to (else it waited, with nothing to release it, until its event ended); return how
        many rows were released. Not once a newer health row is written there (a canary.recovered: its rules hold)."""
        if dead.kind != "canary.down":
            return 0
        with self.lock, Session(engine) as s:
            if not held_rows.given_up_at(s, dead.sink, dead.group_key, re_sent=self._re_sent(dead.sink)):
                return 0  # Alertmanager is re-sent it (`Outbox.firing`): it still stands for the outage there
            latest = held_rows.latest_health(s, dead.sink, dead.group_key)
            if latest is not None and (aware(latest.created_at) or latest.created_at) > dead.created_at:
                return 0
            released = self._send_held(s, dead.sink, dead.group_key, now)
            s.commit()
        return released

    def _send_held(self, s: Any, sink: str, group_key: str, now: datetime) -> int:
        """`given_up` in an open session: send the group's rows held at `sink`; return how many."""
        rows = s.exec(select(NotificationRow).where(
            NotificationRow.sink == sink, NotificationRow.group_key == group_key, NotificationRow.status == HELD)).all()
        if not rows:
            return 0
        canary, target = held_rows.pair_of(rows[0])
        why = (f"{RELEASED_NOTE} {canary}@{target} was down; sent once its canary.down here was given up on: "
               "the sink's only word of the outage")
        released = sum(held_rows.still_held(s, r, status=PENDING,
                                            next_attempt_at=max(aware(r.next_attempt_at) or now, now),
                                            created_at=max(aware(r.created_at) or now, now), last_error=why)
                       for r in rows)
        self._wait.pop((canary, target), None)  # the next answer looks at what is still held elsewhere
        return released

    def drop(self, session: Any, canary: str, target: str) -> None:
        """End a removed pair's held rows unsent (no resolve follows a message never sent)."""
        group_key = AlertEvent(kind="", canary=canary, target=target).group_key
        rows = session.exec(select(NotificationRow).where(NotificationRow.group_key == group_key,
                                                          NotificationRow.status == HELD)).all()
        counts: dict[str, int] = {}
        for r in rows:
            r.status = DEAD
            r.last_error = f"{NOT_SENT} held while {canary}@{target} was failing, then it was removed from the " \
                           "configuration"
            session.add(r)
            counts[r.sink] = counts.get(r.sink, 0) + 1
        self.holding.discard((canary, target))
        self._count_on_commit(session, {}, counts)

    def _count_on_commit(self, session: Any, held: dict[str, int], inhibited: dict[str, int]) -> None:
        """Count held and inhibited rows once their transaction commits (a rolled-back write is written again)."""
        if self.metrics is None or not (held or inhibited):
            return
        metrics = self.metrics

        def count(_: Any) -> None:
            for sink, k in held.items():
                metrics.held.labels(sink).inc(k)
            for sink, k in inhibited.items():
                metrics.inhibited.labels(sink).inc(k)

        event.listen(session, "after_commit", count, once=True)

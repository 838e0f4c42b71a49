"""The outbox repository: notifications are rows, written with the event that causes them, sent later.

:func:`enqueue` adds rows to the caller's open session, so a notification commits (or rolls back) together
with the drift event that caused it. :class:`Outbox` is what the sender uses: it claims due rows with a
lease (``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL plus a compare-and-set on ``next_attempt_at``),
so several replicas never send the same row at the same time, and a crash only delays a row by its lease.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, case, func, literal_column, text, tuple_, update
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from monitor.alerts.events import (
    DEAD,
    DELIVERED,
    FAILED,
    FIRING,
    HELD,
    PENDING,
    RELEASED_NOTE,
    RESOLVING,
    RETRIED_END_NOTE,
    WAITING,
    Notification,
)
from monitor.alerts.outbox_asked import Asking
from monitor.alerts.outbox_resend import Resending, given_up, given_up_firing
from monitor.alerts.outbox_upkeep import Upkeep
from monitor.store.convert import aware, storable
from monitor.store.engine import retry_disconnect
from monitor.store.outbox_latest import latest_rows
from monitor.store.outbox_table import WAITING_WHERE, NotificationRow

_STATE_KINDS = tuple(FIRING | RESOLVING)
__all__ = ["Outbox", "alert_key", "enqueue", "given_up_firing", "told_firing"]
Key = tuple[str, str, str]
# Rows one release statement gives back on SQLite: two parameters each, under its 32,766 a statement (3.32 and
# later); a claim hands out far fewer (the sender's batch).
RELEASE_BATCH = 10_000
WAITS_BEHIND_BATCH = 100  # alerts per statement of `waits_behind`
_RELEASE_PG = text("UPDATE notifications AS n SET next_attempt_at = :now "
                   "FROM unnest(CAST(:ids AS text[]), CAST(:leases AS timestamptz[])) AS r(id, lease) "
                   f"WHERE n.id = r.id AND n.next_attempt_at = r.lease AND n.{WAITING_WHERE}")


def _waiting(row: Any) -> Any:
    """`row` waits for delivery, with the statuses written in the SQL (`WAITING_WHERE`), not bound: a plan is made
    before the parameters' values are known, and only such a query can use the partial index of waiting rows."""
    return col(row.status).in_([literal_column(f"'{status}'") for status in WAITING])


def _to_row(n: Notification) -> NotificationRow:
    return NotificationRow(
        id=n.id, message_id=n.message_id, sink=n.sink, kind=n.kind, group_key=n.group_key, signal=n.signal,
        payload=storable(n.payload), status=n.status, attempts=n.attempts, next_attempt_at=n.next_attempt_at,
        last_error=n.last_error, created_at=n.created_at, delivered_at=n.delivered_at,
        asked_at=n.asked_at, sent_as=n.sent_as)


def _from_row(r: NotificationRow) -> Notification:
    return Notification(
        id=r.id, message_id=r.message_id, sink=r.sink, kind=r.kind, group_key=r.group_key, signal=r.signal,
        payload=dict(r.payload or {}), created_at=aware(r.created_at) or r.created_at,
        next_attempt_at=aware(r.next_attempt_at) or r.next_attempt_at, status=r.status, attempts=r.attempts,
        last_error=r.last_error, delivered_at=aware(r.delivered_at),
        asked_at=aware(r.asked_at), sent_as=r.sent_as)


def enqueue(session: Any, notifications: Iterable[Notification]) -> list[str]:
    """Add notifications to an open session (no commit: they land with the caller's transaction)."""
    ids = []
    for n in notifications:
        session.add(_to_row(n))
        ids.append(n.id)
    return ids


def told_firing(session: Any, sink: str, group_key: str, signal: str) -> bool:
    """Whether `sink` was told (or will be) that the group x signal's alert fires and not yet that it ended: its
    latest live firing or resolving row of it is a firing one, or its newest such row is a firing message given up
    on (re-sent: to Alertmanager at its re-sends, `Outbox.firing`; to a push receiver once more,
    `Outbox.resend_given_up_firing`)."""
    q = (select(NotificationRow)
         .where(NotificationRow.sink == sink, NotificationRow.group_key == group_key, NotificationRow.signal == signal,
                col(NotificationRow.kind).in_(_STATE_KINDS))
         .order_by(col(NotificationRow.created_at).desc(), col(NotificationRow.id).desc()).limit(1))
    newest = session.exec(q).first()
    if newest is not None and given_up_firing(newest):
        return True
    live = session.exec(q.where(col(NotificationRow.status) != DEAD)).first()
    return live is not None and live.kind in FIRING


def alert_key(r: Any) -> Key:
    """The alert a notification or row is of: (sink, group, signal), the cooldown memory's key too."""
    return (r.sink, r.group_key, r.signal)


class Outbox(Upkeep, Resending, Asking):
    """Repository over the notifications table (SQLite or PostgreSQL); every method is one short transaction."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def add(self, notifications: Iterable[Notification]) -> list[str]:
        """Enqueue notifications in a transaction of their own."""
        with Session(self.engine) as s:
            ids = enqueue(s, notifications)
            s.commit()
            return ids

    @staticmethod
    def _oldest_waiting(row: Any) -> Any:
        """A clause: `row` (a waiting row) is the oldest waiting row of its sink x group x signal.

        The oldest is the first entry of the alert's range in the partial index of waiting rows (0009): one seek,
        however long the alert's delivered history; asked as "no older waiting row exists", SQLite walked that
        history in the alert index (which does not hold the status) to find the waiting rows among it."""
        older = aliased(NotificationRow)
        return col(row.id) == (sa_select(col(older.id))
                               .where(_waiting(older), col(older.sink) == col(row.sink),
                                      col(older.group_key) == col(row.group_key), col(older.signal) == col(row.signal))
                               .order_by(col(older.created_at), col(older.id)).limit(1).scalar_subquery())

    @retry_disconnect
    def claim(self, now: datetime, limit: int = 50, *, lease: float = 60.0,
              sink: str | None = None) -> tuple[list[Notification], datetime | None]:
        """Claim up to `limit` notifications due at `now` (of one `sink` if given), leasing them for `lease` s; and
        when nothing is due, when the next waiting row falls due (None: none waits), read in the same transaction:
        a sender with nothing to do sleeps until then instead of asking again and again.

        Per sink x group x signal only the oldest waiting notification is handed out, so a resolve never
        overtakes the firing message it ends.
        """
        until = now + timedelta(seconds=lease)
        # The oldest-waiting filter is in the query, before the limit: younger rows of a group whose oldest row
        # is backing off may fall due first, and filtered afterwards they would fill every batch and block the sink.
        with Session(self.engine) as s:
            q = (select(NotificationRow)
                 .where(_waiting(NotificationRow), col(NotificationRow.next_attempt_at) <= now,
                        self._oldest_waiting(NotificationRow)))
            if sink is not None:
                q = q.where(NotificationRow.sink == sink)
            q = (q.order_by(col(NotificationRow.next_attempt_at), col(NotificationRow.created_at),
                            col(NotificationRow.id)).limit(limit))
            if self.engine.dialect.name == "postgresql":
                q = q.with_for_update(of=NotificationRow, skip_locked=True)
            rows = list(s.exec(q).all())
            if not rows:
                nxt = select(func.min(NotificationRow.next_attempt_at)).where(
                    _waiting(NotificationRow), self._oldest_waiting(NotificationRow))
                if sink is not None:
                    nxt = nxt.where(NotificationRow.sink == sink)
                return [], aware(s.exec(nxt).one())
            # One statement leases them all (it was one per row), each only if no other claim leased it since it was
            # read (a lease moves next_attempt_at past `now`); not synchronised with the session (SQLAlchemy would
            # test the criteria on every row loaded): the claimed copies get the lease below.
            leased = self._lease(s, [r.id for r in rows], now, until)
            claimed: list[Notification] = []
            for r in rows:
                if r.id in leased:
                    n = _from_row(r)
                    n.next_attempt_at = until
                    claimed.append(n)
            s.commit()
            return claimed, None

    def _lease(self, s: Session, ids: list[str], now: datetime, until: datetime) -> set[str]:
        """Lease the rows of `ids` still waiting and due at `now` until `until`; return those leased. One UPDATE ...
        RETURNING; a SQLite before 3.35 (Python 3.11 on RHEL 9 links 3.34) has no RETURNING: one UPDATE a row."""
        leasable = (col(NotificationRow.status).in_(WAITING), col(NotificationRow.next_attempt_at) <= now)
        if self.engine.dialect.update_returning:
            return set(s.execute(update(NotificationRow).where(col(NotificationRow.id).in_(ids), *leasable)
                                 .values(next_attempt_at=until).returning(col(NotificationRow.id))
                                 .execution_options(synchronize_session=False)).scalars())
        conn = s.connection()  # Core: nothing of the session to synchronise
        return {rid for rid in ids if conn.execute(update(NotificationRow).where(col(NotificationRow.id) == rid,
                                                                                  *leasable)
                                                   .values(next_attempt_at=until)).rowcount}

    @retry_disconnect
    def release(self, claimed: Iterable[Notification], now: datetime) -> int:
        """Give back rows claimed by :meth:`claim` but not attempted (due again at `now`, not at their lease's end),
        unless another claim or an attempt changed them since; return how many. One UPDATE for the batch, matching
        each row by its id and its lease (one UPDATE a row cost a round trip each): on PostgreSQL joined with the
        two arrays unnested (a row-value IN list is a chain of ORs each row is tested against, twice as slow at
        1,000 rows), on SQLite by row values, up to RELEASE_BATCH rows a statement."""
        pairs = [(n.id, n.next_attempt_at) for n in claimed]
        if not pairs:
            return 0
        with Session(self.engine) as s:
            conn = s.connection()  # Core: nothing of the session to synchronise
            if conn.dialect.name == "postgresql":
                released = conn.execute(_RELEASE_PG, {"now": now, "ids": [rid for rid, _ in pairs],
                                                      "leases": [lease for _, lease in pairs]}).rowcount
            else:
                released = sum(conn.execute(update(NotificationRow).where(
                    tuple_(col(NotificationRow.id), col(NotificationRow.next_attempt_at)).in_(
                        pairs[i:i + RELEASE_BATCH]),
                    col(NotificationRow.status).in_(WAITING)).values(next_attempt_at=now)).rowcount
                    for i in range(0, len(pairs), RELEASE_BATCH))
            s.commit()
        return int(released or 0)

    def siblings(self, n: Notification, *, any_signal: bool = False) -> list[Notification]:
        """Return the other waiting rows of `n`'s sink x group x signal (any signal of the group if `any_signal`)
        and kind, oldest first, then by signal (to merge)."""
        with Session(self.engine) as s:
            q = (select(NotificationRow)
                 .where(NotificationRow.sink == n.sink, NotificationRow.group_key == n.group_key,
                        NotificationRow.kind == n.kind, NotificationRow.id != n.id, _waiting(NotificationRow)))
            if not any_signal:
                q = q.where(NotificationRow.signal == n.signal)
            else:
                # Only a signal's oldest waiting row joins: a later one waits behind that signal's older rows (a
                # resolve), and merged ahead of them the receiver's last word would be "resolved" while it is open.
                q = q.where(NotificationRow.signal != n.signal, self._oldest_waiting(NotificationRow))
            q = q.order_by(col(NotificationRow.created_at), col(NotificationRow.signal), col(NotificationRow.id))
            return [_from_row(r) for r in s.exec(q).all()]

    @retry_disconnect
    def defer(self, rows: Iterable[Notification], until: datetime, note: str | None = None) -> None:
        """Make `rows` wait until `until`, no attempt counted (rows that join their group's retry, or re-sent on request
        while their sink is disabled: monitor.alerts.delivery), their last error `note` if given, each only if still
        waiting with the next attempt it was read with (a claim or an attempt since changed it: left alone)."""
        values: dict[str, Any] = {"next_attempt_at": until}
        if note is not None:
            values["last_error"] = note[:2000]
        with Session(self.engine) as s:
            for n in rows:
                s.exec(update(NotificationRow).where(  # type: ignore[call-overload]
                    col(NotificationRow.id) == n.id, _waiting(NotificationRow),
                    col(NotificationRow.next_attempt_at) == n.next_attempt_at).values(**values))
            s.commit()

    @retry_disconnect
    def _set(self, nid: str | Sequence[str], *, attempted: bool = True, **values: Any) -> None:
        """Set `values` on the row `nid`, or on each of several in one statement (a grouped message's rows)."""
        if attempted:
            values["attempts"] = NotificationRow.attempts + 1
        ids = (nid,) if isinstance(nid, str) else tuple(nid)
        with Session(self.engine) as s:
            s.exec(update(NotificationRow).where(col(NotificationRow.id).in_(ids))  # type: ignore[call-overload]
                   .values(**values))
            s.commit()

    def mark_delivered(self, nid: str | Sequence[str], now: datetime) -> None:
        """Record a successful delivery of one row, or of a grouped message's rows in one statement (marked one by one,
        a store failing between them left the rest waiting, sent again alone under another message id); a failed
        attempt's error goes, a released row's note on its hold stays."""
        note = col(NotificationRow.last_error)
        self._set(nid, status=DELIVERED, delivered_at=now,
                  last_error=case((note.startswith(RELEASED_NOTE), note), else_=None))

    def mark_retry(self, nid: str | Sequence[str], next_at: datetime, error: str | Mapping[str, str]) -> None:
        """Record a failed attempt (of one row, or of a grouped message's rows) and when to try again; a row an outage held while the attempt was on the wire
        stays held (with why), else the retry would send it while the outage is paged as canary.down. `error`: the
        rows', or each row's by id (a row re-sent on request keeps its own first attempt's time: asked_window)."""
        held = col(NotificationRow.status) == HELD
        written: Any = error[:2000] if isinstance(error, str) else \
            case({i: e[:2000] for i, e in error.items()}, value=col(NotificationRow.id))
        self._set(nid, status=case((held, HELD), else_=FAILED), next_attempt_at=next_at,
                  last_error=case((held, col(NotificationRow.last_error)), else_=written))

    def mark_dead(self, nid: str | Sequence[str], error: str, *, attempted: bool = True,
                  not_before: datetime | None = None, sent_as: str | None = None) -> None:
        """Give up on a notification, or a grouped message's rows (endpoint gone, too old, sink no longer configured); `not_before`: a firing
        message given up on is not re-sent before then; `sent_as`: the grouped message's id (`alerts resend` sends its
        rows again together, under it), None for a row given up on alone."""
        values = {} if not_before is None else {"next_attempt_at": not_before}
        self._set(nid, attempted=attempted, status=DEAD, last_error=error[:2000], sent_as=sent_as, **values)

    def drop_unconfigured(self, configured: Iterable[str], error: str, created_before: datetime) -> dict[str, int]:
        """Mark waiting rows of sinks not in `configured` made before `created_before` dead; return how many per
        sink."""
        names = tuple(configured)
        with Session(self.engine) as s:
            q = (sa_select(col(NotificationRow.id), col(NotificationRow.sink))
                 .where(col(NotificationRow.status).in_((*WAITING, HELD)), col(NotificationRow.sink).not_in(names),
                        col(NotificationRow.created_at) < created_before))
            rows = s.execute(q).all()
            out: dict[str, int] = {}
            for rid, sink in rows:
                res = s.exec(update(NotificationRow).where(  # type: ignore[call-overload]
                    and_(col(NotificationRow.id) == rid, col(NotificationRow.status).in_((*WAITING, HELD))))
                    .values(status=DEAD, last_error=error[:2000]))
                if res.rowcount == 1:
                    out[sink] = out.get(sink, 0) + 1
            s.commit()
            return out

    def get(self, nid: str) -> Notification | None:
        with Session(self.engine) as s:
            row = s.get(NotificationRow, nid)
            return _from_row(row) if row else None

    def pending_count(self) -> int:
        """Return how many notifications still wait for delivery."""
        with Session(self.engine) as s:
            q = select(func.count()).select_from(NotificationRow).where(col(NotificationRow.status).in_(WAITING))
            return int(s.exec(q).one())

    def pending_by_sink(self) -> dict[str, int]:
        """Return how many notifications still wait for delivery, per sink (sinks with none are left out)."""
        with Session(self.engine) as s:
            q = (sa_select(col(NotificationRow.sink), func.count()).where(col(NotificationRow.status).in_(WAITING))
                 .group_by(col(NotificationRow.sink)))
            return {sink: int(n) for sink, n in s.execute(q).all()}

    def counts(self) -> dict[str, int]:
        """Return how many notifications are in each status."""
        with Session(self.engine) as s:
            q = sa_select(col(NotificationRow.status), func.count()).group_by(col(NotificationRow.status))
            return {status: int(n) for status, n in s.execute(q).all()}

    def list_pending(self, limit: int = 100) -> list[Notification]:
        """Return waiting notifications, next due first."""
        return self.query(statuses=WAITING, limit=limit)

    def query(self, *, statuses: Iterable[str] | None = None, sink: str | None = None,
             limit: int = 100) -> list[Notification]:
        """Return notifications, filtered by status and sink, oldest attempt time first."""
        with Session(self.engine) as s:
            q = select(NotificationRow)
            if statuses is not None:
                q = q.where(col(NotificationRow.status).in_(tuple(statuses)))
            if sink is not None:
                q = q.where(NotificationRow.sink == sink)
            q = q.order_by(col(NotificationRow.next_attempt_at), col(NotificationRow.created_at)).limit(limit)
            return [_from_row(r) for r in s.exec(q).all()]

    def waits_behind(self, rows: Iterable[Notification]) -> dict[str, str]:
        """For each waiting row of `rows` that is not its sink x group x signal's oldest waiting row, the message id
        of that oldest one: `claim` hands out only the oldest, so the row waits for it however due it is."""
        waiting = [n for n in rows if n.status in WAITING]
        keys = list({alert_key(n) for n in waiting})
        if not keys:
            return {}
        key = tuple_(col(NotificationRow.sink), col(NotificationRow.group_key), col(NotificationRow.signal))
        oldest: dict[Key, NotificationRow] = {}
        with Session(self.engine) as s:
            # PostgreSQL plans a row IN list as ORs: in seconds at 5,000 alerts, refused at 20,000 (`--limit`)
            for i in range(0, len(keys), WAITS_BEHIND_BATCH):
                oldest |= {alert_key(r): r for r in s.exec(select(NotificationRow).where(
                    _waiting(NotificationRow), key.in_(keys[i:i + WAITS_BEHIND_BATCH]),
                    self._oldest_waiting(NotificationRow))).all()}
        return {n.id: oldest[alert_key(n)].message_id for n in waiting
                if alert_key(n) in oldest and oldest[alert_key(n)].id != n.id}

    def _latest_states(self, sink: str | None = None) -> list[NotificationRow]:
        """Return the latest live (not dead) firing or resolving row per sink x group x signal, in the order of each
        one's oldest live such row; read per alert, not over the outbox's history."""
        with Session(self.engine) as s:
            return latest_rows(s, _STATE_KINDS, DEAD, sink)

    def firing(self, sink: str) -> list[Notification]:
        """Return the alerts a sink was told are firing and not yet told are resolved (latest per key), but for those
        whose resolve was given up on: they ended all the same; and with those whose firing message was given up on
        and not followed by an end (`given_up_firing`). Alertmanager re-sends what this returns (`refresh`): a
        resolve given up on (Alertmanager down past `retry.give_up_after`) had the alert re-sent as firing once it
        was back, active there for as long as the rows were kept; left out, it ends at its last endsAt. A firing
        message given up on is re-sent there as Alertmanager expects of a client, at each re-send, not at a reload."""
        with Session(self.engine) as s:
            live = latest_rows(s, _STATE_KINDS, DEAD, sink)
            newest = latest_rows(s, _STATE_KINDS, "", sink)
        ended = {alert_key(r) for r in newest if r.kind in RESOLVING}
        given_up = {alert_key(r): r for r in newest if given_up_firing(r)}
        told = [r for r in live if r.kind in FIRING and r.status == DELIVERED and alert_key(r) not in ended
                and alert_key(r) not in given_up]
        return [_from_row(r) for r in (*told, *given_up.values())]

    @staticmethod
    def _ended(s: Session, sink: str | None = None) -> set[Key]:
        """The alerts whose newest firing or resolving row, dead ones too, is a resolve."""
        return {alert_key(r) for r in latest_rows(s, _STATE_KINDS, "", sink) if r.kind in RESOLVING}

    def resolved_last(self) -> set[Key]:
        """Return the alerts whose newest firing or resolving row, dead ones too, is a resolve. Of the alerts
        `open_alerts` returns (the latest live row a firing one), those are the ones whose resolve was given up on: a
        sink that is re-sent what fires (`firing`) has ended them."""
        with Session(self.engine) as s:
            return self._ended(s)

    @retry_disconnect
    def retry_given_up_ends(self, sink: str, now: datetime) -> list[str]:
        """Make the ends given up on at `sink` that are still their alert's last word due again at `now`, for one
        more try (their give-up time long past, a failure gives them up again, for good); return their ids. Read per
        alert, as `latest_states`."""
        with Session(self.engine) as s:
            rows = [r for r in latest_rows(s, _STATE_KINDS, "", sink)
                    if r.kind in RESOLVING and given_up(r)]
            ids = []
            for r in rows:
                res = s.exec(update(NotificationRow).where(  # type: ignore[call-overload]
                    and_(col(NotificationRow.id) == r.id, col(NotificationRow.status) == DEAD))
                    # as `resend_given_up_firing`: the daemon's own re-send, not an operator's (asked_at cleared)
                    .values(status=PENDING, next_attempt_at=now, sent_as=None, asked_at=None,
                            last_error=f"{RETRIED_END_NOTE} the sink takes messages again ({r.last_error})"[:2000]))
                if res.rowcount == 1:
                    ids.append(r.id)
            s.commit()
            return ids

    def newest_states(self) -> list[Notification]:
        """Return, per sink x group x signal, the newest firing or resolving message, dead ones too (in the order of
        each one's oldest such row): an alert's last word, sent, waiting or given up on."""
        with Session(self.engine) as s:
            return [_from_row(r) for r in latest_rows(s, _STATE_KINDS, "")]

    def latest_states(self) -> list[Notification]:
        """Return, per sink x group x signal, the latest live firing or resolving message (oldest first)."""
        return sorted((_from_row(r) for r in self._latest_states()), key=lambda n: (n.created_at, n.id))

    def open_alerts(self) -> list[Notification]:
        """Return, per sink x group x signal, the firing message not yet followed by a resolve (sent or not)."""
        return [_from_row(r) for r in self._latest_states() if r.kind in FIRING]

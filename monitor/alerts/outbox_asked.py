"""Notifications given up on (dead), made due again on an operator's word (`llm-monitor alerts resend`).

A receiver down past `retry.give_up_after`, or a sink disabled by a 410 whose URL was then fixed, leaves rows dead
that the daemon sends again only in a few cases (monitor.alerts.outbox_resend). Here an operator names rows (by
message id or row id, a row of a grouped message bringing the others given up on with it: `sent_as`) or a sink, and
each dead one goes back to pending, due now, its history kept (attempts, created time, so its place in its alert's
order), its `retry.give_up_after` counted from its first attempt after the request (`asked_at` keeps the request's time;
monitor.alerts.asked_window: counted from its created time, a re-send that failed once more was given up on at once,
and from the request, so was one that waited for a reload or a start more than the window later) and its old error noted after `ASKED_NOTE`: the running daemon's
sender claims it at its next poll, a stopped one at its start. Nothing is deleted, and each row goes from dead to
pending in one compare-and-set (its status and error as read, and for a firing or resolving row no later message of
its alert): two operators, or the daemon's own re-send, make it due once. Not re-sent: a row not dead, a held row
ended unsent on purpose (`NOT_SENT`: its outage was paged as canary.down), and a firing or resolving message that a
later message of its alert followed (sent now, a page after its end would reopen the receiver's incident for good).

`Asking` is a part of monitor.alerts.outbox.Outbox.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, or_, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from monitor.alerts.events import ASKED_NOTE, DEAD, FIRING, NOT_SENT, PENDING, RESOLVING
from monitor.alerts.outbox_resend import written_after
from monitor.store.engine import retry_disconnect
from monitor.store.outbox_table import NotificationRow

_STATE_KINDS = FIRING | RESOLVING
OUTDATED = "a later message of its alert was written (sent now, it would tell the receiver an outdated state)"
CHANGED = "changed while being re-sent (look again)"


@dataclass(frozen=True)
class Asked:
    """One row an operator asked to re-send: `skipped` says why it was not (None: it waits for delivery again)."""

    notification: Any  # monitor.alerts.events.Notification, as read before the update
    skipped: str | None = None


class Asking:
    """The part of `Outbox` that makes rows given up on due again on an operator's word."""

    engine: Engine

    @retry_disconnect
    def _asked_rows(self, ids: Sequence[str] | None, sink: str | None) -> list[NotificationRow]:
        """The rows of `ids` (message ids or row ids, or a grouped message's id), any status, and the other dead rows
        of the grouped messages they were given up on in (`sent_as`: that message goes out again whole, under its id,
        not one row alone under another); without ids, the dead rows; of `sink` if given; oldest first."""
        r = NotificationRow
        with Session(self.engine) as s:
            q = select(r)
            if ids:
                named = tuple(ids)
                q = q.where(or_(col(r.id).in_(named), col(r.message_id).in_(named), col(r.sent_as).in_(named)))
            else:
                q = q.where(col(r.status) == DEAD)
            if sink is not None:
                q = q.where(col(r.sink) == sink)
            rows = list(s.exec(q.order_by(col(r.created_at), col(r.id))).all())
            if groups := {row.sent_as for row in rows if row.sent_as and row.status == DEAD}:
                seen = {row.id for row in rows}
                more = s.exec(select(r).where(col(r.sent_as).in_(tuple(groups)), col(r.status) == DEAD))
                rows += [row for row in more.all() if row.id not in seen]
                rows.sort(key=lambda row: (row.created_at, row.id))  # one store: all naive or all aware
            s.expunge_all()
            return rows

    @retry_disconnect
    def _resend_rows(self, rows: Sequence[NotificationRow], now: datetime,
                     configured: Collection[str] | None = None) -> list[Asked]:
        """Make each of `rows` still as read due at `now` (only a row of a sink in `configured`, if given); say of each
        whether it was, and if not why."""
        from monitor.alerts.outbox import _from_row

        r = NotificationRow
        out = []
        with Session(self.engine) as s:
            for row in rows:
                why = self._why_not(s, row, configured)
                if why is None:
                    same = [col(r.id) == row.id, col(r.status) == DEAD,
                            col(r.last_error).is_not_distinct_from(row.last_error)]
                    if row.kind in _STATE_KINDS:
                        same.append(~written_after(row))
                    # its give_up_after counts from its first attempt since now (asked_at), its created time kept
                    res = s.exec(update(r).where(and_(*same)).values(  # type: ignore[call-overload]
                        status=PENDING, next_attempt_at=now, asked_at=now, sent_as=None,
                        last_error=f"{ASKED_NOTE} ({row.last_error})"[:2000]))
                    why = None if res.rowcount == 1 else CHANGED
                out.append(Asked(_from_row(row), why))
            s.commit()
        return out

    @staticmethod
    def _why_not(s: Session, row: NotificationRow, configured: Collection[str] | None) -> str | None:
        """Why `row` is not re-sent, or None."""
        if row.status != DEAD:
            return f"not given up on ({row.status})"
        if configured is not None and row.sink not in configured:  # the daemon would give it up again
            return f"its sink {row.sink!r} is not configured"
        if (row.last_error or "").startswith(NOT_SENT):
            return f"never sent on purpose ({row.last_error})"
        if row.kind in _STATE_KINDS and s.execute(sa_select(written_after(row))).scalar():
            return OUTDATED
        return None

    def resend_dead(self, now: datetime, *, ids: Sequence[str] | None = None, sink: str | None = None,
                    configured: Collection[str] | None = None) -> list[Asked]:
        """Make the rows given up on that `ids` (message ids or row ids, each with the rest of the grouped message it
        was given up on in; or a grouped message's id) name, or every one of `sink`, due again at `now` (only those of a sink in `configured`, if given); return each row looked at, with why it was not re-sent
        if it was not (oldest first)."""
        return self._resend_rows(self._asked_rows(ids, sink), now, configured)

"""A firing message given up on at a push receiver (webhook, Slack, PagerDuty), sent again while its alert fires.

Alertmanager gets a firing message given up on past `retry.give_up_after` at its re-sends (`Outbox.firing`). A push
receiver has no re-sends: once given up on, it heard nothing of the outage until the pair recovered. Here such a
message, still its alert's last word at the sink, is made due once more (`resend_given_up_firing`) when the receiver
takes a message again or at the sink's periodic look, marked as a re-send (``resent: true`` in the payload, the same
message id: a receiver that had it after all drops it). The store decides, so a restart or another replica sends it
once: the row goes from dead to pending in one compare-and-set. A re-send that fails goes back to given up on (it was
counted as dropped once): while the receiver takes nothing (down), to be sent at the next look, one attempt a
`resend_interval`; while it takes other messages (it refuses this one, a 503 or 429 to it alone: a rate limit, or for
good), a `resend_interval` later, `RESEND_REFUSALS` times in all, then not again (`RESENT_REFUSED`): such a message
was re-sent at each delivery and look while its alert fired.

`Resending` is a part of monitor.alerts.outbox.Outbox.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, case, func, or_, update
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from monitor.alerts.events import (
    DEAD,
    FIRING,
    GAVE_UP_NOTE,
    HELD,
    NOT_SENT,
    PENDING,
    RESEND_REFUSED_NOTE,
    RESENT_NOTE,
    RESENT_REFUSED,
    RESOLVING,
    Notification,
)
from monitor.alerts.held_rows import HELD_SIGNALS
from monitor.health import UP_AFTER_RUNS
from monitor.store.convert import aware, storable
from monitor.store.engine import retry_disconnect
from monitor.store.outbox_latest import latest_rows
from monitor.store.outbox_table import NotificationRow
from monitor.store.tables import ObservationRow

_STATE_KINDS = tuple(FIRING | RESOLVING)


def given_up(r: Any) -> bool:
    """Whether a row (or notification) was given up on past `retry.give_up_after` (not dead for another reason: a
    410, a sink removed, a held row ended unsent)."""
    return r.status == DEAD and (r.last_error or "").startswith(GAVE_UP_NOTE)


def given_up_firing(r: Any) -> bool:
    """Whether a row (or notification) is a firing message given up on past `retry.give_up_after`: the receiver
    may not have it, and no end was written after it (when it is its alert's newest row) -- a decision made, not
    a page to write again at each reload; Alertmanager gets it at its re-sends, a push receiver once more
    (`Resending.resend_given_up_firing`)."""
    return r.kind in FIRING and given_up(r)


def resent_before(r: Any) -> bool:
    """Whether a row's re-send was refused `RESEND_REFUSALS` times while its receiver took other messages: not re-sent
    again."""
    return RESENT_REFUSED in (r.last_error or "")


_REFUSED = re.compile(re.escape(RESEND_REFUSED_NOTE).replace(r"\{\}", r"(\d+)", 1).replace(r"\{\}", r"\d+"))


def refusals(n: Any) -> int:
    """How many times `n`'s re-sends were refused while its receiver took other messages (noted in its last_error,
    which a re-send keeps inside its own)."""
    m = _REFUSED.search(n.last_error or "")
    return int(m.group(1)) if m else 0


def resending(n: Notification) -> bool:
    """Whether `n` is a firing message given up on and being sent again (`Resending.resend_given_up_firing`)."""
    return n.kind in FIRING and (n.last_error or "").startswith(RESENT_NOTE)


def _told_by_drift(s: Session, down: NotificationRow) -> bool:
    """Whether `down`'s sink has (or will have) the outage as drift instead: a drift opening of its pair written there
    at or after it, neither held nor ended unsent (the drift its give-up released, or opened unheld since). Sent
    again, the canary.down would be a second page for one outage."""
    r = NotificationRow
    q = (sa_select(col(r.id))
         .where(col(r.sink) == down.sink, col(r.group_key) == down.group_key, col(r.kind) == "drift.opened",
                col(r.created_at) >= down.created_at, col(r.status) != HELD,
                ~and_(col(r.status) == DEAD, col(r.last_error).startswith(NOT_SENT)))
         .limit(1))
    return s.execute(q).first() is not None


def _paged_down_since(s: Session, drift: NotificationRow) -> bool:
    """Whether `drift` (an error drift opening) was followed at its sink by its pair's page of an outage: a
    canary.down written there after it, sent or to be (waiting, or given up on: re-sent too). The outage holds
    such drift there (monitor.alerts.inhibit: one page per outage); sent again beside the page, it would be a second
    one. Not re-sent for good: its end says it never arrived (`firing_undelivered`)."""
    r = NotificationRow
    q = (sa_select(col(r.id))
         .where(col(r.sink) == drift.sink, col(r.group_key) == drift.group_key, col(r.kind) == "canary.down",
                col(r.created_at) > drift.created_at,  # written at once: `_told_by_drift` keeps the drift, not both
                or_(col(r.status) != DEAD, col(r.last_error).startswith(GAVE_UP_NOTE)))
         .limit(1))
    return s.execute(q).first() is not None


def _answers_now(s: Session, down: NotificationRow) -> bool:
    """Whether `down`'s pair answered its latest call: its outage may be over (the health watch writes its recovery
    after enough answered runs), so the page waits for a look that sees a failure. A canary.down given up on before a
    restart that then read the pair as not down, which recovered without a canary.recovered, is never re-sent."""
    p = down.payload or {}
    o = ObservationRow
    latest = s.execute(sa_select(col(o.error_type))
                       .where(col(o.canary) == str(p.get("canary", "")), col(o.target) == str(p.get("target", "")))
                       .order_by(col(o.started_at).desc()).limit(1)).first()
    return latest is not None and latest[0] is None


def _recovered_since(s: Session, down: NotificationRow) -> bool:
    """Whether `down`'s pair answered in each of its last `UP_AFTER_RUNS` runs, all after it: the health watch
    recovers a pair so, so its outage is over though no canary.recovered was written (a canary.down given up on before
    the release that re-sends them, its pair read then as not down at a restart). Not re-sent, nor looked for again:
    such a row kept its sink looking at each delivery."""
    p = down.payload or {}
    o = ObservationRow
    run = func.coalesce(func.nullif(col(o.run_id), ""), col(o.id))  # calls stored without a run id: one each
    answered = func.max(case((col(o.error_type).is_(None), 1), else_=0))
    runs = s.execute(sa_select(answered)
                     .where(col(o.canary) == str(p.get("canary", "")), col(o.target) == str(p.get("target", "")),
                            col(o.started_at) > down.created_at)
                     .group_by(run).order_by(func.max(col(o.started_at)).desc()).limit(UP_AFTER_RUNS)).all()
    return len(runs) == UP_AFTER_RUNS and all(a == 1 for (a,) in runs)


def written_after(r: NotificationRow) -> Any:
    """A clause: a firing or resolving row of `r`'s alert was written after `r` (an end, or a page anew). Asked in the
    compare-and-set itself: an end written (and delivered) between the look's read and its update, by another replica,
    would otherwise have the page sent after it, the receiver's incident open for good."""
    later = aliased(NotificationRow)
    return (sa_select(col(later.id))
            .where(col(later.sink) == r.sink, col(later.group_key) == r.group_key, col(later.signal) == r.signal,
                   col(later.kind).in_(_STATE_KINDS),
                   or_(col(later.created_at) > r.created_at,
                       and_(col(later.created_at) == r.created_at, col(later.id) > r.id)))
            .exists())


class Resending:
    """The part of `Outbox` that sends a push receiver the firing messages it was given up on."""

    engine: Engine

    @retry_disconnect
    def resend_given_up_firing(self, sink: str, now: datetime) -> tuple[list[str], bool]:
        """Make the firing messages given up on at `sink` that are still their alert's last word due again at `now`,
        marked as a re-send; return their ids, and whether others wait for a later look. Each only if still given up
        on (compare-and-set): two replicas, or a look racing a delivery, send it once. A canary.down whose outage the
        sink has as drift stays given up on; one whose pair answered its latest call waits for a look that sees it
        fail."""
        with Session(self.engine) as s:
            rows, later = [], False
            for r in latest_rows(s, _STATE_KINDS, "", sink):
                if not given_up_firing(r) or resent_before(r) or (r.kind == "canary.down" and _told_by_drift(s, r)):
                    continue
                if refusals(r) and r.next_attempt_at is not None and (aware(r.next_attempt_at) or now) > now:
                    later = True  # refused a moment ago while the receiver took others (a rate limit): not yet
                    continue
                if r.kind == "drift.opened" and r.signal in HELD_SIGNALS and _paged_down_since(s, r):
                    continue
                if r.kind == "canary.down" and _answers_now(s, r):
                    later = later or not _recovered_since(s, r)
                    continue
                rows.append(r)
            ids = []
            for r in rows:
                res = s.exec(update(NotificationRow).where(  # type: ignore[call-overload]
                    and_(col(NotificationRow.id) == r.id, col(NotificationRow.status) == DEAD,
                         col(NotificationRow.last_error) == r.last_error, ~written_after(r)))
                    # due again, it goes out in whatever message its group's waiting rows then make (`sent_as` cleared, as
                    # `alerts resend` does: set again only if this re-send is given up on, to the id it went out under;
                    # `asked_at` cleared: the daemon's own re-send, an old request's no more (no reload wait, no window
                    # counted from that request)
                    .values(status=PENDING, next_attempt_at=now, payload=storable({**(r.payload or {}), "resent": True}),
                            sent_as=None, asked_at=None, last_error=f"{RESENT_NOTE} its alert still fires ({r.last_error})"[:2000]))
                if res.rowcount == 1:
                    ids.append(r.id)
            s.commit()
            return ids, later

    def firing_undelivered(self, end: Notification) -> bool:
        """Whether the firing message an end ends at its sink was given up on and never delivered there (the receiver
        came back only after the alert ended): its newest firing row written before the end is one given up on."""
        r = NotificationRow
        with Session(self.engine) as s:
            row = s.execute(
                sa_select(col(r.kind), col(r.status), col(r.last_error))
                .where(col(r.sink) == end.sink, col(r.group_key) == end.group_key, col(r.signal) == end.signal,
                       col(r.kind).in_(tuple(FIRING)), col(r.created_at) <= end.created_at, col(r.id) != end.id)
                .order_by(col(r.created_at).desc(), col(r.id).desc()).limit(1)).first()
        return row is not None and given_up_firing(row)

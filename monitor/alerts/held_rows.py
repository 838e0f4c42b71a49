"""The outbox rows the inhibitor decides on (monitor.alerts.inhibit): what a sink was last told of a pair's health,
whether a drift opening's end is written, and the guarded write back of a row read as held."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select as sa_select
from sqlalchemy import update
from sqlalchemy.orm import aliased
from sqlmodel import col, select

from monitor.alerts.events import DEAD, GAVE_UP_NOTE, HELD, OUTAGE_MIX, Notification
from monitor.store.convert import aware
from monitor.store.outbox_table import NotificationRow

HEALTH_KINDS = ("canary.down", "canary.recovered")
HELD_SIGNALS = frozenset({"error", "error_type"})  # the drift signals an outage moves (monitor.alerts.inhibit)
ENDS = ("drift.resolved", "drift.accepted")
Pair = tuple[str, str]


def pair_of(n: Notification | NotificationRow) -> Pair:
    p = n.payload or {}
    return str(p.get("canary", "")), str(p.get("target", ""))


def latest_health(session: Any, sink: str, group_key: str) -> NotificationRow | None:
    """The group's latest live health row (canary.down / canary.recovered) at `sink`: what it was last told (or
    will be) of the canary's health."""
    q = (select(NotificationRow)
         .where(NotificationRow.sink == sink, NotificationRow.group_key == group_key,
                col(NotificationRow.kind).in_(HEALTH_KINDS), col(NotificationRow.status) != DEAD)
         .order_by(col(NotificationRow.created_at).desc(), col(NotificationRow.id).desc()).limit(1))
    return session.exec(q).first()


def given_up_at(session: Any, sink: str, group_key: str, *, re_sent: bool = False) -> bool:
    """Whether the group's latest health row at `sink`, dead ones too, is a canary.down given up on: it stands for
    nothing there (see `Inhibitor.given_up`), and the sink is as one no canary.down goes to. Not one given up on past
    `retry.give_up_after` at a sink `re_sent` what fires (Alertmanager): `Outbox.firing` re-sends it there."""
    q = (select(NotificationRow.kind, NotificationRow.status, NotificationRow.last_error)
         .where(NotificationRow.sink == sink, NotificationRow.group_key == group_key,
                col(NotificationRow.kind).in_(HEALTH_KINDS))
         .order_by(col(NotificationRow.created_at).desc(), col(NotificationRow.id).desc()).limit(1))
    kind, status, error = session.exec(q).first() or ("", "", None)
    return kind == "canary.down" and status == DEAD and not (re_sent and (error or "").startswith(GAVE_UP_NOTE))


def is_down(latest: NotificationRow | None) -> bool:
    return latest is not None and latest.kind == "canary.down"


def down_at(session: Any, sink: str, group_key: str) -> bool:
    """Whether `sink` was told (or will be) that the group's canary is down: its latest live health row says so."""
    return is_down(latest_health(session, sink, group_key))


def ended_after() -> Any:
    """An EXISTS clause: a live end (drift.resolved/accepted) of a NotificationRow's sink x group x signal written
    after it. Its opening is no longer held by a canary.down: the event ended before the outage, so the receiver is
    told both (held alone, the end would go out first and be the receiver's only word of the event)."""
    end = aliased(NotificationRow)
    return (sa_select(col(end.id))
            .where(col(end.kind).in_(ENDS), col(end.status) != DEAD, col(end.sink) == col(NotificationRow.sink),
                   col(end.group_key) == col(NotificationRow.group_key), col(end.signal) == col(NotificationRow.signal),
                   col(end.created_at) >= col(NotificationRow.created_at))
            .exists())


def recovered_after(latest: NotificationRow | None, row: NotificationRow) -> bool:
    """Whether the row's sink was told its pair recovered after the row was held: `latest`, the sink's latest
    health row of the pair (`latest_health`), is a canary.recovered newer than the row."""
    return latest is not None and latest.kind == "canary.recovered" and \
        (aware(latest.created_at) or latest.created_at) >= (aware(row.created_at) or row.created_at)


def _when(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return aware(value)
    try:
        return aware(datetime.fromisoformat(str(value))) if value else None
    except ValueError:
        return None


def outage_mix(session: Any, n: Notification) -> str | None:
    """Why an ``error_type`` opening is the outage's mix of failures, or None: its sink's latest health row of the
    pair is a canary.recovered, the failure type the event shows (its ``current_value``) is one the outage's
    canary.down or canary.recovered named (their ``error_types``), and the change was first seen (``first_obs_at``) before the recovery.
    The drift engine saw the outage's failures in its window (or learnt them), and the receiver was paged for them
    as canary.down already."""
    if n.signal != "error_type":
        return None
    latest = latest_health(session, n.sink, n.group_key)
    if latest is None or latest.kind != "canary.recovered":
        return None
    down = session.exec(
        select(NotificationRow)
        .where(NotificationRow.sink == n.sink, NotificationRow.group_key == n.group_key,
               NotificationRow.kind == "canary.down", col(NotificationRow.status) != DEAD,
               col(NotificationRow.created_at) <= latest.created_at)
        .order_by(col(NotificationRow.created_at).desc(), col(NotificationRow.id).desc()).limit(1)).first()
    if down is None:
        return None
    # The canary.down names the failures up to the page; the canary.recovered those of the whole outage the
    # daemon that sent it saw (a type that began after the page is named there only)
    types = {str(t) for row in (down, latest) for t in ((row.payload or {}).get("evidence") or {}).get("error_types")
             or []}
    ev = (n.payload or {}).get("evidence") or {}
    value, first = ev.get("current_value"), _when(ev.get("first_obs_at"))
    recovered = _when((latest.payload or {}).get("resolved_at")) or _when(latest.created_at)
    if value is None or str(value) not in types or first is None or recovered is None or first >= recovered:
        return None
    canary, target = pair_of(n)
    return (f"{canary}@{target} recovered; its error_type event, first seen during the outage, shows {value}, a "
            f"failure of its outage {OUTAGE_MIX}: ended unsent with the event")


def is_outage_mix(row: NotificationRow | Notification) -> bool:
    """Whether a held row waits as an outage's mix of failures (`outage_mix`)."""
    return OUTAGE_MIX in (row.last_error or "")


def why_held(row: NotificationRow | Notification, canary: str, target: str) -> str:
    """Why a held opening was held, as the reason its end gives when it is ended unsent."""
    if is_outage_mix(row):
        return f"as {canary}@{target}'s outage mix of failures, paged as its canary.down {OUTAGE_MIX}"
    return f"({canary}@{target} failing every call)"


def opening(session: Any, n: Notification) -> NotificationRow | None:
    """The latest stored drift.opened of an end's sink x group x signal (the one it ends)."""
    return session.exec(
        select(NotificationRow)
        .where(NotificationRow.sink == n.sink, NotificationRow.group_key == n.group_key,
               NotificationRow.signal == n.signal, NotificationRow.kind == "drift.opened")
        .order_by(col(NotificationRow.created_at).desc(), col(NotificationRow.id).desc())
        .limit(1)).first()


def still_held(session: Any, row: NotificationRow, **values: Any) -> bool:
    """Write `values` to a row read as held if it still is; return whether it was. Another process (`baseline
    accept` from the CLI, without this process's lock) may have ended it unsent since it was read: written back
    as pending, it would page an event whose end the receiver is never told."""
    res = session.exec(update(NotificationRow).where(  # type: ignore[call-overload]
        col(NotificationRow.id) == row.id, col(NotificationRow.status) == HELD).values(**values))
    return bool(res.rowcount)

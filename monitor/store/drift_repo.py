"""Drift events and baselines in the store; events and their notifications are written in one transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import Engine, and_, or_, update
from sqlmodel import Session, col, select

from monitor.domain import new_id, utcnow
from monitor.store.convert import aware, storable, where_equal
from monitor.store.drift_tables import BaselineRow, DriftEventRow
from monitor.store.engine import retry_disconnect

log = logging.getLogger("monitor.drift.store")
SessionHook = Callable[[Session, set[str]], None]  # the session and the ids of the events it writes


def _dt(value: str | None) -> datetime | None:
    return aware(datetime.fromisoformat(value)) if value else None


class EventKey(NamedTuple):
    """Where a drift event sits in the order `events` reads: by `opened_at`, newest first, then by `id` ascending
    among those opened in the same microsecond (ids are unique, so a page that ends inside a tie loses none of it)."""

    opened_at: datetime
    id: str

    @classmethod
    def of(cls, event: dict[str, Any]) -> EventKey:
        """The key of an event as `events` returns it (the engine's JSON)."""
        opened = _dt(event["opened_at"])
        assert opened is not None
        return cls(opened, str(event["id"]))


def _open_id(s: Session, data: dict[str, Any]) -> str | None:
    """The id of another open event stored for the same canary x target x signal as `data`, if any."""
    q = select(DriftEventRow.id).where(DriftEventRow.canary == data["canary"], DriftEventRow.target == data["target"],
                                       DriftEventRow.signal == data["signal"], DriftEventRow.state == "open",
                                       DriftEventRow.id != data["id"])
    return s.exec(q.limit(1)).first()


class DriftRepository:
    """Stores drift events (as the engine's JSON plus indexed keys) and the baseline history."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._refused: dict[str, str] = {}  # events not stored -> the open event that held their key

    def save_events(self, events: Sequence[dict[str, Any]], hook: SessionHook | None = None) -> set[str]:
        """Upsert events (DriftEvent.to_json() dicts) and return the ids written; `hook` adds rows (e.g.
        notifications) in the same transaction.

        An event stored as no longer open (accepted or resolved, e.g. by `baseline accept` in another process)
        is final: a change to it from a process that still holds it open is not written. A new open event whose
        canary x target x signal already has another open event is not written either (the store keeps one
        open event per key; two writers racing past this check meet the unique index, and the batch is retried).

        Rows are written in the order of their ids: two processes writing the same events (the daemon and
        `baseline accept`) then lock them in one order, and PostgreSQL never has to break a deadlock.
        """
        written: set[str] = set()
        with Session(self.engine) as s:
            for data in sorted(events, key=lambda d: str(d["id"])):
                row = s.get(DriftEventRow, data["id"])
                values = {"canary": data["canary"], "target": data["target"], "signal": data["signal"],
                          "kind": data["kind"], "state": data["state"], "opened_at": _dt(data["opened_at"]),
                          "resolved_at": _dt(data.get("resolved_at")), "accepted_at": _dt(data.get("accepted_at")),
                          "data": storable(data)}
                if row is None:
                    if data["id"] in self._refused:  # its later updates (and its resolution) are not stored either
                        continue
                    other = _open_id(s, data) if data["state"] == "open" else None
                    if other is not None:  # the store holds one open event per key (index ux_drift_one_open)
                        self._refused[data["id"]] = other
                        log.warning("drift event not stored: another open event holds its canary x target x "
                                    "signal", extra={"event": data["id"], "open_event": other, "canary": data["canary"],
                                                     "target": data["target"], "signal": data["signal"]})
                        continue
                    s.add(DriftEventRow(id=data["id"], **values))
                elif row.state != "open" or not s.execute(  # type: ignore[attr-defined]
                        update(DriftEventRow).where(col(DriftEventRow.id) == data["id"],
                                                    col(DriftEventRow.state) == "open").values(**values)).rowcount:
                    # closed, or closed since it was read (`baseline accept` committing in between: written as read,
                    # it came back open, the CLI's note lost, after its receivers were told "accepted")
                    continue
                written.add(data["id"])
            if hook is not None:
                hook(s, written)
            s.commit()
        return written

    def holder(self, event_id: str) -> str | None:
        """The open event whose canary x target x signal kept `event_id` from being stored, if one did."""
        return self._refused.get(event_id)

    def events(self, *, canary: str | list[str] | None = None, target: str | list[str] | None = None,
               state: str | None = None, limit: int | None = 500,
               after: EventKey | None = None) -> list[dict[str, Any]]:
        """Return stored events, newest first in a total order (see EventKey); with `after`, only those beyond
        that key (keyset paging: the next page); `limit=None` for all of them. A list of canaries or targets: the
        events of any of them."""
        with Session(self.engine) as s:
            q = where_equal(select(DriftEventRow), DriftEventRow, canary=canary, target=target, state=state)
            opened, ident = col(DriftEventRow.opened_at), col(DriftEventRow.id)
            if after is not None:
                at = after.opened_at.astimezone(UTC)  # SQLite compares the stored UTC text
                q = q.where(or_(opened < at, and_(opened == at, ident > after.id)))
            rows = s.exec(q.order_by(opened.desc(), ident).limit(limit)).all()
            return [dict(r.data) for r in rows]

    def ended(self, ids: Sequence[str]) -> set[str]:
        """Those of the events `ids` stored as no longer open (resolved or accepted)."""
        out: set[str] = set()
        with Session(self.engine) as s:
            for i in range(0, len(ids), 500):
                out |= set(s.exec(select(DriftEventRow.id).where(col(DriftEventRow.id).in_(ids[i:i + 500]),
                                                                 DriftEventRow.state != "open")).all())
        return out

    def names(self) -> tuple[set[str], set[str]]:
        """The canaries and the targets of the stored events."""
        with Session(self.engine) as s:
            return (set(s.exec(select(DriftEventRow.canary).distinct()).all()),
                    set(s.exec(select(DriftEventRow.target).distinct()).all()))

    def pairs(self, canary: str | None = None) -> set[tuple[str, str]]:
        """The canary x target pairs (only `canary`'s, if given) of the stored events and baselines, whatever their
        state: what the `baseline` commands reach of a pair the configuration no longer has."""
        with Session(self.engine) as s:
            found: set[tuple[str, str]] = set()
            for table in (DriftEventRow, BaselineRow):
                q = select(table.canary, table.target).distinct()
                found.update(s.exec(q if canary is None else q.where(table.canary == canary)).all())
            return found

    def event(self, event_id: str) -> dict[str, Any] | None:
        with Session(self.engine) as s:
            row = s.get(DriftEventRow, event_id)
            return dict(row.data) if row else None

    def save_baseline(self, canary: str, target: str, data: dict[str, Any], *, source: str, note: str = "",
                      now: datetime | None = None) -> str:
        """Record a new active baseline for the pair (older ones stay as history)."""
        bid = new_id()
        with Session(self.engine) as s:
            s.exec(update(BaselineRow).where(col(BaselineRow.canary) == canary, col(BaselineRow.target) == target)  # type: ignore[call-overload]
                   .values(active=False))
            s.add(BaselineRow(id=bid, canary=canary, target=target, created_at=now or utcnow(), source=source,
                              note=note, active=True, data=storable(data)))
            s.commit()
        return bid

    @retry_disconnect
    def update_baseline(self, baseline_id: str, data: dict[str, Any]) -> bool:
        """Replace one stored baseline's data (its reference grew); False if the row is gone. By id, never "the
        active one": a baseline accepted meanwhile in another process is not overwritten."""
        with Session(self.engine) as s:
            n = s.exec(update(BaselineRow).where(col(BaselineRow.id) == baseline_id)  # type: ignore[call-overload]
                       .values(data=storable(data))).rowcount
            s.commit()
            return bool(n)

    def active_baseline_id(self, canary: str, target: str) -> str | None:
        """The id of the pair's baseline in force (its data not read: a cheap look for one another process stored)."""
        with Session(self.engine) as s:
            q = select(BaselineRow.id).where(col(BaselineRow.canary) == canary, col(BaselineRow.target) == target,
                                             col(BaselineRow.active).is_(True))
            return s.exec(q.order_by(col(BaselineRow.created_at).desc()).limit(1)).first()

    def baselines(self, *, canary: str | None = None, target: str | None = None,
                  active_only: bool = True) -> list[dict[str, Any]]:
        """Return baselines with their metadata: {canary, target, created_at, source, note, active, data}."""
        with Session(self.engine) as s:
            q = where_equal(select(BaselineRow), BaselineRow, canary=canary, target=target)
            if active_only:
                q = q.where(col(BaselineRow.active).is_(True))
            rows = s.exec(q.order_by(col(BaselineRow.created_at).desc())).all()
            return [{"id": r.id, "canary": r.canary, "target": r.target, "created_at": aware(r.created_at), "source": r.source,
                     "note": r.note, "active": r.active, "data": dict(r.data)} for r in rows]

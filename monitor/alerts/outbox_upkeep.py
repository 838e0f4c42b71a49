"""The outbox's reads and writes over its history: the cooldown memory read back (`last_firing`), the canary health
rows an older release wrote moved (`adopt_legacy_health`), and the hourly prune.

`last_firing` and the prune read every row (the prune, every delivered one), 90 days of them by default, at each
start, resync and hour; now they read their window by creation time (the index 0010 built).

`Upkeep` is a part of monitor.alerts.outbox.Outbox.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, or_, update
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from monitor.alerts.events import DEAD, DELIVERED, FIRING, NOT_SENT, ONE_SHOT, RESOLVING, WAITING
from monitor.store.convert import aware
from monitor.store.engine import unbounded
from monitor.store.outbox_table import NotificationRow

_STATE_KINDS = tuple(FIRING | RESOLVING)
_TERMINAL = (DELIVERED, DEAD)
_HEALTH_KINDS = ("canary.down", "canary.recovered")
Key = tuple[str, str, str]


def _health_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """A canary health payload an older release wrote, saying signal "health" where it said "error"."""
    out = dict(payload)
    if out.get("signal") == "error":
        out["signal"] = "health"
    evidence = out.get("evidence")
    if isinstance(evidence, dict) and evidence.get("signal") == "error":
        out["evidence"] = {**evidence, "signal": "health"}
    return out


class Upkeep:
    """The part of `Outbox` over its history."""

    engine: Engine

    def adopt_legacy_health(self) -> int:
        """Move canary.down/recovered rows written under signal "error" to "health"; return how many moved.

        Migration 0005 moved the rows written before it; this catches those an older release wrote after it (a
        rolling update: the old leader runs on until it is stopped, on the schema the new replica upgraded, or a
        newer `probe` upgraded it under a running daemon). Left there, the recovery (signal "health") would not
        end them: Alertmanager would get the canary down re-sent for ever. The payloads of those still to be sent
        (a webhook's `data`) say "health" too, as the recovery's will; delivered ones stay as they were sent.

        One UPDATE over the rows, once a start: walking the alerts to update those of signal "error" alone (as
        `latest_states` walks them) cost more up to 100,000 rows on PostgreSQL (60 ms against 19; benchmarks/README)."""
        health = col(NotificationRow.kind).in_(_HEALTH_KINDS)
        with Session(self.engine) as s:
            moved = s.exec(update(NotificationRow).where(  # type: ignore[call-overload]
                col(NotificationRow.signal) == "error", health).values(signal="health")).rowcount
            for row in s.exec(select(NotificationRow).where(health, col(NotificationRow.status).in_(WAITING))):
                payload = _health_payload(row.payload or {})
                if payload != row.payload:
                    row.payload = payload
                    s.add(row)
            s.commit()
            return int(moved or 0)

    def last_firing(self, since: datetime) -> dict[Key, tuple[datetime, bool, bool]]:
        """Return (sink, group, signal) -> (last firing message time, still open, resolve sent) since `since` (rows
        an outage held and ended unsent left out: never told). Reads the rows since `since` alone, by creation time
        (the index 0010 built; it read every row)."""
        kinds = tuple((FIRING | ONE_SHOT | RESOLVING) - {"test"})
        out: dict[Key, tuple[datetime, bool, bool]] = {}
        with Session(self.engine) as s:
            cols = (NotificationRow.sink, NotificationRow.group_key, NotificationRow.signal, NotificationRow.kind,
                    NotificationRow.created_at, NotificationRow.status, NotificationRow.last_error)
            q = (sa_select(*(col(c) for c in cols))
                 .where(col(NotificationRow.created_at) >= since, col(NotificationRow.kind).in_(kinds))
                 .order_by(col(NotificationRow.created_at), col(NotificationRow.id)))
            for sink, group, signal, kind, ts, status, error in s.execute(q).all():
                key = (sink, group, signal)
                if status == DEAD and (error or "").startswith(NOT_SENT):
                    continue  # held, then ended unsent: the receiver was never told, so nothing to repeat or end
                if kind in RESOLVING:
                    if key in out:
                        out[key] = (out[key][0], False, True)
                else:
                    out[key] = (aware(ts) or ts, kind in FIRING, False)
        return out

    def model_announced(self, since: datetime) -> dict[Key, dict[tuple[str, str], datetime]]:
        """Return (sink, group, signal) -> {(signal, new value): when last written} of the model-change rows since
        `since`: the changes a webhook or Slack sink was told of within the cooldown (`last_firing` has when, not
        which). Reads the model.changed rows of that window alone."""
        out: dict[Key, dict[tuple[str, str], datetime]] = {}
        with Session(self.engine) as s:
            q = (sa_select(col(NotificationRow.sink), col(NotificationRow.group_key), col(NotificationRow.signal),
                           col(NotificationRow.created_at), col(NotificationRow.payload))
                 .where(col(NotificationRow.created_at) >= since, col(NotificationRow.kind) == "model.changed")
                 .order_by(col(NotificationRow.created_at), col(NotificationRow.id)))
            for sink, group, signal, ts, payload in s.execute(q).all():
                payload = payload or {}
                value = (str(payload.get("signal") or ""), str((payload.get("evidence") or {}).get("current_value")))
                out.setdefault((sink, group, signal), {})[value] = aware(ts) or ts
        return out

    def prune(self, before: datetime) -> int:
        """Delete delivered and dead rows older than `before`, keeping each alert's latest state row. Reads the rows
        older than `before` alone, by creation time (0010), and whether each is its alert's newest state row by a
        seek in the alert index; it read every delivered row, and every state row to group them per alert."""
        newer = aliased(NotificationRow)
        latest = (sa_select(col(newer.id))
                  .where(col(newer.sink) == col(NotificationRow.sink),
                         col(newer.group_key) == col(NotificationRow.group_key),
                         col(newer.signal) == col(NotificationRow.signal), col(newer.kind).in_(_STATE_KINDS))
                  .order_by(col(newer.created_at).desc(), col(newer.id).desc()).limit(1).scalar_subquery())
        with Session(self.engine) as s:
            unbounded(s.connection())  # the hourly prune, as the observations': a first one may be long
            # The status is tested here, not in the query: there SQLite took the index that leads with it and read
            # every delivered row again.
            doomed = [rid for rid, status in s.execute(
                sa_select(col(NotificationRow.id), col(NotificationRow.status))
                .where(col(NotificationRow.created_at) < before,
                       or_(col(NotificationRow.kind).not_in(_STATE_KINDS), col(NotificationRow.id) != latest))).all()
                      if status in _TERMINAL]
            for i in range(0, len(doomed), 500):
                s.exec(delete(NotificationRow).where(col(NotificationRow.id).in_(doomed[i:i + 500])))  # type: ignore[call-overload]
            s.commit()
            return len(doomed)

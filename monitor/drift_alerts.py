"""Drift event updates as the alerting layer's events: which updates notify, and what receivers are told."""

from __future__ import annotations

from datetime import datetime

from monitor.alerts import AlertEvent
from monitor.alerts.events import RESOLVING
from monitor.decision import BACK, WINDOW
from monitor.drift import DriftEvent, EventUpdate


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _value(v: float | str | None) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _excerpt(diff: str, limit: int = 500) -> str:
    """The word diff cut to `limit` characters at a word, saying it was cut (not ending inside a `[-` marker)."""
    if len(diff) <= limit:
        return diff
    return diff[:limit].rsplit(" ", 1)[0] + " …"


def _change(e: DriftEvent) -> str:
    if e.baseline_value is None and e.current_value is None:  # whole-completion tests compare texts, not values
        p = f", p={e.p_value:.2g}" if e.p_value is not None else ""
        return f"{e.signal} changed ({e.test}{p})"
    return f"{e.signal} {_value(e.baseline_value)} -> {_value(e.current_value)}"


def summary(e: DriftEvent, action: str = "opened") -> str:
    """Return the one-line summary receivers show: the change (or the test that saw it when it has no values) and,
    once it ends, how: back at baseline by itself, accepted as the new baseline, or closed by an operator."""
    where = f"{e.canary} @ {e.target}"
    if action == "accepted":
        return f"{where}: {_change(e)} accepted as the new baseline" + (f": {e.note}" if e.note else "")
    if action == "resolved":
        # a resolve by itself leaves no note; `baseline reset` and `pin` say why they closed it
        how = f"closed by an operator: {e.note}" if e.note else "back at baseline"
        return f"{where}: {e.signal} resolved, {how} (was {_change(e).removeprefix(e.signal + ' ')})"
    return f"{where}: {_change(e)}"


def alert_event(update: EventUpdate, tags: tuple[str, ...] = ()) -> AlertEvent:
    """Map a drift event update onto the alerting layer's event."""
    e = update.event
    if update.action in ("resolved", "accepted"):
        kind = f"drift.{update.action}"
    elif e.kind == "model":
        kind = "model.changed"
    else:
        kind = "drift.opened"
    ev = e.evidence or {}
    evidence = {"signal": e.signal, "test": e.test, "baseline_value": e.baseline_value,
                "current_value": e.current_value, "effect_size": e.effect_size, "p_value": e.p_value,
                "statistic": e.statistic, "threshold": e.threshold, "baseline_n": e.baseline_n,
                "current_n": e.current_n, "first_obs_at": e.first_obs_at, "diff": _excerpt(ev.get("diff") or "")}
    # a chart's event: the latest window test beside it, under its own name; a resolved rate: what showed it back
    evidence |= {k: e.detail[k] for k in (WINDOW, BACK) if e.detail.get(k)}
    return AlertEvent(kind=kind, canary=e.canary, target=e.target, signal=e.signal,
                      severity="warning", tags=tags, event_id=e.id,
                      opened_at=_dt(e.opened_at), resolved_at=_dt(e.resolved_at or e.accepted_at),
                      summary=summary(e, update.action), note=e.note if kind in RESOLVING else "",
                      evidence=evidence)


def notifies(updates: list[EventUpdate]) -> bool:
    """Whether written updates came with notifications (only openings, resolutions and acceptances have them)."""
    return any(u.action != "updated" for u in updates)

"""Turn domain events into notifications: routing, grouping, cooldown, firing and resolved messages.

Everything here is pure: the time is passed in and the cooldown memory is a plain dict the caller keeps
(:class:`Policy` does that for the daemon).
"""

from __future__ import annotations

import fnmatch
import hashlib
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from monitor.alerts.config import AlertsConfig, Match
from monitor.alerts.events import (
    FIRING,
    ONE_SHOT,
    RESOLVING,
    AlertEvent,
    Notification,
    condition_of,
    status_of,
)
from monitor.decision import decision

STATEFUL_SINKS = frozenset({"alertmanager", "pagerduty"})  # they de-duplicate and group themselves
MODEL_GROUP = "model"  # the signal of webhook/Slack model-change notifications, grouped per target
DRIFT_OPENED = "drift.opened"
RETIRED = "no longer configured"  # the evidence reason of the ends a reload writes for a removed pair or check
# what the reload removed (their evidence's `removed`): the canary or target, or the check of the signal check:NAME
REMOVED_PAIR, REMOVED_CHECK = "pair", "check"
RETIRED_NOTE = "no longer monitored (removed from the configuration)"  # how those ends say it, after C@T[: SIGNAL]
CHECK_RETIRED_NOTE = "no longer monitored (the check was removed from the configuration)"
# Kinds whose rows of one canary x target waiting together go to webhook and Slack as one message: the openings
# group_wait collects, and the ends an operator's accept, reset or pin writes at once (one per signal).
DRIFT_GROUPED = frozenset({DRIFT_OPENED, "drift.resolved", "drift.accepted"})

# Cooldown memory: (sink, group_key, signal) -> (time of the last firing message sent, whether the receiver
# was told it is firing, whether it was then told it is resolved, and for a target's model changes which ones it
# was told of, when). Resolved messages go only where the firing one went; a firing message after a resolve is
# always sent (cooldown only de-duplicates repeated firings).
CooldownKey = tuple[str, str, str]
Change = tuple[str, str]  # a model change as webhook and Slack are told it: (signal, new value)


@dataclass(frozen=True)
class CooldownEntry:
    fired_at: datetime
    open: bool
    resolved: bool = False
    announced: Mapping[Change, datetime] = field(default_factory=dict)  # model changes: (signal, value) -> sent


def _change(event: AlertEvent) -> Change:
    return event.signal, str(event.evidence.get("current_value"))


def _announced(last: CooldownEntry, now: datetime, cooldown: float) -> dict[Change, datetime]:
    """The model changes a receiver was told of within the cooldown before `now`."""
    return {c: t for c, t in last.announced.items() if (now - t).total_seconds() < cooldown}


@dataclass(frozen=True)
class Suppressed:
    """A message the cooldown kept from a sink: the event, the sink, and until when the cooldown runs (for a model
    change, that of the change as it was told; else that of the alert's last firing message)."""

    sink: str
    event: AlertEvent
    until: datetime


@dataclass
class Plan:
    """What one event produces: the notifications to enqueue and the cooldown entries to remember."""

    notifications: list[Notification] = field(default_factory=list)
    remember: dict[CooldownKey, CooldownEntry] = field(default_factory=dict)
    suppressed: list[Suppressed] = field(default_factory=list)  # kept from a sink by the cooldown


_last_ns = 0
_ids_lock = threading.Lock()


def row_id() -> str:
    """A new outbox row id that sorts after every id this process made before (32 hex digits: a nanosecond count
    that never goes back, then 64 random bits). The outbox orders an alert's rows by (created_at, id): with random
    ids, an opening and its resolve made in the same microsecond (one clock reading, or a coarse clock) were sent
    and read in either order, a "recovered" before its "down" or as the alert's latest word while it fired."""
    global _last_ns
    with _ids_lock:
        _last_ns = max(time.time_ns(), _last_ns + 1)
        stamp = _last_ns
    return f"{stamp:016x}{secrets.token_hex(8)}"


def _any(patterns: list[str] | None, value: str) -> bool:
    return patterns is None or any(fnmatch.fnmatchcase(value, p) for p in patterns)


def matches(match: Match, event: AlertEvent) -> bool:
    """Return whether an event satisfies every field a route's match sets."""
    if match.tags is not None and not any(fnmatch.fnmatchcase(t, p) for t in event.tags for p in match.tags):
        return False
    return (_any(match.kind, event.kind) and _any(match.severity, event.severity)
            and _any(match.target, event.target) and _any(match.canary, event.canary))


def route(event: AlertEvent, cfg: AlertsConfig) -> list[str]:
    """Return the sinks an event goes to, in config order (no routes: every sink)."""
    if not cfg.routes:
        return [s.name for s in cfg.sinks]
    wanted = {name for r in cfg.routes if matches(r.match, event) for name in r.sinks}
    return [s.name for s in cfg.sinks if s.name in wanted]


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat() if ts else None


def payload(event: AlertEvent, cfg: AlertsConfig, now: datetime) -> dict[str, Any]:
    """Return the sink-independent payload of an event: facts, evidence and a link to the JSON API."""
    link = f"{cfg.external_url}/api/drift/{event.event_id}" if event.event_id else cfg.external_url
    return {
        "kind": event.kind, "status": status_of(event.kind), "condition": condition_of(event.kind, event.evidence),
        "event_id": event.event_id,
        "canary": event.canary, "target": event.target, "signal": event.signal, "severity": event.severity,
        "tags": list(event.tags), "group_key": event.group_key, "summary": event.summary or summarize(event),
        "opened_at": _iso(event.opened_at or now), "resolved_at": _iso(event.resolved_at),
        "evidence": dict(event.evidence), "link": link,
        **({"note": event.note} if event.note else {}),
    }


def summarize(event: AlertEvent) -> str:
    """Return a one-line human summary of an event."""
    what = {"drift.opened": "drift detected", "drift.resolved": "drift resolved",
            "drift.accepted": "drift accepted as the new baseline", "model.changed": "served model changed",
            "budget.exceeded": "daily spend cap reached", "canary.down": "canary failing",
            "canary.recovered": "canary recovered", "test": "test notification"}.get(event.kind, event.kind)
    signal = f" in {event.signal}" if event.signal else ""
    ev = event.evidence
    values = ""
    if "baseline_value" in ev or "current_value" in ev:
        values = f": {ev.get('baseline_value')} -> {ev.get('current_value')}"
    return f"{event.canary}@{event.target}: {what}{signal}{values}"


def message_id(sink: str, event: AlertEvent, round_: str = "") -> str:
    """Return a message id: derived from the event (re-enqueueing it yields the same id), else random.

    `round_` tells apart messages that say the same of the same event again on purpose (an alert fired anew after
    its canary came back, resolved again when it left again): a receiver that deduplicates on the id must not
    drop them as retries."""
    if not event.event_id:
        return f"msg_{uuid.uuid4().hex}"
    key = f"{sink}\x00{event.kind}\x00{event.event_id}" + (f"\x00{round_}" if round_ else "")
    return "msg_" + hashlib.sha256(key.encode()).hexdigest()[:32]


def group_message_id(row_ids: Iterable[str]) -> str:
    """Return the message id of a message that merged several rows: `msg_` + the first 32 hex digits of SHA-256 over
    its row ids, sorted and joined with newlines (README). The same rows give the same id at every retry, whichever
    of them leads it; other rows, another id (a receiver deduplicating on it keeps a message with other contents)."""
    return "msg_" + hashlib.sha256("\n".join(sorted(row_ids)).encode()).hexdigest()[:32]


def _grouped_key(sink: str, event: AlertEvent) -> CooldownKey:
    return (sink, f"*/{event.target}", MODEL_GROUP)


def plan(event: AlertEvent, cfg: AlertsConfig, now: datetime, memory: Mapping[CooldownKey, CooldownEntry],
         sinks: list[str] | None = None, round_: str = "") -> Plan:
    """Decide which notifications an event produces at `now`, given the cooldown memory.

    Webhook and Slack get one model-change notification per target: the first change of a target waits
    `group_wait`, changes of other canaries and signals of that target arriving meanwhile join it (the sender
    merges them into one message). Later ones within the cooldown are sent only if they are news: a (signal, new
    value) not told for that target within the cooldown (a change back, A -> B then B -> A, is sent; a flapping
    model gets one message per new value per cooldown); a repeat is dropped. The end of a model change is not sent
    to them (they got a one-off notice, not an alert); Alertmanager and PagerDuty get every change.
    """
    out = Plan()
    types = {s.name: s.type for s in cfg.sinks}
    body = payload(event, cfg, now)
    for sink in sinks if sinks is not None else route(event, cfg):
        cooled = types.get(sink) not in STATEFUL_SINKS and event.kind != "test"
        grouped = cooled and event.kind == "model.changed"
        key = _grouped_key(sink, event) if grouped else (sink, event.group_key, event.signal)
        last = memory.get(key)
        if event.kind in FIRING or event.kind in ONE_SHOT:
            age = (now - last.fired_at).total_seconds() if last is not None else None
            if cooled and last is not None and age is not None and not last.resolved and age < cfg.cooldown:
                told = _announced(last, now, cfg.cooldown) if grouped else {}
                collecting = grouped and age < cfg.group_wait
                if not collecting and (not grouped or _change(event) in told):
                    since = told[_change(event)] if grouped else last.fired_at
                    out.suppressed.append(Suppressed(sink, event, since + timedelta(seconds=cfg.cooldown)))
                    if event.kind in FIRING:
                        out.remember[key] = CooldownEntry(last.fired_at, open=last.open)
                    continue
                # joins the model-change notification of this target still collecting, or a change not told yet
                # within the cooldown (a change back): a message of its own, which the next ones may join
                out.remember[key] = CooldownEntry(last.fired_at if collecting else now, open=False,
                                                  announced={**told, _change(event): told.get(_change(event), now)})
            elif event.kind != "test":
                out.remember[key] = CooldownEntry(now, open=event.kind in FIRING,
                                                  announced={_change(event): now} if grouped else {})
        elif event.kind in RESOLVING:
            if cooled and (condition_of(event.kind, event.evidence) == "model"
                           or (last is not None and not last.open)):
                continue  # a model change's end (a notice, not an alert), or its firing message was not sent there
            if last is not None:
                out.remember[key] = CooldownEntry(last.fired_at, open=False, resolved=True)
        # A change seldom moves one signal: webhook and Slack get the drift of one canary x target seen within
        # group_wait as one message (the sender merges the rows still waiting; each keeps its own cooldown).
        collects = grouped or (cooled and event.kind == DRIFT_OPENED)
        wait = timedelta(seconds=cfg.group_wait) if collects else timedelta(0)
        out.notifications.append(Notification(
            id=row_id(), message_id=message_id(sink, event, round_), sink=sink, kind=event.kind,
            group_key=key[1], signal=key[2], payload=body, created_at=now, next_attempt_at=now + wait))
    return out


def merge_model_changes(payloads: list[dict[str, Any]]) -> dict[str, Any]:
    """Return one payload for the model changes of one target (oldest first): which canaries, which signals."""
    first = payloads[0]
    canaries = sorted({str(p.get("canary", "")) for p in payloads})
    signals = sorted({str(p.get("signal", "")) for p in payloads})
    changes, seen = [], set()
    for p in payloads:
        ev = p.get("evidence") or {}
        change = {"canary": p.get("canary"), "signal": p.get("signal"), "from": ev.get("baseline_value"),
                  "to": ev.get("current_value"), "event_id": p.get("event_id"), "link": p.get("link")}
        changes.append(change)
        seen.add((p.get("signal"), str(change["from"]), str(change["to"])))
    what = ", ".join(f"{sig} {a} -> {b}" for sig, a, b in sorted(seen, key=lambda x: str(x[0])))
    return {**first, "canary": canaries[0] if len(canaries) == 1 else "*",
            "signal": signals[0] if len(signals) == 1 else MODEL_GROUP, "canaries": canaries, "signals": signals,
            "changes": changes, "evidence": first.get("evidence") if len(payloads) == 1 else {},
            "summary": f"{first.get('target')}: served model changed: {what} "
                       f"(seen by {len(canaries)} canar{'y' if len(canaries) == 1 else 'ies'}: {', '.join(canaries)})"}


def merge_drift(payloads: list[dict[str, Any]]) -> dict[str, Any]:
    """Return one payload for the drift of one canary x target (oldest first): the first event's fields, as a
    single event's message has them, plus ``signals`` and ``events`` naming every event of the message."""
    first = payloads[0]
    events, signals = [], []
    for p in payloads:
        ev = p.get("evidence") or {}
        events.append({"signal": p.get("signal"), "event_id": p.get("event_id"), "kind": p.get("condition"),
                       "baseline_value": ev.get("baseline_value"), "current_value": ev.get("current_value"),
                       "p_value": ev.get("p_value"), "decision": decision(ev) if ev.get("test") else None,
                       "link": p.get("link")})
        if p.get("signal") not in signals:
            signals.append(p.get("signal"))
    merged = {**first, "signals": signals, "events": events}
    if len(payloads) > 1:
        where = f"{first.get('canary')} @ {first.get('target')}"
        kind = first.get("kind")
        if kind == DRIFT_OPENED:
            what = "; ".join(str(p.get("summary") or "").removeprefix(f"{where}: ") for p in payloads)
            merged["summary"] = f"{where}: {len(signals)} signals changed: {what}"
        else:  # ends: each summary says how it ended
            merged["summary"] = f"{where}: {_ends_summary(payloads, str(kind))}"
        ranks = {"critical": 0, "warning": 1, "info": 2}
        merged["severity"] = min((str(p.get("severity") or "warning") for p in payloads),
                                 key=lambda s: ranks.get(s, 1))
    return merged


def _names(payloads: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(str(p.get("signal")) for p in payloads))


def _ends_summary(payloads: list[dict[str, Any]], kind: str) -> str:
    """What a merged end says after its canary x target: how its events ended, in parts. The ends a reload wrote
    for checks it removed name them (the canary stays, as each such end says), those of a removed canary or target
    say so, the others how they ended (the note is the operator's, once)."""
    def removed(p: dict[str, Any]) -> str | None:  # None: not retired; a pair's before `removed` was written
        ev = p.get("evidence") or {}
        return None if ev.get("reason") != RETIRED else REMOVED_CHECK if ev.get("removed") == REMOVED_CHECK \
            else REMOVED_PAIR

    def count(names: list[str]) -> str:
        return f"{len(names)} signal{'s' if len(names) > 1 else ''}"

    ended = [p for p in payloads if removed(p) is None]
    pairs = _names([p for p in payloads if removed(p) == REMOVED_PAIR])
    checks = _names([p for p in payloads if removed(p) == REMOVED_CHECK])
    parts = []
    if ended:
        how = "accepted as the new baseline" if kind == "drift.accepted" else "resolved"
        notes, names = sorted({str(p.get("note")) for p in ended if p.get("note")}), _names(ended)
        if kind == "drift.resolved" and notes:
            # as each end says: a resolve with a note is an operator's (`baseline reset`), not the provider back
            # at baseline; "N signals resolved: NOTE" read as the latter
            back = _names([p for p in ended if not p.get("note")])
            closed = _names([p for p in ended if p.get("note")])
            parts.append(f"{count(names)} {how}, closed by an operator: {'; '.join(notes)} ({', '.join(closed)})"
                         + (f"; back at baseline ({', '.join(back)})" if back else ""))
        else:
            parts.append(f"{count(names)} {how}" + (f": {'; '.join(notes)}" if notes else "") + f" ({', '.join(names)})")
    if pairs:
        parts.append(f"{count(pairs)} {RETIRED_NOTE} ({', '.join(pairs)})")
    if checks:
        note = CHECK_RETIRED_NOTE if len(checks) == 1 else \
            CHECK_RETIRED_NOTE.replace("the check was", "the checks were")
        parts.append(f"{', '.join(checks)} {note}")
    return "; ".join(parts)


class Policy:
    """Keeps the cooldown memory between events and applies :func:`plan`.

    Seed it from the outbox at start-up (:meth:`seed`) so a restart does not re-page a group that was paged
    minutes ago. Not thread-safe; call it from one place (the drift listener).
    """

    def __init__(self, cfg: AlertsConfig):
        self.cfg = cfg
        self.memory: dict[CooldownKey, CooldownEntry] = {}

    def seed(self, last_firing: Mapping[CooldownKey, tuple[Any, ...]],
             announced: Mapping[CooldownKey, Mapping[Change, datetime]] | None = None) -> None:
        """Load (sink, group, signal) -> (last firing time, still open[, resolve sent]) from the outbox, and
        `announced`: the model changes each was told of (`Outbox.model_announced`)."""
        for key, (ts, is_open, *rest) in last_firing.items():
            self.memory[key] = CooldownEntry(ts, is_open, bool(rest and rest[0]), dict((announced or {}).get(key, {})))

    def notifications(self, event: AlertEvent, now: datetime,
                      undo: dict[CooldownKey, CooldownEntry | None] | None = None,
                      also: Iterable[str] = (), only: Iterable[str] | None = None,
                      suppressed: list[Suppressed] | None = None) -> list[Notification]:
        """Return the notifications for an event and remember what was sent; `undo` collects what the memory held
        before, for :meth:`restore` when the notifications are not stored after all. `also`: sinks it goes to
        besides those its routes name (an end, to the sinks told its alert fires); `only`: the sinks it goes to,
        its routes aside; `suppressed` collects what the cooldown kept from a sink."""
        sinks = None
        if only is not None:
            chosen = set(only)
            sinks = [s.name for s in self.cfg.sinks if s.name in chosen]
        elif also:
            wanted = {*route(event, self.cfg), *also}
            sinks = [s.name for s in self.cfg.sinks if s.name in wanted]
        p = plan(event, self.cfg, now, self.memory, sinks)
        if undo is not None:
            for key in p.remember:
                undo.setdefault(key, self.memory.get(key))
        self.memory.update(p.remember)
        if suppressed is not None:
            suppressed += p.suppressed
        return p.notifications

    def restore(self, undo: Mapping[CooldownKey, CooldownEntry | None]) -> None:
        """Forget what notifications never stored were remembered as (their transaction rolled back)."""
        for key, entry in undo.items():
            if entry is None:
                self.memory.pop(key, None)
            else:
                self.memory[key] = entry

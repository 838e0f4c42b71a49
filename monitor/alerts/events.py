"""Alert inputs and outputs as plain values: the domain events alerts react to, and outbox notifications."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Kind = Literal["drift.opened", "drift.resolved", "drift.accepted", "model.changed", "budget.exceeded",
               "canary.down", "canary.recovered", "test"]
KINDS: tuple[str, ...] = ("drift.opened", "drift.resolved", "drift.accepted", "model.changed", "budget.exceeded",
                          "canary.down", "canary.recovered", "test")
FIRING: frozenset[str] = frozenset({"drift.opened", "canary.down"})  # start a condition that later resolves
RESOLVING: frozenset[str] = frozenset({"drift.resolved", "drift.accepted", "canary.recovered"})
ONE_SHOT: frozenset[str] = frozenset({"model.changed", "budget.exceeded", "test"})  # nothing resolves them
SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")

MODEL_CHANGE_TEST = "first_seen"  # the drift "test" of model/fingerprint events (monitor/drift/stream.py)

PENDING, FAILED, DELIVERED, DEAD = "pending", "failed", "delivered", "dead"
WAITING: tuple[str, ...] = (PENDING, FAILED)  # not yet delivered, still to be tried
# Not sent, not given up on: a drift notification on a failing canary's error signals, held while its outage is
# paged as canary.down (monitor.alerts.inhibit); `last_error` says why. Released to PENDING or ended as DEAD.
HELD = "held"
RELEASED_NOTE = "held while"  # how a released row's last_error begins: kept when it is delivered (why it came late)
# in the last_error of an error_type opening held after its pair recovered, on a failure type of the outage's
# canary.down with the change seen first during the outage: the outage's mix of failures, paged already
OUTAGE_MIX = "(outage mix)"
NOT_SENT = "not sent:"  # how the last_error of a held row ended unsent begins (never told: no repeat to drop)
GAVE_UP_NOTE = "gave up after"  # how the last_error of a row given up on past retry.give_up_after begins
# how the last_error of an end given up on and tried once more (its push receiver took a message again) begins
RETRIED_END_NOTE = "tried once more:"
# how the last_error of a firing message given up on at a push receiver, and sent again while its alert still fires
# (the receiver takes messages again, or the sink's periodic look), begins (monitor.alerts.outbox_resend)
RESENT_NOTE = "re-sent:"
# A firing message whose re-send the receiver refused while it took other messages (a 503 or 429 to it alone: a rate
# limit in the burst after an outage, or a refusal for good) is re-sent at most RESEND_REFUSALS times, a
# `resend_interval` apart (each refusal noted in its last_error as RESEND_REFUSED_NOTE), then RESENT_REFUSED: not again.
RESEND_REFUSALS = 3
RESEND_REFUSED_NOTE = "(its re-send refused while the receiver took other messages, {} of {}: tried again a " \
                      "resend_interval later)"
RESENT_REFUSED = "(its re-send refused while the receiver took other messages: not sent again)"
# how the last_error of a row given up on (dead) that an operator made due again (`llm-monitor alerts resend`,
# monitor.alerts.outbox_asked) begins, its old error after it in brackets
ASKED_NOTE = "sent again on request:"
# how the last_error of a row an operator asked to send again begins while its sink is disabled in the running daemon
# (a 410, until the reload): it waits, pending, for that reload instead of being given up on (monitor.alerts.delivery)
RELOAD_WAIT_NOTE = "waits for a reload:"


def status_of(kind: str) -> str:
    """Return "firing", "resolved" or "info" for an event kind."""
    if kind in FIRING:
        return "firing"
    if kind in RESOLVING:
        return "resolved"
    return "info"


def condition_of(kind: str, evidence: dict[str, Any]) -> str:
    """Return what an event is about (drift, model, canary, budget, test); a resolve is about what it ends.

    A model change opens as ``model.changed`` but ends as ``drift.resolved``/``drift.accepted`` of the same
    drift event: its evidence names the model-change test, so its resolve keeps the model condition.
    """
    if kind in RESOLVING and kind.startswith("drift.") and evidence.get("test") == MODEL_CHANGE_TEST:
        return "model"
    return kind.split(".")[0]


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """Something that happened and may be worth telling people about.

    The drift layer maps its events onto this (``drift.opened`` when a signal of a canary x target changed,
    ``drift.resolved``/``drift.accepted`` when that ends), and so do the model-change, budget and canary-health
    watchers. ``evidence`` carries what a human needs to judge it: ``signal``, ``baseline_value``,
    ``current_value``, ``p_value``, ``baseline_n``/``current_n`` and a short ``diff`` excerpt. Times are
    timezone-aware UTC datetimes.
    """

    kind: str
    canary: str
    target: str
    signal: str = ""
    severity: str = "warning"
    tags: tuple[str, ...] = ()
    event_id: str = ""
    opened_at: datetime | None = None
    resolved_at: datetime | None = None
    summary: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)
    note: str = ""  # an operator's word on a drift event accepted or closed from the CLI (--note)

    @property
    def group_key(self) -> str:
        """Return the grouping key: one alert group per canary x target."""
        return f"{self.canary}/{self.target}"


@dataclass(slots=True)
class Notification:
    """One message for one sink, as kept in the outbox.

    ``payload`` is sink-independent (the event, its evidence, a link to the JSON API) and never holds a
    secret; sinks render and sign it when they send. ``message_id`` stays the same across retries.
    """

    id: str
    message_id: str
    sink: str
    kind: str
    group_key: str
    signal: str
    payload: dict[str, Any]
    created_at: datetime
    next_attempt_at: datetime
    status: str = PENDING
    attempts: int = 0
    last_error: str | None = None
    delivered_at: datetime | None = None
    # when an operator last asked to send it again: its give_up_after counts from its first attempt since
    asked_at: datetime | None = None
    sent_as: str | None = None  # the id of the grouped message it was given up on in (None: alone)

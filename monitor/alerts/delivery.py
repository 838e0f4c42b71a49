"""One notification's delivery: rendered, merged with the rows of its group still waiting, attempted, then marked
delivered, to retry, or given up on (dead); and the ends given up on tried once more when their push receiver takes a
message again.

`Delivering` is a part of monitor.alerts.sender.Sender, which holds the state it names.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy.exc import SQLAlchemyError

from monitor.alerts.asked_window import first_tried, given_up_with, noted
from monitor.alerts.attempt import Attempt, attempt
from monitor.alerts.backoff import full_jitter
from monitor.alerts.config import AlertsConfig
from monitor.alerts.events import (
    FAILED,
    FIRING,
    GAVE_UP_NOTE,
    RELOAD_WAIT_NOTE,
    RESEND_REFUSALS,
    RESEND_REFUSED_NOTE,
    RESENT_REFUSED,
    RESOLVING,
    RETRIED_END_NOTE,
    Notification,
)
from monitor.alerts.outbox import Outbox
from monitor.alerts.outbox_resend import refusals, resending
from monitor.alerts.policy import (
    DRIFT_GROUPED,
    MODEL_GROUP,
    STATEFUL_SINKS,
    group_message_id,
    merge_drift,
    merge_model_changes,
)
from monitor.alerts.sinks import Sink
from monitor.store.repository import driver_message

log = logging.getLogger("monitor.alerts")


@dataclass
class FlushResult:
    """How many notifications a flush delivered, scheduled for retry and gave up on."""

    delivered: int = 0
    retried: int = 0
    dead: int = 0


# Why a notification was given up on (the `reason` label of llm_monitor_notifications_dropped_total).
# Rows of a sink the running configuration does not name wait this long before they are given up on: during a
# rolling update the leader may be a replica still on the old configuration, and the next one sends them.
UNCONFIGURED_GRACE = timedelta(hours=1)
GONE, DISABLED, GAVE_UP, UNCONFIGURED, UNRENDERABLE = "gone", "disabled", "gave_up", "unconfigured", "unrenderable"
DROP_REASONS: tuple[str, ...] = (GONE, DISABLED, GAVE_UP, UNCONFIGURED, UNRENDERABLE)
# why a disabled sink's messages are given up on (their last_error begins so; a 410's own message "HTTP 410")
DISABLED_NOTE = "sink disabled: the endpoint answered 410 Gone"
# A sink's loop with nothing to send asks the store again after `poll_interval`, then twice as long each time, up to
# this many poll intervals (16 s by default), or sooner when a waiting row falls due (the claim says when) or a row
# is added here (`wake`). Only rows another process adds (`baseline accept` from the CLI) wait for the next look. A row
# re-sent on request while its sink is disabled is looked at again as often, so it goes out so soon after the reload.
IDLE_POLLS = 8


def refreshes(sink: Sink) -> bool:
    """Whether a sink re-sends its firing alerts (Alertmanager): the others need no read of them."""
    return type(sink).refresh is not Sink.refresh


def _retried(n: Notification) -> bool:
    """Whether `n` is an end given up on and being tried once more (`Outbox.retry_given_up_ends`)."""
    return (n.last_error or "").startswith(RETRIED_END_NOTE)


class Delivering:
    """The part of `Sender` that attempts one notification and records the outcome."""

    outbox: Outbox
    sinks: dict[str, Sink]
    cfg: AlertsConfig
    metrics: Any
    now: Callable[[], datetime]
    rand: Callable[[], float]
    poll_interval: float
    disabled: dict[str, str]
    on_dead: Callable[[Notification], int] | None
    _client: httpx.AsyncClient
    _sink_failing: set[str]
    # Push sinks (not re-sent what fires) that may have an end given up on as an alert's last word: every sink at a
    # start (one given up on before it), and a sink once an end is given up on there. Its next delivery looks.
    _ends_given_up: set[str]
    # Push sinks that may have a firing message given up on as an alert's last word: every sink at a start, and a
    # sink once a firing message is given up on there (or its re-send fails while it is down). Its next delivery or
    # periodic look looks.
    _firing_given_up: set[str]
    # Sinks that delivered a message since this start: a re-send failing at one not in `_sink_failing` was refused
    # while the receiver took other messages; at one that delivered nothing yet, the receiver may be down.
    _sink_took: set[str]
    # Disabled sinks that have a row re-sent on request waiting for the reload (logged once per sink until the reload)
    _reload_logged: set[str]

    if TYPE_CHECKING:  # Sender's own, named here for the type checker
        def wake(self) -> None: ...

    async def _retry_ends(self, name: str) -> None:
        """Try once more, now, the ends given up on at `name` that are their alert's last word: the receiver takes
        messages again, and given up on, its page stayed open for good. Once: given up on again, they stay so."""
        self._ends_given_up.discard(name)
        try:
            ids = await asyncio.to_thread(self.outbox.retry_given_up_ends, name, self.now())
        except SQLAlchemyError as e:  # the next delivery there looks again
            self._ends_given_up.add(name)
            log.warning("could not look for ends given up on at %s: %s", name, driver_message(e), extra={"sink": name})
            return
        if ids:
            log.info("alert sink %s takes messages again: the %d ends given up on there are sent once more", name,
                     len(ids), extra={"sink": name, "count": len(ids)})
            self.wake()

    async def _resend_firing(self, name: str) -> None:
        """Send once more, now, the firing messages given up on at `name` that are their alert's last word (it still
        fires): the receiver takes messages again, or the sink's periodic look (`Sender.refresh_sink`)."""
        self._firing_given_up.discard(name)
        try:
            ids, later = await asyncio.to_thread(self.outbox.resend_given_up_firing, name, self.now())
        except SQLAlchemyError as e:  # the next delivery or look there looks again
            self._firing_given_up.add(name)
            log.warning("could not look for firing messages given up on at %s: %s", name, driver_message(e),
                        extra={"sink": name})
            return
        if later:  # a canary.down whose pair answered its latest call: the next look looks again
            self._firing_given_up.add(name)
        if ids:
            # at every look while the receiver is down (its failing deliveries logged once): a line only when it is not
            log.log(logging.DEBUG if name in self._sink_failing else logging.INFO,
                    "alert sink %s: the %d firing messages given up on there whose alerts still fire are sent again",
                    name, len(ids), extra={"sink": name, "count": len(ids)})
            self.wake()

    async def _with_context(self, n: Notification) -> Notification:
        """An end at a push sink whose firing message was given up on and never delivered there says so
        (``firing_not_delivered``): the receiver learns the outage it was not paged for, not an end of a page it has."""
        if n.kind not in RESOLVING or n.payload.get("firing_not_delivered"):
            return n
        if not await asyncio.to_thread(self.outbox.firing_undelivered, n):
            return n
        return replace(n, payload={**n.payload, "firing_not_delivered": True})

    def _delay(self, n: Notification, a: Attempt) -> float:
        r = self.cfg.retry
        backoff = full_jitter(n.attempts, r.initial, r.max, self.rand)
        if a.retry_after_s is not None:
            # The receiver's Retry-After is a floor, never a licence to go faster than the backoff: a "Retry-After:
            # 0" (or a date gone by) on every 429 had the sink re-send at once, hundreds of requests a second.
            return max(backoff, min(a.retry_after_s, r.max_retry_after))
        return backoff

    async def _drop(self, n: Notification, reason: str, error: str, res: FlushResult, *,
                    attempted: bool = True, merged: tuple[Notification, ...] = ()) -> None:
        """Give up on `n` and the rows its message `merged` that are given up on with it (they were in it: they share
        its fate and its error, each counted; left waiting, they went out on their own after it was given up on).

        They record the id they make together (`sent_as`: `alerts resend` sends them again together, under it), the
        message's own unless its retry is split (rows re-sent on request retried on): a webhook-id stands for its rows."""
        ids = [n.id, *(m.id for m in merged)]
        await asyncio.to_thread(self.outbox.mark_dead, ids, error, attempted=attempted,
                                sent_as=group_message_id(ids) if merged else None)
        res.dead += 1 + len(merged)
        if reason == GAVE_UP and n.kind in RESOLVING and not _retried(n):
            self._ends_given_up.add(n.sink)
        if reason == GAVE_UP and n.kind in FIRING:
            self._firing_given_up.add(n.sink)
        if self.metrics is not None:
            self.metrics.dropped.labels(n.sink, reason).inc(1 + len(merged))
        if self.on_dead is not None:
            try:
                released = await asyncio.to_thread(self.on_dead, n)
            except SQLAlchemyError as e:  # the row is dead: the rest of the batch goes on; a start releases it
                log.warning("could not send what the notification given up on held (tried again at the next start): "
                            "%s", driver_message(e), extra={"sink": n.sink, "message_id": n.message_id})
                return
            if released:
                self.wake()

    async def _give_up_merged(self, ended: list[Notification], error: str, res: FlushResult,
                              extra: dict[str, Any]) -> None:
        """Give up on the rows a failed message merged whose own `retry.give_up_after` ended while its lead's runs (a
        row re-sent on request): as a message of their own, under the id they make together; the lead retries on."""
        head, *rest = ended
        log.error("gave up delivering the notifications merged into a retry: their retry.give_up_after ended",
                  extra={**extra, "given_up_as": group_message_id([m.id for m in ended]) if rest else head.message_id,
                         "count": len(ended)})
        note = "gave up again after" if _retried(head) else GAVE_UP_NOTE
        await self._drop(head, GAVE_UP, f"{note} {head.attempts + 1} attempts: {error}", res, merged=tuple(rest))

    def _disable(self, name: str, why: str) -> None:
        self.disabled[name] = why
        if self.metrics is not None:
            self.metrics.sink_disabled.labels(name).set(1)

    def _gone(self, name: str, error: str, extra: dict[str, Any]) -> None:
        """The endpoint answered 410 Gone (to a message or to a re-send of the firing alerts): disable the sink until
        the config is reloaded (Standard Webhooks: a 410 disables the endpoint)."""
        self._disable(name, f"{DISABLED_NOTE} ({error})")
        log.error("alert sink %s answered 410 Gone: disabled until the config is reloaded", name, extra=extra)

    async def _wait_for_reload(self, n: Notification, extra: dict[str, Any]) -> None:
        """Keep `n`, a row an operator asked to send again (`alerts resend`: `asked_at`), waiting while its sink is
        disabled (a 410, until the reload): given up on at once, it was lost to a command that said it waits for
        delivery, typically run after fixing the URL and before the reload. It stays pending, its last error saying
        why (`alerts pending`), no attempt counted, looked at again every `IDLE_POLLS` poll intervals, and goes out
        after the reload. A message written while the sink is disabled is still given up on (`DISABLED`)."""
        note = None
        if n.sink not in self._reload_logged:
            self._reload_logged.add(n.sink)
            log.warning("notifications re-sent on request wait: their sink is disabled until the config is reloaded "
                        "(logged once until then)", extra=extra)
        if not (n.last_error or "").startswith(RELOAD_WAIT_NOTE):
            note = (f"{RELOAD_WAIT_NOTE} sink {n.sink!r} is disabled in the running daemon ({self.disabled[n.sink]}); "
                    f"it goes out once the configuration is reloaded ({n.last_error})")
        until = self.now() + timedelta(seconds=self.poll_interval * IDLE_POLLS)
        await asyncio.to_thread(self.outbox.defer, [n], until, note)

    async def _join_retry(self, n: Notification, merged: list[Notification]) -> set[str]:
        """When rows of `n`'s group wait for the retry of their failed message (`merged` holds them: failed, not due),
        make `n` and the other rows due now (or claimed with it) wait for that retry, and return their ids (nothing
        is sent now); else return an empty set. (A model change needs none: its rows share one signal, and a claim
        hands out only the oldest, the failed one.)

        Merged now, the rows in backoff went out ahead of it, to a receiver that had just failed (each new row of the
        group pulled them in early); left out, the receiver got the group as two messages, the new row's now and the
        failed one's at its retry. Joining the retry keeps the backoff and one message: the receiver gets the group
        once, at the retry, the new row delayed by at most that backoff (and sharing its fate: a retry given up on
        takes it too, but for a row re-sent on request whose own window still runs: retried on, alone). A failed row
        claimed with `n` (its retry due: its next attempt `n`'s lease's end) is no backoff: it goes in this message."""
        now = self.now()
        backoff = [m.next_attempt_at for m in merged
                   if m.status == FAILED and m.next_attempt_at > now and m.next_attempt_at != n.next_attempt_at]
        if not backoff:
            return set()
        until = max(backoff)
        rows = [n, *(m for m in merged if m.next_attempt_at <= now or m.next_attempt_at == n.next_attempt_at)]
        await asyncio.to_thread(self.outbox.defer, rows, until)
        log.debug("notification joins its group's retry", extra={"sink": n.sink, "message_id": n.message_id,
                                                                 "retry_at": until.isoformat(), "rows": len(rows)})
        return {m.id for m in rows}

    async def _deliver(self, n: Notification, res: FlushResult) -> set[str]:
        """Attempt one notification, merged with the rows of its group still waiting; return the ids of the rows
        it merged (they were in this message, whether or not it was delivered)."""
        sink = self.sinks.get(n.sink)
        own_id = n.message_id  # the row's own, before a merge gives the message its rows' id
        extra = {"sink": n.sink, "message_id": n.message_id, "kind": n.kind, "attempt": n.attempts + 1}
        if sink is None:
            log.warning("notification dropped: its sink is no longer configured", extra=extra)
            await self._drop(n, UNCONFIGURED, f"sink {n.sink!r} is no longer configured", res, attempted=False)
            return set()
        if n.sink in self.disabled and n.asked_at is not None:
            await self._wait_for_reload(n, extra)
            return set()
        if n.sink in self.disabled:
            log.warning("notification dropped: its sink is disabled", extra=extra)
            await self._drop(n, DISABLED, self.disabled[n.sink], res, attempted=False)
            return set()
        merged: list[Notification] = []
        if n.kind == "model.changed" and n.signal == MODEL_GROUP:  # one message per target (policy.plan)
            merged = await asyncio.to_thread(self.outbox.siblings, n)
            n = replace(n, payload=merge_model_changes([n.payload, *(m.payload for m in merged)]))
        elif n.kind in DRIFT_GROUPED and sink.type not in STATEFUL_SINKS:  # one message per canary x target
            merged = await asyncio.to_thread(self.outbox.siblings, n, any_signal=True)
            if deferred := await self._join_retry(n, merged):
                return deferred
            n = replace(n, payload=merge_drift([n.payload, *(m.payload for m in merged)]))
        merged_ids = {m.id for m in merged}
        if merged:  # its id is its rows': stable across retries, whichever row leads it (`group_message_id`)
            n = replace(n, message_id=group_message_id([n.id, *merged_ids]))
            extra["message_id"] = n.message_id
        if not refreshes(sink):
            n = await self._with_context(n)
        now = self.now()
        first = first_tried(n, now)  # a row re-sent on request: its first attempt since, if this is not it
        try:
            req = sink.render(n, now)
        except Exception as e:  # a row this build cannot render would otherwise block its sink forever
            log.exception("cannot render a notification", extra=extra)
            # the rows it merged share its fate, as a message given up on (left waiting, they went out on their own
            # at their lease's end: a second message of the group, neither counted nor listed as given up on)
            await self._drop(n, UNRENDERABLE, sink.redact(f"cannot render: {e!r}"), res, attempted=False,
                             merged=tuple(merged))
            return merged_ids
        a = await attempt(self._client, sink, req, self.now)
        if a.ok:
            await asyncio.to_thread(self.outbox.mark_delivered, [n.id, *(m.id for m in merged)], self.now())
            res.delivered += 1
            self._sink_took.add(n.sink)
            if n.sink in self._ends_given_up and not refreshes(sink):
                await self._retry_ends(n.sink)
            if n.sink in self._firing_given_up and not refreshes(sink):
                await self._resend_firing(n.sink)
            if n.sink in self._sink_failing:
                self._sink_failing.discard(n.sink)
                log.info("alert sink %s delivers again", n.sink, extra={"sink": n.sink})
            if self.metrics is not None:
                self.metrics.sent.labels(n.sink).inc()
            return merged_ids
        if self.metrics is not None:
            self.metrics.send_failures.labels(n.sink).inc()
        extra["error"] = a.error
        if a.gone:
            self._gone(n.sink, a.error, extra)
            await self._drop(n, GONE, a.error, res, merged=tuple(merged))
            return merged_ids
        if resending(n):
            # Its re-send failed: given up on again (counted as dropped once, when first given up on). While the sink
            # delivers nothing since it failed (the receiver down), it is sent again at the next look, one attempt a
            # `resend_interval`; if the sink took other messages since (it refuses this one, a 503 or 429 to it
            # alone: a rate limit, or for good), again a `resend_interval` later, RESEND_REFUSALS times at most:
            # such a message was re-sent at each later delivery and look while its alert fired.
            # (down: a sink whose last message other than a re-send failed, or that delivered nothing since this start,
            # the receiver down at a restart)
            down = n.sink not in self._sink_took
            if n.sink in self._sink_failing:
                log.debug("re-sending a firing message given up on failed", extra=extra)
            else:  # once per outage, as a retry's failure
                self._sink_failing.add(n.sink)
                log.warning("re-sending a firing message given up on failed; sent again at the sink's next look "
                            "(logged once until the sink delivers again)" if down else
                            "re-sending a firing message given up on failed while the receiver takes other messages; "
                            f"tried again a resend_interval later, {RESEND_REFUSALS} times at most (failing deliveries "
                            "logged once until the sink delivers again)",
                            extra=extra)
            refused = 0 if down else refusals(n) + 1
            again = down or refused < RESEND_REFUSALS
            why = "(re-sent once the receiver takes messages again)" if down else \
                RESEND_REFUSED_NOTE.format(refused, RESEND_REFUSALS) if again else RESENT_REFUSED
            not_before = None if down else now + timedelta(seconds=self.cfg.resend_interval)
            # The rows it merged (re-sent with it, as they were first sent) share its fate: left waiting, they went
            # out on their own when their lease ended, and its next re-send carried it alone, under another id.
            error = f"{GAVE_UP_NOTE} {n.attempts + 1} attempts {why}: {a.error}"
            await asyncio.to_thread(self.outbox.mark_dead, [n.id, *(m.id for m in merged)], error,
                                    not_before=not_before, sent_as=n.message_id if merged else None)
            if again:
                self._firing_given_up.add(n.sink)
            res.retried += 1
            return merged_ids
        self._sink_took.discard(n.sink)  # another message failed there since it last took one: the receiver is down
        delay = self._delay(n, a)
        next_at = now + timedelta(seconds=delay)
        # from when it was written, or when an operator last asked to send it again (`alerts resend`): from its first
        # attempt since (a reload the row waited for, or a start, may come more than the window after the request)
        firsts = {m.id: first_tried(m, now) for m in merged}  # each merged row's own first attempt since a request
        lead_ends, ended = given_up_with(n, first, merged, firsts, next_at,
                                         timedelta(seconds=self.cfg.retry.give_up_after))
        if lead_ends:
            # A merged row re-sent on request whose own window still runs (it joined this row's retry) is not given
            # up on with it: the operator's request would be undone after a single attempt of its own. It is
            # retried, alone from then on; the rows whose window ended are given up on as this message.
            gone = {m.id for m in ended}
            keep = [m for m in merged if m.id not in gone]
            if keep:  # the rows given up on go by another id than the message's (`_drop`): `alerts resend` takes it
                extra["given_up_as"] = group_message_id([n.id, *gone]) if gone else own_id
                extra["retried_on"] = len(keep)
            log.error("gave up delivering a notification", extra=extra)
            note = "gave up again after" if _retried(n) else GAVE_UP_NOTE  # not tried once more again
            if keep:
                await asyncio.to_thread(self.outbox.mark_retry, [m.id for m in keep], next_at,
                                        {m.id: noted(a.error, firsts[m.id]) for m in keep})
            await self._drop(n, GAVE_UP, f"{note} {n.attempts + 1} attempts: {a.error}", res, merged=tuple(ended))
            return merged_ids
        if ended:  # merged into the retry of a row whose window runs (one re-sent on request, leading it)
            await self._give_up_merged(ended, a.error, res, extra)
            merged = [m for m in merged if m.id not in {e.id for e in ended}]
        # One warning per sink and outage: each waiting notification's every attempt would be a line (a 90 s
        # receiver outage in a soak logged 533); llm_monitor_notification_failures_total counts them all.
        extra["retry_in_s"] = round(delay, 3)
        if n.sink in self._sink_failing:
            log.debug("notification delivery failed, will retry", extra=extra)
        else:
            self._sink_failing.add(n.sink)
            log.warning("notification delivery failed, will retry (logged once until the sink delivers again)",
                        extra=extra)
        # The rows it merged were in this message: they wait for its retry and go with it (left as they were, they
        # went out on their own, due at once or when their lease ended, ahead of the backoff).
        # each row re-sent on request keeps its own first attempt since (a merged one's may be this one): the leader's
        # alone written on all, a merged row that leads the retry counted its window from the request
        await asyncio.to_thread(self.outbox.mark_retry, [n.id, *(m.id for m in merged)], next_at,
                                {n.id: noted(a.error, first),
                                 **{m.id: noted(a.error, firsts[m.id]) for m in merged}})
        res.retried += 1
        return merged_ids


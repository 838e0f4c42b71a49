"""When `retry.give_up_after` starts for a row an operator asked to send again (`alerts resend`): at its first attempt
after the request, not at the request (`asked_at`, kept as the time of the request).

A row re-sent to a sink the running daemon disabled after a 410 waits, pending, for the reload
(monitor.alerts.delivery); a row re-sent while the daemon is stopped waits for its start. Counted from the request,
a reload or start more than the window later gave the row up at its first failed attempt, never retried. Its first
attempt is the one made while its last error is still the request's (`ASKED_NOTE`) or the reload wait's
(`RELOAD_WAIT_NOTE`): no attempt since the request. When that attempt fails, its time is kept at the start of the
row's last error (`FIRST_TRIED_NOTE`, carried over by each later failure), so the window survives a restart and a
take-over by another replica, without a column.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from monitor.alerts.events import ASKED_NOTE, RELOAD_WAIT_NOTE, Notification

FIRST_TRIED_NOTE = "(re-sent on request, first tried at {}: retry.give_up_after counts from then)"
_FIRST_TRIED = re.compile(re.escape(FIRST_TRIED_NOTE).replace(r"\{\}", r"(\S+)", 1))


def first_tried(n: Notification, now: datetime) -> datetime | None:
    """When `n`, a row an operator asked to send again, was first tried since the request: `now` for the attempt
    being made, if none was made since; None for a row no operator asked to send again, or whose first try is not
    known (retried by a release before this one: its window counts from the request)."""
    if n.asked_at is None:
        return None
    error = n.last_error or ""
    if error.startswith((ASKED_NOTE, RELOAD_WAIT_NOTE)):
        return now
    m = _FIRST_TRIED.match(error)
    if m is None:
        return None
    try:
        return datetime.fromisoformat(m.group(1))
    except ValueError:
        return None


def window_start(n: Notification, first: datetime | None) -> datetime:
    """Where `n`'s `retry.give_up_after` counts from: its creation, or when an operator last asked to send it again
    (`asked_at`), or the first attempt since that request (`first`, from `first_tried`), whichever is latest."""
    return max(n.created_at, n.asked_at or n.created_at, first or n.created_at)


def given_up_with(n: Notification, first: datetime | None, merged: Sequence[Notification],
                  firsts: Mapping[str, datetime | None], at: datetime, give_up: timedelta,
                  ) -> tuple[bool, list[Notification]]:
    """Which rows of a failed message, led by `n`, are given up on if retried at `at`: whether `n` is (its window,
    from `window_start`, ends by then), and which rows it `merged` (`firsts`: each one's `first_tried`). A merged row
    whose own window ends is, whichever row leads (a row re-sent on request leading the retry does not keep the others
    past theirs); given `n` up on, so is every merged row not re-sent on request (it shares the message's fate), but a
    re-sent one whose own window still runs is retried on."""
    def ends(m: Notification, f: datetime | None) -> bool:
        return at > window_start(m, f) + give_up

    lead = ends(n, first)
    return lead, [m for m in merged if ends(m, firsts[m.id]) or (lead and m.asked_at is None)]


def noted(error: str, first: datetime | None) -> str:
    """A failed attempt's error as the row keeps it: after the first try's time when there is one."""
    return error if first is None else f"{FIRST_TRIED_NOTE.format(first.isoformat())} {error}"

"""How the scheduler logs the runs that did not happen: an overrun once an hour per pair, and the runs a pause passed
over (the event loop blocked, the process frozen, the host suspended) as one line for the whole wake-up however many
pairs it touched, each pair's own at debug level. llm_monitor_runs_skipped_total counts every run either way.

APScheduler 3 reaches every due job of a wake-up in one synchronous pass, so the runs missed in it are gathered and
logged by a callback queued on the event loop, which runs once the pass is over. Runs started past their grace time
(reported as their jobs' tasks start, after the pass) are gathered the same way: one more line at most.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from datetime import datetime

from monitor.domain import RUN_MISSED as MISSED
from monitor.domain import RUN_OVERRUN as OVERRUN
from monitor.durations import format_duration

log = logging.getLogger("monitor.scheduler")

_EVERY_S = 3600.0  # a warning per pair and reason an hour at most; the counter has every run
_EXAMPLES = 3  # pairs named in a wake-up's line
_OVERRUN_HINT = ("the previous run of this pair was still going: lengthen schedule.every, lower samples or timeouts, "
                 "or raise the target's max_concurrency")
_MISSED_HINT = ("the daemon was blocked (or its host suspended) past the runs' times: after such a pause each pair "
                "runs once, not once for every run that fell due meanwhile")

Pair = tuple[str, str]  # (canary, target)


class SkipLog:
    """The scheduler's lines about skipped runs, each pair warned of at most once an hour per reason."""

    def __init__(self, now: Callable[[], datetime]):
        self._now = now
        self._last_warned: dict[tuple[str, str], float] = {}  # (job id, reason) -> when
        self._wake: dict[str, tuple[Pair, int]] = {}  # job id -> its pair and runs missed, this wake-up
        self._first_due: datetime | None = None  # the earliest of them

    def _due(self, jid: str, reason: str, at: float) -> bool:
        return at - self._last_warned.get((jid, reason), -math.inf) >= _EVERY_S

    def overrun(self, jid: str, pair: Pair) -> None:
        at = self._now().timestamp()
        if self._due(jid, OVERRUN, at):
            self._last_warned[(jid, OVERRUN)] = at
            log.warning("scheduled run skipped: %s (logged once an hour per pair and reason; "
                        "llm_monitor_runs_skipped_total counts each)", _OVERRUN_HINT,
                        extra={"canary": pair[0], "target": pair[1], "reason": OVERRUN, "runs": 1})

    def missed(self, jid: str, pair: Pair, runs: int, first_due: datetime) -> None:
        """Note `runs` run times of a pair missed, the earliest due by `first_due` (the pause began by then, its jitter
        included); log them with the wake-up's."""
        log.debug("scheduled runs missed", extra={"canary": pair[0], "target": pair[1], "reason": MISSED,
                                                  "runs": runs, "first_due": first_due.isoformat()})
        opened = not self._wake
        self._wake[jid] = (pair, self._wake.get(jid, (pair, 0))[1] + runs)
        self._first_due = first_due if self._first_due is None else min(self._first_due, first_due)
        if opened:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # not on a loop: no pass to wait for
                self.flush()

    def flush(self) -> None:
        """Log the runs missed since the last flush in one line, unless every pair in it was warned of this hour."""
        wake, first_due = self._wake, self._first_due
        self._wake, self._first_due = {}, None
        now = self._now()
        at = now.timestamp()
        if first_due is None or not any(self._due(jid, MISSED, at) for jid in wake):
            return
        for jid in wake:
            self._last_warned[(jid, MISSED)] = at
        runs = sum(n for _, n in wake.values())
        pause_s = max(0.0, (now - first_due).total_seconds())
        examples = list(wake)[:_EXAMPLES]
        log.warning("scheduled runs missed after a pause of at least %s: %s pair%s, %s run time%s in all (%s%s); %s "
                    "(each pair's at debug level; logged once an hour per pair; llm_monitor_runs_skipped_total "
                    "counts each)", format_duration(round(pause_s)), f"{len(wake):,}", "" if len(wake) == 1 else "s",
                    f"{runs:,}", "" if runs == 1 else "s", ", ".join(examples), ", ..." if len(wake) > len(examples) else "",
                    _MISSED_HINT, extra={"reason": MISSED, "pairs": len(wake), "runs": runs,
                                         "pause_s": round(pause_s, 3), "examples": examples})

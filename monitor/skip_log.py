"""How the scheduler logs the runs that did not happen: the overruns (the pair's previous run still going) and the
runs a pause passed over (the event loop blocked, the process frozen, the host suspended) of a wake-up, each reason as
one line however many pairs it touched, each pair's own at debug level; a pair is warned of at most once an hour per
reason. llm_monitor_runs_skipped_total counts every run either way.

APScheduler 3 reaches every due job of a wake-up in one synchronous pass, so the runs skipped in it are gathered and
logged by a callback queued on the event loop, which runs once the pass is over. Runs started past their grace time
(reported as their jobs' tasks start, after the pass) are gathered the same way: one more line at most.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from datetime import datetime

from monitor.counted import counted
from monitor.domain import RUN_MISSED as MISSED
from monitor.domain import RUN_OVERRUN as OVERRUN
from monitor.durations import format_duration

log = logging.getLogger("monitor.scheduler")

_EVERY_S = 3600.0  # a warning per pair and reason an hour at most; the counter has every run
_EXAMPLES = 3  # pairs named in a wake-up's line
_OVERRUN_HINT = ("the previous run of each was still going: lengthen schedule.every, lower samples or timeouts, "
                 "or raise the target's max_concurrency")
_MISSED_HINT = ("the daemon was blocked (or its host suspended) past the runs' times: after such a pause each pair "
                "runs once, not once for every run that fell due meanwhile")

_TAIL = "each pair's at debug level; logged once an hour per pair; llm_monitor_runs_skipped_total counts each"

Pair = tuple[str, str]  # (canary, target)


class SkipLog:
    """The scheduler's lines about skipped runs, each pair warned of at most once an hour per reason."""

    def __init__(self, now: Callable[[], datetime]):
        self._now = now
        self._last_warned: dict[tuple[str, str], float] = {}  # (job id, reason) -> when
        self._overruns: dict[str, Pair] = {}  # job id -> its pair, overrun this wake-up
        self._wake: dict[str, tuple[Pair, int]] = {}  # job id -> its pair and runs missed, this wake-up
        self._first_due: datetime | None = None  # the earliest of them

    def _due(self, jid: str, reason: str, at: float) -> bool:
        return at - self._last_warned.get((jid, reason), -math.inf) >= _EVERY_S

    def keep(self, jids: set[str]) -> None:
        """Forget the jobs not in `jids` (removed, or renamed by a reload)."""
        self._last_warned = {key: at for key, at in self._last_warned.items() if key[0] in jids}

    def _opened(self) -> None:
        """The first skip of a wake-up: log the wake-up's once its pass is over."""
        try:
            asyncio.get_running_loop().call_soon(self.flush)
        except RuntimeError:  # not on a loop: no pass to wait for
            self.flush()

    def overrun(self, jid: str, pair: Pair) -> None:
        """Note a run of a pair skipped, its previous run still going; log it with the wake-up's."""
        log.debug("scheduled run skipped", extra={"canary": pair[0], "target": pair[1], "reason": OVERRUN, "runs": 1})
        opened = not self._overruns and not self._wake
        self._overruns[jid] = pair
        if opened:
            self._opened()

    def missed(self, jid: str, pair: Pair, runs: int, first_due: datetime) -> None:
        """Note `runs` run times of a pair missed, the earliest due by `first_due` (the pause began by then, its jitter
        included); log them with the wake-up's."""
        log.debug("scheduled runs missed", extra={"canary": pair[0], "target": pair[1], "reason": MISSED,
                                                  "runs": runs, "first_due": first_due.isoformat()})
        opened = not self._overruns and not self._wake
        self._wake[jid] = (pair, self._wake.get(jid, (pair, 0))[1] + runs)
        self._first_due = first_due if self._first_due is None else min(self._first_due, first_due)
        if opened:
            self._opened()

    def _warn(self, jids: list[str], reason: str, at: float) -> list[str] | None:
        """The examples to name if the line for `jids` is due (a pair in it not warned of this hour), else None."""
        if not any(self._due(jid, reason, at) for jid in jids):
            return None
        for jid in jids:
            self._last_warned[(jid, reason)] = at
        return jids[:_EXAMPLES]

    def flush(self) -> None:
        """Log the runs skipped since the last flush, a line per reason, unless every pair in it was warned of this
        hour."""
        overruns, wake, first_due = list(self._overruns), self._wake, self._first_due
        self._overruns, self._wake, self._first_due = {}, {}, None
        now = self._now()
        at = now.timestamp()
        examples = self._warn(overruns, OVERRUN, at)
        if examples is not None:
            log.warning("scheduled runs skipped: %s (%s); %s (%s)", counted(len(overruns), "pair"),
                        _listed(examples, len(overruns)), _OVERRUN_HINT, _TAIL,
                        extra={"reason": OVERRUN, "pairs": len(overruns), "runs": len(overruns),
                               "examples": examples})
        examples = self._warn(list(wake), MISSED, at)
        if first_due is None or examples is None:
            return
        runs = sum(n for _, n in wake.values())
        pause_s = max(0.0, (now - first_due).total_seconds())
        log.warning("scheduled runs missed after a pause of at least %s: %s, %s in all (%s); %s (%s)",
                    format_duration(round(pause_s)), counted(len(wake), "pair"), counted(runs, "run time"),
                    _listed(examples, len(wake)), _MISSED_HINT, _TAIL,
                    extra={"reason": MISSED, "pairs": len(wake), "runs": runs, "pause_s": round(pause_s, 3),
                           "examples": examples})


def _listed(examples: list[str], total: int) -> str:
    """The pairs named, with `, ...` when there are more."""
    return ", ".join(examples) + (", ..." if total > len(examples) else "")

"""An observation's drift signals, stored once computed; kept in memory while the store refuses them.

The signals are computed once (an embeddings call may cost) and stored on the observation's row, for analysis
outside the daemon; a held alert's release counts the answers since a recovery by the rows whose signals are
stored (monitor.alerts.recovery). A write the store refused (a lock held past its timeout, a full disk, a
fail-over) was logged and lost: the row stayed without signals for good, and an outage's held pages waited for
answers that never counted. Now they wait here, oldest first, and are written before the next observation's, at
the 30-second upkeep and at shutdown. Bounded: past `MAX_WAITING` the oldest are let go, said in one line per
outage (a store refusing for hours; the observations themselves are in the store).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from monitor.drift_writes import failed

log = logging.getLogger("monitor.analysis")

MAX_WAITING = 10_000  # signals waiting for the store (a few KB each at most): past it the oldest are let go


class SignalWrites:
    """Stores observations' signals in order, keeping those the store refused for the next try."""

    def __init__(self, save: Callable[[str, dict[str, Any]], None], max_waiting: int = MAX_WAITING):
        self._save = save
        self.max_waiting = max_waiting
        self.waiting: dict[str, dict[str, Any]] = {}  # observation id -> its signals, oldest first
        self.let_go = 0  # signals never stored: past `max_waiting` while the store refused
        self._said = False  # this outage's "let go" line is logged

    def write(self, obs_id: str, signals: dict[str, Any]) -> bool:
        """Store `signals` of an observation after those still waiting; on a store error they all wait (logged,
        not raised). Return whether nothing waits any more."""
        self.waiting[obs_id] = signals
        if len(self.waiting) > self.max_waiting:
            self._let_go(len(self.waiting) - self.max_waiting)
        return self.retry(obs_id)

    def retry(self, obs_id: str | None = None) -> bool:
        """Write the signals waiting, oldest first; return whether nothing waits any more. `obs_id`: the
        observation analysed now, named in the log line if the store refuses."""
        written = 0
        for key, signals in list(self.waiting.items()):
            try:
                self._save(key, signals)
            except Exception as e:
                failed(e, "storing the signals of observation %s failed; %d wait in memory and are written with "
                          "the next analysis", obs_id or key, len(self.waiting))
                break
            del self.waiting[key]
            written += 1
        if written and not self.waiting and (written > 1 or obs_id is None):
            log.info("signals the store refused are stored", extra={"observations": written})
        if not self.waiting:
            self._said = False
        return not self.waiting

    def _let_go(self, n: int) -> None:
        for key in list(self.waiting)[:n]:
            del self.waiting[key]
        self.let_go += n
        if not self._said:  # once per outage
            self._said = True
            log.error("the store has refused signals for too long: the oldest are let go past %d waiting (their "
                      "observations are stored, without their signals)", self.max_waiting,
                      extra={"let_go": self.let_go})

"""Runs a process left `running` when it died (`kill -9`, a crash, a lost host): closed as `interrupted`.

A run is stored as `running` when it starts and as done (or cancelled) when it ends, so a crash mid-run leaves a
record rather than nothing; but nobody would ever end that record. The replica that takes the lead (the daemon
starting, on SQLite) ends them: the runs still `running` that started before it took the leader lock are no
one's but a process that stopped, and so are those another replica started (told by their replica: its host's
clock may run ahead of this one's, stamping them later than the take-over). Not at once: on PostgreSQL a leader
whose session the server ended may still be alive and finishing its runs in flight, until it notices (two lock
checks) and has shut down (the grace period, then its unsaved writes' grace). So they are closed once that much
time has passed; a run closed so that its process finishes after all (a process frozen and thawed) is then stored
as that process ends it, done or cancelled, since its last write replaces the record. Runs that started after the
lock was taken are this replica's own, and never touched.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from monitor.errors import MonitorError
from monitor.store import Store

log = logging.getLogger("monitor.interrupted")
RETRY_FIRST_S = 0.5  # the store's other retries' backoff (held writes): 0.5 s doubling to 30 s
RETRY_MAX_S = 30.0


async def close_interrupted(store: Store, taken_at: datetime, after_s: float,
                            leading: Callable[[], Awaitable[bool]], replica: str | None = None, *,
                            retry_s: float = RETRY_FIRST_S) -> int:
    """After `after_s`, while still `leading` (the lock confirmed: a leader waking from a freeze must not close the
    runs the replica that took over has in flight), close the runs left `running` that started before `taken_at`
    (when this replica took the lead) or by another `replica` than this one (whose host's clock may run ahead);
    return how many were closed. A store that fails the update (a lock held past lock_timeout, a full disk) is
    asked again, `retry_s` doubling to RETRY_MAX_S, for as long as this replica leads: once was all it got, and
    the runs then stayed `running` until the next take-over, which may be months away."""
    await asyncio.sleep(after_s)
    delay, told = retry_s, False
    while await leading():
        try:
            n = await asyncio.to_thread(store.close_interrupted, taken_at, replica)
        except MonitorError as e:
            if not told:
                log.error("%s (tried again until the store answers)", e)
                told = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
            continue
        if n:
            log.warning("closed runs left running by a process that stopped without finishing them: status "
                        "interrupted", extra={"runs": n, "started_before": taken_at.isoformat()})
        return n
    return 0

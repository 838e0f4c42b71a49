"""The leader's periodic upkeep beside the schedule: pruning past retention, and catching up with the store.

Both loops start when a replica takes the lead (with the schedule) and are cancelled at stop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from monitor.alerts import Alerting
from monitor.analysis import Analysis
from monitor.errors import MonitorError
from monitor.store import Store
from monitor.store.repository import driver_message

log = logging.getLogger("monitor.app")  # the daemon's own lines, beside its start-up and reload
BASELINE_POLL_S = 30.0
PRUNE_INTERVAL_S = 3600


async def prune_past_retention(store: Store, alerting: Alerting | None, retention_days: Callable[[], float],
                               now: Callable[[], datetime]) -> None:
    """Prune observations and alert outbox rows past retention hourly (`retention_days` as a reload left it)."""
    while True:
        try:
            cutoff = now() - timedelta(days=retention_days())
            removed = await asyncio.to_thread(store.prune, cutoff)
            if alerting is not None:
                await asyncio.to_thread(alerting.outbox.prune, cutoff)
            if removed:
                log.info("pruned observations past retention", extra={"removed": removed})
        except MonitorError as e:
            log.error("%s", e)
        except SQLAlchemyError as e:  # the outbox's: a store away or a lock timeout ended the loop for good
            log.error("pruning the alert outbox failed: %s", driver_message(e))
        await asyncio.sleep(PRUNE_INTERVAL_S)


async def watch_baselines(analysis: Analysis, alerting: Alerting | None) -> None:
    """Pick up baselines accepted or reset from the CLI (or by a replica) within BASELINE_POLL_S (30 s); write
    drift event updates a store error held back even when no observation comes to carry them; let go of open events
    the store has ended meanwhile (an old leader's end written after this replica took over)."""
    away = False  # the store failed the last poll: said once per outage, not with a traceback every 30 s
    while True:
        await asyncio.sleep(BASELINE_POLL_S)
        try:
            # events a store error held back
            if await analysis.in_worker(analysis.retry_unwritten) and alerting is not None:
                alerting.sender.wake()
            changed = await analysis.in_worker(analysis.refresh_baselines)
            if changed:
                log.info("baselines refreshed from the store", extra={"changed": changed})
            await analysis.in_worker(analysis.close_ended)
        except (MonitorError, SQLAlchemyError) as e:
            if not away:
                why = driver_message(e) if isinstance(e, SQLAlchemyError) else str(e)
                log.error("refreshing baselines from the store failed (tried again every %g s): %s", BASELINE_POLL_S,
                          why)
            away = True
            continue
        except Exception:
            log.exception("refreshing baselines failed")
            continue
        if away:
            log.info("refreshing baselines from the store works again")
            away = False

"""The answers a canary x target has had since a sink was told it recovered, counted from the store.

After ``canary.recovered`` a held ``drift.opened`` on ``error`` waits until the pair has answered as many calls as
its event needs to resolve at the baseline rate (see monitor.alerts.inhibit). Counted in memory, a restart or a
standby taking over started that count again (a longer hold); counted here, from the observations stored since the
recovery row was written, every replica counts the same.

One statement a look: a range scan of ix_obs_pair_time over the pair's calls since the recovery (at most the
answers the event needs, with the failures among them). `llm-monitor probe`'s calls (a manual run) are left out:
the daemon's drift analysis never sees them, so they do not move the event's chart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import exists, func
from sqlalchemy import select as sa_select
from sqlmodel import col

from monitor.store.tables import ObservationRow, RunRow


def answers_since(session: Any, canary: str, target: str, since: datetime, through: datetime | None = None) -> int:
    """How many calls of the pair answered (no error) that started at or after `since` (the recovery row's time)
    and, given `through` (the start of the call being analysed: those after it are not analysed yet), not after it."""
    o = ObservationRow
    q = (sa_select(func.count()).select_from(o)
         .where(col(o.canary) == canary, col(o.target) == target, col(o.started_at) >= since,
                col(o.error_type).is_(None),
                ~exists().where(col(RunRow.id) == col(o.run_id), col(RunRow.trigger) == "manual")))
    if through is not None:
        q = q.where(col(o.started_at) <= through)
    return int(session.execute(q).scalar_one())

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


def answers_since(session: Any, canary: str, target: str, since: datetime) -> int:
    """How many calls of the pair answered (no error) that started at or after `since` (the recovery row's time)
    and that the drift analysis has analysed (their signals stored before its look). Not bounded by the start of
    the call analysed: a run's samples are analysed in the order they finish, and a bound on start times counted
    calls started earlier but not analysed yet and left out later ones analysed already (the count jumped past the
    answers seen, and a look between answers skipped the one that made as many as the event needs)."""
    o = ObservationRow
    q = (sa_select(func.count()).select_from(o)
         .where(col(o.canary) == canary, col(o.target) == target, col(o.started_at) >= since,
                col(o.error_type).is_(None), col(o.signals).is_not(None),
                ~exists().where(col(RunRow.id) == col(o.run_id), col(RunRow.trigger) == "manual")))
    return int(session.execute(q).scalar_one())

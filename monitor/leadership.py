"""Leading and standing by: what a replica does with the store's leader lock (the lock itself: store/leader.py).

At start the daemon takes the lock and leads, or stands by and tries for it every `leader_poll_s`. Taking over
seeds the app's state from the store and starts alerting, analysis, the schedule and the leader's upkeep. The
leader confirms its lock every `leader_check_s` and before every run; once it is lost the replica stops acting at
once and the daemon exits 1 (its supervisor restarts it, as a standby).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy.exc import SQLAlchemyError

from monitor.alerts import build_alerting
from monitor.config.digest import config_digest
from monitor.config.timing import every_s
from monitor.errors import MonitorError, StoreError
from monitor.interrupted import close_interrupted
from monitor.restore import restore_pair_gauges
from monitor.store.repository import driver_message
from monitor.unsaved import UNSAVED_GRACE_S
from monitor.upkeep import prune_past_retention, watch_baselines

if TYPE_CHECKING:
    from monitor.app import App

log = logging.getLogger("monitor.app")  # lines about leading are the app's, where operators look for them
R = TypeVar("R")
ALERT_BATCH = 3
LEADER_POLL_S = 5.0  # how often a standby tries for the leader lock
# How often the leader checks it still holds the lock (a SELECT 1 on its lock session). A run starts only on a lock
# confirmed within two checks, and a standby that takes a lock a session held waits that long before it probes: a
# leader whose session the server ended has stopped starting runs by then, so the two never start runs together.
LEADER_CHECK_S = 1.0
# A leader's lock session that answered none of those checks for this long (a frozen or stalled process, which keeps
# its session and so the lock) is ended by a standby, which then takes over (PostgreSQL; see leader.py)
LEADER_LEASE_S = 30.0
# Replicas compare times each wrote by its own clock (an alert outbox row's claim, ~35 s, is one: a standby whose
# clock runs that far ahead sends rows the old leader, still stopping, has claimed): a take-over warns past this skew
CLOCK_SKEW_WARN_S = 5.0


class Succession:
    """Which replica acts, and the hand-over: this app's part in the store's leadership.

    It takes the lead at start or waits for it as a standby, takes over, confirms the lock before every run and
    gives up acting when the lock is lost. It works on `app` (its lock `app.leadership`, its `leading` and
    `leadership_lost`, its timings `leader_poll_s`, `leader_check_s` and `interrupted_after_s`) and owns the tasks
    it starts: the standby's wait for the lock, the leader's checks of it, and the loops that run while leading.
    """

    def __init__(self, app: App):
        self.app = app
        self.standing_by = False  # a started standby: ready, though it schedules nothing
        self.lock_in_use = False  # leading on the store's leader lock (not `probe`, tests without a schedule)
        self.interrupted_task: asyncio.Task[int] | None = None
        self._leader_task: asyncio.Task[None] | None = None  # a standby's wait for the lock (and its take-over)
        self._watch_task: asyncio.Task[None] | None = None  # the leader's checks of its lock
        self._housekeeping: asyncio.Task[None] | None = None
        self._baselines_task: asyncio.Task[None] | None = None
        self._lock_check: asyncio.Future[bool] | None = None  # the one check of the leader lock in flight
        # The lock's calls (try, check, release) on a thread of their own, one at a time: behind asyncio.to_thread's
        # few workers (code_runs checks, judge calls, slow store writes), a busy leader's checks waited past the
        # lease and a standby ended its session
        self._lock_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="leader-lock")

    async def start(self, *, schedule: bool) -> None:
        """Lead (on the lock when `schedule`, without one for `probe` and tests) or start standing by."""
        app = self.app
        if schedule:  # a pooler in transaction mode: the lock could not be kept (StoreError: `cannot start: ...`)
            await self._on_lock_thread(app.leadership.refuse_shared_sessions)
        if not schedule:
            await self._lead_at_start(schedule=False)
        elif await self._on_lock_thread(app.leadership.try_acquire):
            self._watch_lock()
            await self._lead_at_start(schedule=True)
        else:
            log.info("standby: another replica holds the leader lock; taking over when it frees",
                     extra={"store": app.store.safe_url})
            self.standing_by = True
            self._leader_task = asyncio.create_task(self._await_leadership())

    async def _lead_at_start(self, *, schedule: bool) -> None:
        """Lead at start; a take-over that fails (a store error, a secret) gives the lock up and raises a
        MonitorError, which stops the start with one line (`cannot start: ...`), as the store's schema check does."""
        try:
            await self.lead(schedule=schedule)
        except (MonitorError, SQLAlchemyError) as e:
            # the outbox's and the restore's reads raise SQLAlchemy's own (a lock timeout, a fail-over): not a traceback
            self.app.leading = False
            self.app.metrics.leader.set(0)
            if self._watch_task is not None:
                self._watch_task.cancel()
            await self._on_lock_thread(self.app.leadership.release)  # the next replica to start leads
            if isinstance(e, MonitorError):
                raise
            raise StoreError(f"reading the store at {self.app.store.shown} to take the lead failed: "
                             f"{driver_message(e)}") from e

    async def lead(self, *, schedule: bool) -> None:
        """Become the acting replica: seed state from the store, start alerting, analysis and the schedule."""
        async with self.app.reload_lock:  # a reload waits, so the schedule starts from the config in force
            await self._take_over(schedule=schedule)
        self.standing_by = False

    async def _take_over(self, *, schedule: bool) -> None:
        app = self.app
        taken = app.now()  # runs started before are other processes'; this one's start once the schedule does
        app.leading = True
        app.metrics.leader.set(1)
        app.declare()
        await self._check_clock()
        # paused first: the streak and last-success gauges restored next are read by rules gated on it
        await asyncio.to_thread(app.runner.spend.read_today, list(app.config.targets))
        streaks = await asyncio.to_thread(restore_pair_gauges, app.store, app.metrics, app.config)
        app.health.seed_streaks(streaks)
        await app.quality.calibrate_judge(app.config)
        # writes of what analysis and alerting find go only on a lock confirmed within 1.5 checks: a new leader loads
        # the open events (and alerts) two checks after it took the lock, so a write that began in time has half a
        # check to commit
        def confirmed() -> bool:
            return not self.lock_in_use or app.leadership.confirmed_within(1.5 * app.leader_check_s)

        if app.analyse:
            # A row claimed by a process that then dies waits out its lease: keep batches small and the lease
            # just long enough for one batch to time out, so a crashed daemon's rows go out soon after restart.
            slowest = max((sink.timeout for sink in app.config.alerts.sinks), default=10.0)
            app.alerting = build_alerting(app.config.alerts, app.store, environ=app.environ, metrics=app.metrics,
                                          now=app.now, batch=ALERT_BATCH, lease=ALERT_BATCH * slowest + 5.0)
            app.alerting.pending.confirmed = confirmed
            if app.leadership_lost.is_set():  # lost earlier in the take-over: `_lost_leadership` had none to fence
                app.alerting.pending.fence()
                app.alerting.sender.fence()
            app.alerting.inhibitor.seed_failing(streaks, streaks)  # before the events fired again below
            await app.alerting.start([(c.id, t.id) for c, t in app.config.pairs()], app.configured_checks())
            app.health.seed_down(await asyncio.to_thread(app.alerting.open_pairs, "canary.down"))
            await app.page_down_pairs()  # a sink configured or routed to a pair since it went down is told it is
        if app.analysis is not None:
            app.analysis.alerting = app.alerting
            app.analysis.confirmed = confirmed
            app.analysis.engine.embed = app.own_calls.embedder(app.config)  # SecretError: a clear start error
            app.analysis.engine.set_zero_tolerance({c.id: c.zero_tolerance for c in app.config.canaries})
            pairs = [(c.id, t.id) for c, t in app.config.pairs()]
            await asyncio.to_thread(app.analysis.restore, pairs)
            app.analysis.declare(pairs)
            if app.alerting is not None:  # events left open while their canary was removed, or sinks added
                await app.alerting.ensure_firing(
                    await app.analysis.in_worker(app.analysis.open_alert_events, set(pairs)))
            app.runner.listeners.append(app.analysis.on_observation)
        if app.leadership_lost.is_set():  # lost since the lock was taken: no schedule, the daemon stops
            app.leading = False
            app.metrics.leader.set(0)
            return
        if schedule:
            app.scheduler.apply(app.config, last_runs=await self._last_runs())
            app.scheduler.start()
            self._housekeeping = asyncio.create_task(prune_past_retention(
                app.store, app.alerting, lambda: app.config.storage.retention_days, app.now))
            if app.analysis is not None:
                self._baselines_task = asyncio.create_task(watch_baselines(app.analysis, app.alerting))
            if self.lock_in_use:
                self.interrupted_task = asyncio.create_task(close_interrupted(
                    app.store, taken, self.interrupted_after(), self.still_leading, app.runner.replica))

    async def _last_runs(self) -> dict[tuple[str, str], datetime]:
        """The last scheduled run of each `every` pair within its interval, so the schedule goes on where the
        process before left it (a store that fails the read: every pair starts afresh, as it did)."""
        app = self.app
        longest = max((every_s(c.schedule) for c in app.config.canaries if c.schedule.cron is None), default=0.0)
        if longest <= 0:
            return {}
        try:
            return await asyncio.to_thread(app.store.last_scheduled_runs, app.now() - timedelta(seconds=longest))
        except (StoreError, SQLAlchemyError) as e:
            why = driver_message(e) if isinstance(e, SQLAlchemyError) else str(e)
            log.warning("cannot read the last scheduled runs back: every canary starts its schedule afresh (%s)", why)
            return {}

    async def _check_clock(self) -> None:
        """Warn when this host's clock is off the store's (PostgreSQL's): replicas' claims and times assume one."""
        app = self.app
        if not self.lock_in_use:  # `probe`, tests without a schedule: no other replica to agree with
            return
        offset = await asyncio.to_thread(app.store.clock_offset, app.now)
        if offset is not None and abs(offset) > CLOCK_SKEW_WARN_S:
            log.warning("this host's clock is %.0f s %s the store's: replicas compare times each wrote by its own "
                        "clock (a notification one has claimed for ~35 s is sent again by another whose clock runs "
                        "that far ahead); keep the hosts in sync with NTP", abs(offset), "ahead of" if offset > 0 else "behind",
                        extra={"clock_offset_s": round(offset, 1), "store": app.store.safe_url})

    def interrupted_after(self) -> float:
        """How long after taking the lead the runs an earlier process left running are closed (see interrupted.py):
        an old leader whose session the server ended stops within two lock checks, gives its calls in flight the
        grace period, and its held writes UNSAVED_GRACE_S (those it stores later, up to LOST_LEAD_UNSAVED_S when the
        store was away, end their runs as it stores them: done or cancelled)."""
        app = self.app
        if app.interrupted_after_s is not None:
            return app.interrupted_after_s
        return 2 * app.leader_check_s + app.config.daemon.grace_period + UNSAVED_GRACE_S + 5.0

    async def _await_leadership(self) -> None:
        """As a standby: try for the leader lock every `leader_poll_s`; lead once it is ours."""
        app = self.app
        while not await self._on_lock_thread(app.leadership.try_acquire):
            await asyncio.sleep(app.leader_poll_s)
        self._watch_lock()
        if app.leadership.session_bound:
            # The server may have freed the lock by ending the old leader's session (pg_terminate_backend, a
            # restart of the pooler) while that leader still runs: it stops starting runs within two checks.
            await asyncio.sleep(2 * app.leader_check_s)
        log.warning("this replica now leads (the previous leader stopped or lost the store)",
                    extra={"config_digest": config_digest(app.config)})
        try:
            await self.lead(schedule=True)
        except Exception as e:  # not only MonitorError: the outbox's reads raise SQLAlchemy's (a lock timeout)
            # leading nothing on the lock would keep every replica from leading: give it up (the daemon exits 1)
            why = driver_message(e) if isinstance(e, SQLAlchemyError) else str(e)
            log.error("cannot take over as leader: %s", why, exc_info=not isinstance(e, MonitorError | SQLAlchemyError))
            app.leading = False
            app.metrics.leader.set(0)
            app.leadership_lost.set()

    def _watch_lock(self) -> None:
        """Start confirming the lock just taken, before taking over: a take-over can outlast the lease (a refusal
        judge's calibration set, a large store's restore), and a lock session without checks that long is ended by a
        standby as a frozen leader's."""
        self.lock_in_use = True
        self._watch_task = asyncio.create_task(self._watch_leadership())

    def _on_lock_thread(self, call: Callable[[], R]) -> asyncio.Future[R]:
        return asyncio.get_running_loop().run_in_executor(self._lock_thread, call)

    async def _watch_leadership(self) -> None:
        """As the leader: check every `leader_check_s` that the lock is still ours; if not, stop acting at once."""
        while await self.check_lock():
            await asyncio.sleep(self.app.leader_check_s)
        self._lost_leadership()

    async def check_lock(self) -> bool:
        """Ask the store whether the leader lock is still ours; callers at the same time share one check."""
        if self._lock_check is None or self._lock_check.done():
            self._lock_check = self._on_lock_thread(self.app.leadership.still_held)
        return await asyncio.shield(self._lock_check)

    async def still_leading(self) -> bool:
        """Whether a scheduled run may start. The watch confirms the lock every `leader_check_s`; when that is
        overdue (the process was stopped, its VM frozen, its event loop stalled), the jobs that fell due meanwhile
        fire at once on waking, before the watch has looked, while the server may have freed the lock and a
        standby taken over: they confirm it first, so the two never probe at once."""
        app = self.app
        if not self.lock_in_use:  # `probe`, tests without a schedule
            return app.leading
        if app.leadership.confirmed_within(2 * app.leader_check_s):
            return True
        if await self.check_lock():
            return True
        self._lost_leadership()
        return False

    def _lost_leadership(self) -> None:
        app = self.app
        if app.leadership_lost.is_set():
            return
        log.error("lost the leader lock (the store connection broke): stopping so a standby can take over")
        if app.analysis is not None:
            app.analysis.fence()  # the runs in flight are still analysed during the shutdown: nothing is stored
        if app.alerting is not None:
            app.alerting.pending.fence()  # nor are the alert messages waiting for the store
            app.alerting.sender.fence()  # nor is the outbox sent from: the next leader sends it
        app.scheduler.pause()
        app.leading = False
        app.metrics.leader.set(0)
        app.leadership_lost.set()

    def stop_acting(self) -> None:
        """At shutdown: end the loops that run while leading and a standby's wait for the lock. The leader's watch
        goes on confirming the lock until `release` (the analyses still to be written need a confirmed lock)."""
        for task in (self._housekeeping, self._baselines_task, self._leader_task, self.interrupted_task):
            if task is not None:
                task.cancel()

    async def release(self) -> None:
        """At the end of shutdown: stop checking the lock and give it up, so a standby takes over at its next try."""
        if self._watch_task is not None:
            self._watch_task.cancel()
        await self._on_lock_thread(self.app.leadership.release)
        self._lock_thread.shutdown(wait=False)

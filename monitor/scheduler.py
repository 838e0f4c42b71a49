"""When canaries run: one APScheduler 3 job per canary x target, coalesced, with jitter and a spread start."""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta

from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger

from monitor.config.loader import Config
from monitor.config.models import Canary, Schedule, Target
from monitor.config.timing import cron_trigger, every_s, period_s
from monitor.domain import RUN_MISSED, RUN_OVERRUN
from monitor.fire_grid import PassedRuns, SteadyInterval
from monitor.skip_log import SkipLog

RunFn = Callable[[Canary, Target], Awaitable[object]]
SkipFn = Callable[[str, str, str, int], None]  # (canary, target, reason, runs)


class _QuietSkips(logging.Filter):
    """Drop APScheduler's own lines for skipped and missed runs: the daemon logs them in its own format."""

    _TEMPLATES = ('Execution of job "%s" skipped', 'Run time of job "%s" was missed')

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(self._TEMPLATES))


for _name in ("apscheduler.scheduler", "apscheduler.executors.default"):
    logging.getLogger(_name).addFilter(_QuietSkips())


def job_id(canary: str, target: str) -> str:
    return f"{canary}@{target}"


def first_delay(jid: str, interval: float, max_delay: float) -> float:
    """Spread first runs deterministically over min(interval, max_delay) so a start is not a burst."""
    window = min(interval, max_delay)
    return (zlib.crc32(jid.encode()) % 1000) / 1000.0 * window if window > 0 else 0.0


def make_trigger(canary: Canary, start: datetime) -> BaseTrigger:
    s = canary.schedule
    jitter = int(s.jitter_s) or None
    if s.cron is not None:
        return cron_trigger(s.cron, jitter)
    return SteadyInterval(seconds=every_s(s), start_date=start, timezone=UTC, jitter=jitter)


class Scheduler:
    """Owns the APScheduler instance; (re)builds the job set from a config."""

    def __init__(self, run: RunFn, *, now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 on_skip: SkipFn | None = None):
        self._run = run
        self._now = now
        self._on_skip = on_skip
        self._pairs: dict[str, tuple[str, str]] = {}
        self._schedules: dict[str, Schedule] = {}  # job id -> the schedule its job was made from
        self._skip_log = SkipLog(now)
        self._passed = PassedRuns()  # the run times APScheduler drops when it coalesces a late job
        self._sched = AsyncIOScheduler(executors={"default": AsyncIOExecutor()}, timezone=UTC,
                                       job_defaults={"coalesce": True, "max_instances": 1})
        self._sched.add_listener(self._reached, EVENT_JOB_SUBMITTED | EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)

    def _reached(self, event: JobEvent) -> None:
        """Count the scheduled runs that did not happen as APScheduler reaches a run (on the event loop).

        Submitted, skipped as an overrun or missed past its grace time: each event stands for one run time (jobs are
        coalesced), and the schedule's run times before it that no event stood for were dropped by the coalescing
        (a pause of the loop or the process): they count as missed."""
        pair = self._pairs.get(event.job_id)
        if pair is None:
            return
        if isinstance(event, JobSubmissionEvent):
            at = event.scheduled_run_times[-1]
        else:
            assert isinstance(event, JobExecutionEvent)
            at = event.scheduled_run_time
        passed, first_due = self._passed.reach(event.job_id, at)
        if passed:
            self._count(pair, RUN_MISSED, passed)
        if event.code == EVENT_JOB_MAX_INSTANCES:
            self._count(pair, RUN_OVERRUN, 1)
            self._skip_log.overrun(event.job_id, pair)
        elif event.code == EVENT_JOB_MISSED:
            self._count(pair, RUN_MISSED, 1)
        missed = passed + (event.code == EVENT_JOB_MISSED)
        if missed:  # logged with the other pairs of this wake-up, in one line
            if first_due is not None:  # its time without jitter: it fell due up to the jitter later (the pause's start)
                schedule = self._schedules.get(event.job_id)
                first_due += timedelta(seconds=schedule.jitter_s if schedule is not None else 0.0)
            self._skip_log.missed(event.job_id, pair, missed, first_due or at)

    def _count(self, pair: tuple[str, str], reason: str, runs: int) -> None:
        if self._on_skip is not None:
            self._on_skip(*pair, reason, runs)

    @property
    def running(self) -> bool:
        return bool(self._sched.running)

    def start(self) -> None:
        self._sched.start()

    def apply(self, config: Config, *, run_now: bool = True,
              last_runs: Mapping[tuple[str, str], datetime] | None = None) -> int:
        """Make the jobs those of `config`; return the number of jobs.

        A new pair's first run is spread over min(interval, `daemon.max_start_delay`) so a start is not a burst. A
        cron canary runs at its cron times only, at start and on a reload alike: a daily canary is not probed (and
        paid for) again at every restart, rolling update or failover. On a reload
        (`run_now` false) a pair whose schedule did not change keeps its next run and only takes the new canary and
        target: restarting every job from the reload's instant would line all their runs up on it (every pair
        with the same interval in one burst, for good) and would park cron jobs. An `every` pair whose last
        scheduled run (`last_runs`, read back from the store at a start or take-over) is less than its interval
        ago keeps its next run one interval after it, so a restart or take-over does not run it once more.
        """
        now = self._now()
        wanted = {job_id(c.id, t.id): (c, t) for c, t in config.pairs()}
        self._pairs = {jid: (c.id, t.id) for jid, (c, t) in wanted.items()}
        for job in self._sched.get_jobs():
            if job.id not in wanted:
                job.remove()
        self._passed.keep(set(wanted))
        self._skip_log.keep(set(wanted))  # a removed (or renamed) pair's warnings are not kept for good
        schedules = {}
        for jid, (canary, target) in wanted.items():
            schedules[jid] = canary.schedule
            job = self._sched.get_job(jid)
            if not run_now and job is not None and self._schedules.get(jid) == canary.schedule:
                job.modify(args=(canary, target))
                continue
            interval = period_s(canary.schedule, now)  # a cron's: the gap it is in now
            start = now + timedelta(seconds=first_delay(jid, interval, config.daemon.max_start_delay))
            last = (last_runs or {}).get((canary.id, target.id)) if canary.schedule.cron is None else None
            # its next run, as the process that ran it had it (a run stamped ahead of this clock, by a host whose
            # clock runs ahead, holds nothing back: at most one interval from now)
            if last is not None and last <= now and last + timedelta(seconds=interval) > start:
                start = last + timedelta(seconds=interval)
            trigger = make_trigger(canary, start)
            # a cron job: its first fire time from `now` too, as its missed runs count (APScheduler's own, taken
            # later as the job is added or the scheduler started, would leave a cron time in between unrun, missed)
            first = {"next_run_time": start if canary.schedule.cron is None else trigger.get_next_fire_time(None, now)}
            # Misfires: a late run still happens once (coalesced), never a burst after a pause.
            self._sched.add_job(self._run, trigger, args=(canary, target), id=jid, name=jid,
                                replace_existing=True, misfire_grace_time=max(int(interval), 1), **first)
            # skipped runs count from its first fire time: one a pause passes over before the first run is too
            self._passed.track(jid, canary.schedule, start if canary.schedule.cron is None else now)
        self._schedules = schedules
        return len(wanted)

    def pause(self) -> None:
        """Stop starting new runs; runs in flight go on."""
        if self._sched.running:
            self._sched.pause()

    def shutdown(self) -> None:
        """Stop the scheduler (APScheduler cancels job tasks still running: drain them first)."""
        if self._sched.running:
            self._sched.shutdown(wait=False)

    def next_runs(self) -> dict[str, datetime | None]:
        return {j.id: j.next_run_time for j in self._sched.get_jobs()}


async def drain(tasks: set[asyncio.Task[object]], grace: float) -> tuple[int, int]:
    """Wait up to `grace` seconds for `tasks`, then cancel the rest; return (finished, cancelled)."""
    if not tasks:
        return 0, 0
    done, pending = await asyncio.wait(tasks, timeout=grace)
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.wait(pending, timeout=10)
    return len(done), len(pending)

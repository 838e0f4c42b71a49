"""What a start and a reload do to the schedule: pairs whose schedule did not change keep their next run; cron jobs
run at their cron times only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.config import load_config
from monitor.scheduler import Scheduler
from tests.conftest import write_config

TARGET = "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}"


def canary(cid: str, schedule: str, content: str = "hi") -> str:
    return f"  - id: {cid}\n    messages: [{{role: user, content: {content}}}]\n    schedule: {schedule}\n"


async def test_a_reload_keeps_each_pairs_next_run_and_its_cron_jobs(tmp_path: Path) -> None:
    # Found by the soak test: a reload (SIGHUP) restarted every job one interval after the reload's instant, so every
    # pair with the same interval then ran in the same instant, for good (their spread start undone: runs queued
    # behind max_concurrency and overran); and it added cron jobs paused, so cron canaries stopped until a restart.
    probes = "canaries:\n" + canary("a", "{every: 60s}") + canary("b", "{every: 60s}") \
        + canary("c", '{cron: "*/5 * * * *"}') + canary("d", "{every: 60s}")
    cfg = write_config(tmp_path, TARGET, probes, extra="daemon: {max_start_delay: 60}\n")
    now = datetime(2026, 11, 29, 7, 0, 0, tzinfo=UTC)

    async def run(*_: object) -> None:
        pass

    sched = Scheduler(run, now=lambda: now)
    sched.apply(load_config(cfg, environ={}))
    sched.start()
    sched.pause()  # nothing runs; next run times stay put
    try:
        before = sched.next_runs()
        assert len({before["a@t"], before["b@t"], before["d@t"]}) == 3  # spread over the first minute
        now += timedelta(seconds=7)
        (tmp_path / "probes" / "p.yaml").write_text(
            "canaries:\n" + canary("a", "{every: 60s}", "hello") + canary("b", "{every: 60s}")
            + canary("c", '{cron: "*/5 * * * *"}') + canary("d", "{every: 2m}") + canary("e", "{every: 60s}"))
        config = load_config(cfg, environ={})
        assert sched.apply(config, run_now=False) == 5
        after = sched.next_runs()
        assert (after["a@t"], after["b@t"], after["c@t"]) == (before["a@t"], before["b@t"], before["c@t"])
        assert after["c@t"] is not None  # a cron job stays scheduled
        assert after["e@t"] not in (after["a@t"], after["b@t"])  # a new pair is spread too
        assert now <= after["d@t"] <= now + timedelta(seconds=60)  # a changed schedule starts afresh, spread
        job = sched._sched.get_job("a@t")
        assert job.args[0].messages[0].content == "hello"  # the new canary, at the old phase
        (tmp_path / "probes" / "p.yaml").write_text("canaries:\n" + canary("c", '{cron: "0 * * * *"}'))
        sched.apply(load_config(cfg, environ={}), run_now=False)
        assert list(sched.next_runs()) == ["c@t"] and sched.next_runs()["c@t"] is not None
    finally:
        sched.shutdown()


async def test_a_cron_canary_waits_for_its_cron_time_at_start(tmp_path: Path) -> None:
    # A daily canary ran once more at every start (each restart, rolling update or failover): calls and spend the
    # schedule does not ask for. An `every` canary still runs within max_start_delay.
    probes = "canaries:\n" + canary("daily", '{cron: "0 0 * * *"}') + canary("often", "{every: 1h}")
    cfg = write_config(tmp_path, TARGET, probes, extra="daemon: {max_start_delay: 30}\n")
    now = datetime.now(UTC)

    async def run(*_: object) -> None:
        pass

    sched = Scheduler(run, now=lambda: now)
    sched.apply(load_config(cfg, environ={}))
    sched.start()
    sched.pause()
    try:
        nxt = sched.next_runs()
        midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        assert nxt["daily@t"] == midnight
        assert now <= nxt["often@t"] <= now + timedelta(seconds=30)
    finally:
        sched.shutdown()

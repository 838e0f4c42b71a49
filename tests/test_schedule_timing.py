"""Schedule arithmetic (config/timing.py) and the gauges built on it: a cron's gap and its stale cutoff move with
the clock (nights, weekends), its rate is a week's mean; a failing streak lasts from the first failed run to the
first success."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.triggers.cron import CronTrigger
from prometheus_client import CollectorRegistry

from monitor.config.models import Canary, Message, Schedule
from monitor.config.timing import (
    fire_times,
    next_fire,
    period_s,
    previous_fires,
    runs_per_day,
    shortest_gap_s,
    stale_cutoff,
)
from monitor.domain import CallResult, ErrorType, Observation
from monitor.scheduler import make_trigger
from monitor.telemetry.metrics import Metrics

BUSINESS_HOURS = Schedule(cron="*/10 9-17 * * *")  # 9:00 .. 17:50, every day
TWICE_ON_WEEKDAYS = Schedule(cron="0 9,17 * * 1-5")  # crontab: 1-5 is Monday to Friday
MONDAY = datetime(2026, 11, 30, tzinfo=UTC)  # a Monday


def at(day: datetime, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return day + timedelta(hours=hour, minutes=minute, seconds=second)


def test_an_every_schedule_has_one_period() -> None:
    s = Schedule(every="30m")
    assert period_s(s, MONDAY) == 1800
    assert runs_per_day(s) == 48
    assert stale_cutoff(s, at(MONDAY, 12)) == at(MONDAY, 10, 30)
    assert next_fire(s, MONDAY) == at(MONDAY, 0, 30)


@pytest.mark.parametrize(("now", "gap"), [
    (at(MONDAY, 12, 5), 600),  # by day
    (at(MONDAY, 9, 0, 30), 600),  # just after the first run of the day
    (at(MONDAY, 17, 55), 15 * 3600 + 10 * 60),  # the night: 17:50 to 9:00
    (at(MONDAY, 3), 15 * 3600 + 10 * 60),
])
def test_a_cron_interval_is_the_gap_it_is_in_now(now: datetime, gap: float) -> None:
    assert period_s(BUSINESS_HOURS, now) == gap


def test_weekdays_are_read_as_crontab_reads_them() -> None:
    friday, saturday = MONDAY - timedelta(days=3), MONDAY - timedelta(days=2)
    assert next_fire(TWICE_ON_WEEKDAYS, at(friday, 18)) == at(MONDAY, 9)
    assert previous_fires(TWICE_ON_WEEKDAYS, at(saturday, 12), 1) == [at(friday, 17)]
    assert period_s(TWICE_ON_WEEKDAYS, at(saturday, 12)) == 64 * 3600  # Friday 17:00 to Monday 9:00
    assert period_s(TWICE_ON_WEEKDAYS, at(MONDAY, 12)) == 8 * 3600
    assert next_fire(Schedule(cron="0 6 * * 0"), MONDAY) == at(MONDAY + timedelta(days=6), 6)  # 0: Sunday
    assert next_fire(Schedule(cron="0 6 * * 7"), MONDAY) == at(MONDAY + timedelta(days=6), 6)  # 7 too
    assert next_fire(Schedule(cron="0 6 * * mon"), MONDAY) == at(MONDAY, 6)



@pytest.mark.parametrize(("dow", "days"), [("mon-5", [0, 1, 2, 3, 4]), ("sun-tue", [6, 0, 1]), ("1,wed-4", [0, 2, 3]),
                                         ("SAT,7", [5, 6]), ("sat-sun", [5, 6]), ("fri-sun", [4, 5, 6])])
def test_day_names_and_numbers_mixed_mean_what_crontab_means(dow: str, days: list[int]) -> None:
    # Found by review: a field with any letter went to APScheduler as written, so `mon-5` ran on Mondays only
    # (5 being Saturday there) and `sun-tue` was refused ("minimum value in a range must not be higher")
    schedule, fired = Schedule(cron=f"0 6 * * {dow}"), set()
    now = MONDAY - timedelta(seconds=1)
    for _ in range(len(days) * 2):
        now = next_fire(schedule, now)
        fired.add((now - MONDAY).days % 7)  # 0: Monday
    assert fired == set(days)


def test_the_scheduler_fires_a_cron_when_timing_says_it_does() -> None:

    canary = Canary(id="c", messages=[Message(role="user", content="hi")], schedule=TWICE_ON_WEEKDAYS)
    trigger = make_trigger(canary, MONDAY)
    friday = MONDAY - timedelta(days=3)
    assert trigger.get_next_fire_time(None, at(friday, 18)) == next_fire(TWICE_ON_WEEKDAYS, at(friday, 18))


def test_a_cron_with_bad_weekdays_is_rejected() -> None:
    with pytest.raises(ValueError, match="numbers run 0-7"):
        Schedule(cron="0 9 * * 5-1")
    with pytest.raises(ValueError, match="day of week 'fri-mon': numbers run 0-7"):
        Schedule(cron="0 9 * * fri-mon")
    with pytest.raises(ValueError, match="day of week 'funday': expected a day name"):
        Schedule(cron="0 9 * * funday")
    # Found by review: a step of 0 was refused as "range() arg 3 must not be zero", naming neither field nor value
    with pytest.raises(ValueError, match=r"day of week '1-5/0': a step of 1 or more"):
        Schedule(cron="0 9 * * 1-5/0")


@pytest.mark.parametrize(("cron", "days", "times"), [
    # Found by review: APScheduler 3 refused `22/3` (a step longer than 22 to 23); crontab reads `N/S` as N to the
    # field's end in steps of S (minute 59, hour 23, day 31, month 12), so 22:00 alone
    ("0 22/3 * * *", 2, [at(MONDAY, 22), at(MONDAY + timedelta(days=1), 22)]),
    ("5/15 * * * *", 1 / 24, [at(MONDAY, 0, m) for m in (5, 20, 35, 50)]),
    ("0 0 20/5 * *", 31, [MONDAY + timedelta(days=d) for d in (0, 20, 25, 30)]),  # 30 Nov; 20, 25, 30 Dec
    ("0 0 1 10/3 *", 366, [datetime(2027, 10, 1, tzinfo=UTC)]),  # October alone (13 is past December)
    ("0 22-23/3 * * *", 1, [at(MONDAY, 22)]),  # a range with a step longer than it: its first number, as in crontab
    # the weekday's end is 7 (crontab's weekdays run 0-7, 7 Sunday again, as in Vixie cron): `1/2` is 1-7/2
    ("0 6 * * 1/2", 7, [at(MONDAY + timedelta(days=d), 6) for d in (0, 2, 4, 6)]),  # Mon, Wed, Fri, Sun
])
def test_a_step_from_a_number_runs_to_the_fields_end_as_in_crontab(cron: str, days: float,
                                                                   times: list[datetime]) -> None:
    assert Schedule(cron=cron).cron == cron  # validated, kept as written
    assert list(fire_times(cron, MONDAY, MONDAY + timedelta(days=days))) == times
    canary = Canary(id="c", messages=[Message(role="user", content="hi")], schedule=Schedule(cron=cron))
    assert make_trigger(canary, MONDAY).get_next_fire_time(None, MONDAY) == times[0]  # the scheduler's trigger too


def test_a_step_from_a_number_counts_as_crontab_runs_it() -> None:
    assert runs_per_day(Schedule(cron="0 22/3 * * *")) == 1
    assert shortest_gap_s("0 22/3 * * *") == 86_400  # what the jitter is checked against
    assert runs_per_day(Schedule(cron="5/15 * * * *")) == 96
    assert shortest_gap_s("5/15 * * * *") == 900


@pytest.mark.parametrize(("schedule", "per_day"), [
    (BUSINESS_HOURS, 54),  # 9 hours x 6 a day, every day
    (TWICE_ON_WEEKDAYS, 10 / 7),  # not 3 (the gap between two runs of a weekday)
    (Schedule(cron="0 0 * * 1"), 209 / 1461),  # weekly: over four years too, ~1/7
    (Schedule(cron="0 0 1 * *"), 48 / 1461),  # monthly: over four years
    (Schedule(cron="*/15 * * * *"), 96),
    # Found by review: a cron restricted by its day of the month or month fired 7 times or more in the week of
    # 2024-01-01 and was counted from that week alone: the 1st to the 7th as daily (1, not 0.23), every minute of
    # the 1st as 205.7 a day (not 47.3), every 5 min of January as 288 a day (not 24.4)
    (Schedule(cron="0 0 1-7 * *"), 7 * 48 / 1461),
    (Schedule(cron="* * 1 * *"), 1440 * 48 / 1461),
    (Schedule(cron="*/5 * * 1 *"), 288 * 124 / 1461),  # the Januaries of 2024 ... 2027: 124 days
    (Schedule(cron="0 9 1-7 * 1"), (7 * 48 + 209 - 48) / 1461),  # crontab: the 1st to the 7th, or a Monday
])
def test_runs_per_day_is_the_mean_over_a_week(schedule: Schedule, per_day: float) -> None:
    assert runs_per_day(schedule) == pytest.approx(per_day)


@pytest.mark.parametrize(("now", "cutoff"), [
    (at(MONDAY, 12, 5), at(MONDAY, 11, 40)),  # 11:40, 11:50, 12:00
    (at(MONDAY, 9, 0, 30), at(MONDAY - timedelta(days=1), 17, 40)),  # the morning edge: 17:40, 17:50, 9:00
    (at(MONDAY, 9, 20, 30), at(MONDAY, 9)),
    (at(MONDAY, 23), at(MONDAY, 17, 30)),  # the night
])
def test_the_stale_cutoff_is_the_third_last_scheduled_run(now: datetime, cutoff: datetime) -> None:
    assert stale_cutoff(BUSINESS_HOURS, now) == cutoff


def test_a_weekend_does_not_make_a_weekday_cron_stale() -> None:
    friday = MONDAY - timedelta(days=3)
    sunday = MONDAY - timedelta(days=1)
    last_success = at(friday, 17, 0, 5)
    assert stale_cutoff(TWICE_ON_WEEKDAYS, at(sunday, 23)) < last_success  # Thursday 17:00
    assert stale_cutoff(TWICE_ON_WEEKDAYS, at(MONDAY, 17, 1)) == at(friday, 17)  # Friday 17, Monday 9 and 17
    assert stale_cutoff(TWICE_ON_WEEKDAYS, at(MONDAY + timedelta(days=1), 9, 1)) > last_success


def test_the_schedule_gauges_follow_the_clock() -> None:
    clock = [at(MONDAY, 12, 5)]
    reg = CollectorRegistry()
    m = Metrics(reg, now=lambda: clock[0])
    m.declare([("day", "x", BUSINESS_HOURS), ("fast", "x", Schedule(every="1m"))], {"x": None})

    def gauges(canary: str) -> tuple[float | None, float | None]:
        return (reg.get_sample_value("llm_monitor_canary_interval_seconds", {"canary": canary}),
                reg.get_sample_value("llm_monitor_canary_stale_cutoff_timestamp_seconds", {"canary": canary}))

    assert gauges("day") == (600, at(MONDAY, 11, 40).timestamp())
    assert gauges("fast") == (60, at(MONDAY, 12, 2).timestamp())
    clock[0] = at(MONDAY, 20)
    assert gauges("day") == (15 * 3600 + 600, at(MONDAY, 17, 30).timestamp())
    m.declare([("fast", "x", Schedule(every="1m"))], {"x": None})  # a reload that removes "day"
    assert gauges("day") == (None, None)
    assert gauges("fast")[0] == 60


def _obs(ok: bool, started: datetime, run_id: str = "r", canary: str = "c") -> Observation:
    call = CallResult(text="x") if ok else CallResult(error_type=ErrorType.TIMEOUT)
    return Observation(canary, "t", "openai", "m", started, call, run_id=run_id)


def test_a_failing_streak_runs_from_the_first_failed_run_to_the_first_success() -> None:
    reg = CollectorRegistry()
    m = Metrics(reg)
    m.declare([("c", "t", Schedule(every="30m"))], {"t": None})

    def since() -> float | None:
        return reg.get_sample_value("llm_monitor_failing_since_timestamp_seconds", {"canary": "c", "target": "t"})

    def run(*oks: bool, start: datetime) -> None:
        observations = [_obs(ok, start + timedelta(seconds=i)) for i, ok in enumerate(oks)]
        for o in observations:
            m.observe(o, "openai", "api.openai.com")
        m.run_summary("c", "t", observations)

    run(True, False, False, start=MONDAY)  # a run with a success is not a failed run, whatever came after it
    assert since() is None
    run(False, False, False, start=at(MONDAY, 0, 30))
    assert since() == at(MONDAY, 0, 30).timestamp()
    run(False, False, False, start=at(MONDAY, 1))  # the streak goes on from its start
    assert since() == at(MONDAY, 0, 30).timestamp()
    run(False, True, False, start=at(MONDAY, 1, 30))  # the first success ends it
    assert since() is None


def test_a_judge_call_is_a_run_of_its_own() -> None:
    reg = CollectorRegistry()
    m = Metrics(reg)
    m.declare([], {"t": None}, services=[("_judge", "t")])
    m.observe(_obs(False, MONDAY, run_id="", canary="_judge"), "openai", "api.openai.com")
    m.observe(_obs(False, at(MONDAY, 1), run_id="", canary="_judge"), "openai", "api.openai.com")
    labels = {"canary": "_judge", "target": "t"}
    assert reg.get_sample_value("llm_monitor_failing_since_timestamp_seconds", labels) == MONDAY.timestamp()
    m.observe(_obs(True, at(MONDAY, 2), run_id="", canary="_judge"), "openai", "api.openai.com")
    assert reg.get_sample_value("llm_monitor_failing_since_timestamp_seconds", labels) is None
    # judge calls run side by side: the streak starts at the first to start, not at the first to end
    m.observe(_obs(False, at(MONDAY, 3, 0, 1), run_id="", canary="_judge"), "openai", "api.openai.com")
    m.observe(_obs(False, at(MONDAY, 3), run_id="", canary="_judge"), "openai", "api.openai.com")
    assert reg.get_sample_value("llm_monitor_failing_since_timestamp_seconds", labels) == at(MONDAY, 3).timestamp()


@pytest.mark.parametrize(("cron", "days"), [("*/10 9-17 * * *", 3), ("0 9,17 * * 1-5", 5), ("* 9-17 * * 1-5", 4),
                                            ("5 4 * * 0", 22), ("*/7 * * * *", 1), ("0 0 1,15 * *", 50)])
def test_previous_fires_are_the_last_of_the_listed_fire_times(cron: str, days: int) -> None:
    import random

    from monitor.config.timing import fire_times

    rng = random.Random(cron)
    for _ in range(25):
        now = MONDAY + timedelta(seconds=rng.randrange(-400 * 86_400, 400 * 86_400))
        listed = list(fire_times(cron, now - timedelta(days=days), now + timedelta(microseconds=1)))[-3:]
        assert len(listed) == 3 and previous_fires(Schedule(cron=cron), now, 3) == listed, now


def test_a_restricted_day_of_month_and_weekday_fire_on_either_as_in_crontab() -> None:
    # Found by review: `0 9 1 * mon` fired only on Mondays that were the 1st (APScheduler needs both fields);
    # crontab fires on the 1st and on every Monday
    schedule, now, fired = Schedule(cron="0 9 1 * mon"), MONDAY, []
    for _ in range(6):
        now = next_fire(schedule, now)
        fired.append(now)
    assert all(t.weekday() == 0 or t.day == 1 for t in fired) and {t.weekday() for t in fired} != {0}, fired
    assert any(t.day == 1 and t.weekday() != 0 for t in fired) and sum(t.weekday() == 0 for t in fired) >= 4, fired
    canary = Canary(id="c", messages=[Message(role="user", content="hi")], schedule=schedule)
    assert make_trigger(canary, MONDAY).get_next_fire_time(None, fired[2]) == fired[2]  # the scheduler agrees


@pytest.mark.parametrize(("cron", "days", "gap"), [
    ("0 9 * * 1-5", 21, 86_400),  # 1d by the week, 3d over the weekend
    ("*/10 9-17 * * *", 3, 600),
    ("0,59 0,23 * * *", 3, 60),  # 23:59 to 0:00: across midnight
    ("0 1,23 * * *", 3, 2 * 3600),  # 23:00 to 1:00
    ("30 8,20 * * 6", 30, 12 * 3600),
    ("0 12 * * mon,wed,fri", 30, 2 * 86_400),
    ("0 0 1 * *", 800, 28 * 86_400),  # February of a plain year
    ("0 9 1 * mon", 400, 86_400),  # the 1st or a Monday, as crontab reads it: Monday 30 September, then the 1st
    ("0 0 29 2 *", 366 * 9, 4 * 365.25 * 86_400),  # leap days
])
def test_a_crons_shortest_gap_is_the_least_between_its_fire_times(cron: str, days: int, gap: float) -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    listed = list(fire_times(cron, start, start + timedelta(days=days)))
    assert min((b - a).total_seconds() for a, b in zip(listed, listed[1:], strict=False)) == gap
    assert shortest_gap_s(cron) == gap


def test_a_date_no_month_has_beside_a_weekday_fires_on_the_weekday_alone() -> None:
    # Found by review: `0 9 30 2 mon` (the 30th of February, or a Monday of February) kept APScheduler's trigger for
    # the 30th of February, whose search for a next fire time runs to the year 9999 at every step (16,000 steps,
    # 0.65 s): a minute to load the config, and the event loop blocked at every run and gauge read
    steps = 0
    increment = CronTrigger._increment_field_value

    def counted(self: CronTrigger, *args: object) -> object:
        nonlocal steps
        steps += 1
        return increment(self, *args)

    feb = list(fire_times("0 9 * 2 mon", MONDAY, MONDAY + timedelta(days=800)))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(CronTrigger, "_increment_field_value", counted)
        assert list(fire_times("0 9 30 2 mon", MONDAY, MONDAY + timedelta(days=800))) == feb  # Mondays of February
        assert previous_fires(Schedule(cron="0 9 31 4,6 1"), MONDAY, 1) == [datetime(2026, 6, 29, 9, tzinfo=UTC)]
    assert steps < 1000, steps


def test_a_cron_that_never_fires_has_no_gap() -> None:
    assert shortest_gap_s("0 0 30 2 *") is None  # no jitter is refused for it


@pytest.mark.parametrize("cron", ["０ ９ * * *", "0 9 * * １", "5/１5 * * * *", "0\u20039 * * *"])
def test_a_cron_with_digits_other_than_ascii_is_rejected(cron: str) -> None:
    # Found by review23: '０ ９ * * *' loaded as 0 9 * * * (APScheduler's \d and int() take full-width digits)
    with pytest.raises(ValueError, match=r"invalid cron expression: '.+' is not crontab's: fields hold digits 0-9"):
        Schedule(cron=cron)

"""How often a schedule fires: the one place that turns `every:` and `cron:` into periods, fire times and rates.

An `every` schedule has one period. A cron schedule has none: `*/10 9-17 * * *` fires every 10 minutes by day and
not at all for 15 hours at night, so every question is asked about a moment (`now`, passed in) or about a whole
week. Jitter is left out: it moves a run by less than its schedule's gap.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import islice
from typing import TYPE_CHECKING

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.combining import OrTrigger
from apscheduler.triggers.cron import CronTrigger

from monitor.durations import parse_duration

if TYPE_CHECKING:  # canary validates cron expressions with cron_trigger
    from monitor.config.canary import Schedule

DAY = timedelta(days=1)
WEEK = timedelta(days=7)
# A fixed Monday 00:00 UTC: the week (and, for rarer crons, the four years) whose fire times give a cron's rate,
# so that the rate of a config does not change from one load to the next
_ANCHOR = datetime(2024, 1, 1, tzinfo=UTC)
_LOOKBACK = tuple(timedelta(days=d) for d in (1 / 24, 1, 8, 64, 400, 1500))
_TICK = timedelta(microseconds=1)
# A cron's shortest gap is looked for over at most this many of its days with fire times (more than a year has)
# and this many years from _ANCHOR (the calendar repeats every 28 years up to 2100: every date on every weekday)
_GAP_DAYS = 400
_GAP_YEARS = 28
_GAP_SPAN = timedelta(days=round(_GAP_YEARS * 365.25))


_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _day_number(m: re.Match[str]) -> str:
    name = m.group(0).lower()
    if name not in _DAY_NAMES:
        raise ValueError(f"day of week {m.group(0)!r}: expected a day name (sun, mon, ... sat) or a number 0-7")
    return str(_DAY_NAMES.index(name))


def _crontab_weekdays(field: str) -> str:
    """Return a crontab day-of-week field in APScheduler 3's terms: its numbers count from Monday (0), crontab's
    from Sunday (0 or 7), so the field is read as crontab reads it (day names as their numbers, so `mon-5` and
    `sun-tue` mean what they do there) and written back as day names; `*` stays as it is."""
    if field == "*":
        return field
    days: set[int] = set()
    for item in field.split(","):
        numbered = re.sub(r"(?<=-)sun\b", "7", item, flags=re.I)  # `sat-sun`: a range's end is Sunday as 7
        m = re.fullmatch(r"(\*|(\d)(?:-(\d))?)(?:/(\d+))?", re.sub(r"[a-z]+", _day_number, numbered, flags=re.I))
        if m is None:
            raise ValueError(f"day of week {item!r}: expected a number 0-7 (0 and 7: Sunday), a range or a step")
        whole, first, last, step = m.groups()
        lo, hi = (0, 6) if whole == "*" else (int(first), int(last) if last else int(first))
        hi = hi if last or step is None or whole == "*" else 7  # `5/2`: from 5 to the end, as crontab reads it
        if not 0 <= lo <= hi <= 7:
            raise ValueError(f"day of week {item!r}: numbers run 0-7 (0 and 7: Sunday), a range low to high")
        if step is not None and int(step) == 0:
            raise ValueError(f"day of week {item!r}: a step of 1 or more")
        if step is not None and int(step) > 7:
            raise _step_too_long(int(step), item, "days of the week", 7, "week")
        days.update(d % 7 for d in range(lo, hi + 1, int(step or 1)))
    return ",".join(_DAY_NAMES[d] for d in sorted(days))


# The numbers of the fields other than the weekday, as crontab has them (APScheduler 3's are the same)
_BOUNDS = {"minute": (0, 59), "hour": (0, 23), "day": (1, 31), "month": (1, 12)}
# Each field as an error names it, and the span its steps start again at
_SAID = {"minute": ("minutes", "hour"), "hour": ("hours", "day"), "day": ("days of the month", "month"),
         "month": ("months", "year")}


def _step_too_long(step: int, item: str, field: str, span: int, again: str) -> ValueError:
    """A step longer than its whole field (`5/75` minutes): it fires at its first number alone, once each `again`,
    where it reads as a period no cron has (APScheduler refuses `*/75` only)."""
    return ValueError(f"the step value ({step}) of {item!r} is higher than the total range of the {field} ({span}): "
                      f"a cron step starts again at each {again}")


def _crontab_steps(name: str, field: str) -> str:
    """Return a minute, hour, day or month field with its steps read as crontab reads them: `N/S` runs from N to the
    field's end (`5/15` minutes: 5-59/15), and a step longer than its range leaves the range's first number alone
    (`22/3` hours: 22), where APScheduler 3 refuses it; anything else is left to APScheduler, which reads it as
    crontab does (or refuses it with its own reason)."""
    lo, hi = _BOUNDS[name]
    items = []
    for item in field.split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?/(\d+)", item)
        if m is not None:
            first, last, step = int(m[1]), int(m[2]) if m[2] else hi, int(m[3])
            if step > hi - lo:
                raise _step_too_long(step, item, _SAID[name][0], hi - lo, _SAID[name][1])
            if lo <= first <= last <= hi and step > 0:
                item = str(first) if step > last - first else f"{first}-{last}/{step}"
        items.append(item)
    return ",".join(items)


def cron_trigger(cron: str, jitter: int | None = None) -> BaseTrigger:
    """Return the UTC trigger of a 5-field crontab expression, read as crontab reads it (weekdays from Sunday; `N/S`
    from N to the field's end; a restricted day of the month and weekday: either)."""
    if not cron.isascii():  # APScheduler's \d and int() take '９' (full-width) as 9: crontab's digits are 0-9
        odd = next(c for c in cron if not c.isascii())
        raise ValueError(f"{odd!r} is not crontab's: fields hold digits 0-9, names (mon, jan), '*', ',', '-' and '/'")
    fields = cron.split()
    if len(fields) != 5:
        raise ValueError(f"Wrong number of fields; got {len(fields)}, expected 5")
    minute, hour, day, month = (_crontab_steps(n, f) for n, f in zip(_BOUNDS, fields[:4], strict=True))
    dow = fields[4]
    weekdays = _crontab_weekdays(dow)
    if day.startswith("*") or dow.startswith("*"):
        return CronTrigger(minute=minute, hour=hour, day=day, month=month, day_of_week=weekdays, timezone=UTC,
                           jitter=jitter)
    # Both the day of the month and the weekday restricted: crontab fires on either (`0 9 1 * mon`: the 1st, and
    # every Monday), where APScheduler's one trigger needs both (only Mondays that are the 1st)
    if not _some_date(day, month):  # `0 9 30 2 mon`: the Mondays of February alone, as in crontab
        return CronTrigger(minute=minute, hour=hour, month=month, day_of_week=weekdays, timezone=UTC, jitter=jitter)
    return OrTrigger([CronTrigger(minute=minute, hour=hour, day=day, month=month, timezone=UTC),
                      CronTrigger(minute=minute, hour=hour, month=month, day_of_week=weekdays, timezone=UTC)],
                     jitter=jitter)


def _some_date(day: str, month: str) -> bool:
    """Return whether a day of the month and month fields match a date at all (not `30 2`): APScheduler's trigger
    for a date that never comes looks for it up to the year 9999 at every step (0.65 s each); 2024, a leap year,
    has every date."""
    dates = CronTrigger(day=day, month=month, timezone=UTC, end_date=_ANCHOR.replace(month=12, day=31))
    return dates.get_next_fire_time(None, _ANCHOR) is not None


@lru_cache(maxsize=256)
def _trigger(cron: str) -> BaseTrigger:
    return cron_trigger(cron)


def fire_times(cron: str, start: datetime, end: datetime) -> Iterator[datetime]:
    """Yield the fire times of `cron` in [start, end), in order."""
    trig = _trigger(cron)
    at = trig.get_next_fire_time(None, start)
    while at is not None and at < end:
        yield at
        at = trig.get_next_fire_time(at, at + _TICK)


def next_fire(schedule: Schedule, now: datetime) -> datetime:
    """Return when `schedule` fires next after `now` (`every`: one period from now)."""
    if schedule.cron is None:
        return now + timedelta(seconds=every_s(schedule))
    at = _trigger(schedule.cron).get_next_fire_time(None, now + _TICK)
    return at if at is not None else now + _LOOKBACK[-1]  # a cron that never fires again (none such in 5 fields)


def previous_fires(schedule: Schedule, now: datetime, n: int) -> list[datetime]:
    """Return the last `n` fire times at or before `now`, oldest first (`every`: `now` minus whole periods)."""
    if schedule.cron is None:
        period = timedelta(seconds=every_s(schedule))
        return [now - k * period for k in range(n - 1, -1, -1)]
    found: list[datetime] = []
    at: datetime | None = now
    while at is not None and len(found) < n:
        at = _last_fire(schedule.cron, at)
        if at is not None:
            found.insert(0, at)
            at -= _TICK
    return found


def _last_fire(cron: str, at: datetime) -> datetime | None:
    """Return the last fire time of `cron` at or before `at` (None: none in the longest look back).

    APScheduler 3 only looks forward, and listing every fire time back over a weekend is thousands for
    `* 9-17 * * 1-5`: instead, widen the window until it holds one, then bisect for the latest start whose next
    fire time is still at or before `at` (cron times are whole seconds)."""
    trig = _trigger(cron)
    for back in _LOOKBACK:  # the overnight, weekend, monthly gaps
        first = trig.get_next_fire_time(None, at - back)
        if first is not None and first <= at:
            break
    else:
        return None
    lo, hi = first, at  # the first fire at or after lo is at or before `at`; hi bounds the search
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        fire = trig.get_next_fire_time(None, mid)
        if fire is not None and fire <= at:
            lo = max(mid, lo)
            first = fire
        else:
            hi = mid
    return first


@lru_cache(maxsize=256)
def shortest_gap_s(cron: str) -> float | None:
    """Return the shortest time in seconds between two consecutive fire times of `cron` (None: fewer than two found).

    In UTC a cron fires at the same times (its minute and hour fields) on every day it fires (its day, month and
    weekday fields), so its shortest gap is the shorter of the shortest between two times of one day and the
    shortest from a day's last time to the next such day's first. The times are the fire times of `M H * * *` over
    one day (at most 1,440); the days are those of `0 0 D M W` from _ANCHOR, stepped until two a day apart (none
    are closer) or over _GAP_DAYS days or _GAP_YEARS years, whichever comes first: bounded work for any expression
    (each step of APScheduler's takes up to a few tenths of a millisecond). The days cover at least a year, every
    alignment of dates and weekdays of a cron that fires on fewer than 14 days a year, and its gaps of up to 28
    years. Not seen: a gap between days that only a later year's alignment shortens, for a cron firing on more
    days a year than that, so at worst a jitter of a day or more slips past."""
    minute, hour, day, month, dow = cron.split()
    times: list[datetime] = []
    within = math.inf  # between two times of one day
    for at in fire_times(f"{minute} {hour} * * *", _ANCHOR, _ANCHOR + DAY):
        if times:
            within = min(within, (at - times[-1]).total_seconds())
            if within <= 60:  # none closer (cron times are whole minutes)
                return within
        times.append(at)
    if not times:
        return None
    span = (times[-1] - times[0]).total_seconds()  # from a day's first time to its last
    apart = math.inf  # the fewest days between two days it fires on
    previous = None
    for date in islice(fire_times(f"0 0 {day} {month} {dow}", _ANCHOR, _ANCHOR + _GAP_SPAN), _GAP_DAYS):
        if previous is not None:
            apart = min(apart, (date - previous).total_seconds())
            if apart <= DAY.total_seconds():
                break
        previous = date
    gap = min(within, apart - span)
    return gap if math.isfinite(gap) else None


@lru_cache(maxsize=256)
def never_fires(cron: str) -> bool:
    """Return whether `cron` has no fire time in _GAP_YEARS years from _ANCHOR (`0 0 30 2 *`): the calendar repeats
    over that span, so such a cron never fires at all."""
    return next(fire_times(cron, _ANCHOR, _ANCHOR + _GAP_SPAN), None) is None


def every_s(schedule: Schedule) -> float:
    """Return the period of an `every` schedule in seconds."""
    assert schedule.every is not None, "a cron schedule has no fixed period"
    return parse_duration(schedule.every)


def period_s(schedule: Schedule, now: datetime) -> float:
    """Return the gap between the fire time at or before `now` and the next one (`every`: its period)."""
    if schedule.cron is None:
        return every_s(schedule)
    before = previous_fires(schedule, now, 1)
    after = next_fire(schedule, now)
    start = before[0] if before else now
    return (after - start).total_seconds()


def runs_per_day(schedule: Schedule) -> float:
    """Return how many runs a day `schedule` makes, on average over a week of fire times (a cron that fires less
    than daily, or on some days of the month or months only: over four years, so that a monthly one counts its
    month)."""
    if schedule.cron is None:
        return 86_400 / every_s(schedule)
    return _cron_runs_per_day(schedule.cron)


@lru_cache(maxsize=256)
def _cron_runs_per_day(cron: str) -> float:
    minute, hour, day, month, dow = cron.split()
    if day == "*" and month == "*":  # its weekdays alone: every week alike
        week = sum(1 for _ in fire_times(cron, _ANCHOR, _ANCHOR + WEEK))
        if week >= 7:
            return week / 7
    # its times of one day (the same on every day it fires, in UTC) by the days it fires on over four years
    years = timedelta(days=4 * 365 + 1)
    times = sum(1 for _ in fire_times(f"{minute} {hour} * * *", _ANCHOR, _ANCHOR + DAY))
    days = sum(1 for _ in fire_times(f"0 0 {day} {month} {dow}", _ANCHOR, _ANCHOR + years))
    return times * days / years.days


def stale_cutoff(schedule: Schedule, now: datetime, runs: int = 3) -> datetime:
    """Return the time of the `runs`-th most recent scheduled run (`every`: `runs` periods ago): a canary whose last
    success is older has had `runs` scheduled runs in a row without one, however long its gaps (nights, weekends)."""
    if schedule.cron is None:
        return now - runs * timedelta(seconds=every_s(schedule))
    fires = previous_fires(schedule, now, runs)
    return fires[0] if len(fires) == runs else now - _LOOKBACK[-1]

"""The bounded search of recurrence rules: every day searched and occurrence produced is charged
through ``spend`` (the caller's ``recurrence.Budget``), and a search runs in the calendar shifted
by whole 400-year Gregorian cycles so that dateutil never wanders towards the year 9999 (see
``recurrence``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import MAXYEAR, UTC, datetime, time, timedelta
from functools import lru_cache
from itertools import islice
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr
from icalendar import vRecur

from caldav_bridge.domain.errors import InvalidInput

CYCLE_YEARS = 400  # the Gregorian calendar repeats exactly every 400 years
# A rule's first occurrence must come within this many years of its start.
FIRST_WITHIN_YEARS = 100


@dataclass(frozen=True)
class Plan:
    """A stored rule ready to be started anywhere: its implicit parts explicit, without
    UNTIL (applied here, in UTC) and, unless it counts, without COUNT."""

    text: str
    frequency: str
    interval: int
    week_start: int  # WKST, Monday = 0
    count: int | None
    until: datetime | None  # UTC


_DAY_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_COARSER = {  # the BYxxx parts dateutil takes from DTSTART, by frequency
    "BYHOUR": ("YEARLY", "MONTHLY", "WEEKLY", "DAILY"),
    "BYMINUTE": ("YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY"),
    "BYSECOND": ("YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY", "MINUTELY"),
}


@lru_cache(maxsize=4096)
def plan_of(stored: str, first: datetime) -> Plan:
    """``first`` is the series' first start, naive local time."""
    rule = vRecur.from_ical(stored)
    frequency = str(rule["FREQ"][0]).upper()
    count = int(rule["COUNT"][0]) if "COUNT" in rule else None
    until = rule.pop("UNTIL", [None])[0]
    if not count:
        rule.pop("COUNT", None)
    if not any(k in rule for k in ("BYWEEKNO", "BYYEARDAY", "BYMONTHDAY", "BYDAY")):
        if frequency == "YEARLY":
            rule.setdefault("BYMONTH", [first.month])
        if frequency in ("YEARLY", "MONTHLY"):
            rule["BYMONTHDAY"] = [first.day]
        if frequency == "WEEKLY":
            rule["BYDAY"] = [_DAY_CODES[first.weekday()]]
    for part, frequencies in _COARSER.items():
        if frequency in frequencies and part not in rule:
            rule[part] = [getattr(first, part[2:].lower())]
    week_start = _DAY_CODES.index(str(rule.get("WKST", ["MO"])[0]).upper())
    return Plan(
        str(rule.to_ical().decode()),
        frequency,
        int(rule.get("INTERVAL", [1])[0]),
        week_start,
        count,
        until if isinstance(until, datetime) else None,
    )


def _period_start(plan: Plan, moment: datetime) -> datetime:
    day = datetime.combine(moment.date(), time(0))
    return {
        "YEARLY": lambda: day.replace(month=1, day=1),
        "MONTHLY": lambda: day.replace(day=1),
        "WEEKLY": lambda: day - timedelta(days=(day.weekday() - plan.week_start) % 7),
        "DAILY": lambda: day,
        "HOURLY": lambda: moment.replace(minute=0, second=0, microsecond=0),
        "MINUTELY": lambda: moment.replace(second=0, microsecond=0),
    }[plan.frequency]()


_STEP = {"WEEKLY": timedelta(weeks=1), "DAILY": timedelta(days=1)}
_STEP |= {"HOURLY": timedelta(hours=1), "MINUTELY": timedelta(minutes=1)}


def aligned(plan: Plan, first: datetime, before: datetime) -> datetime:
    """The start of the last period of the series (INTERVAL counted from ``first``'s period)
    not after ``before``: dateutil started there finds what it finds from ``first``."""
    if before <= first:
        return first
    origin, target = _period_start(plan, first), _period_start(plan, before)
    if plan.frequency in ("YEARLY", "MONTHLY"):
        months = 12 if plan.frequency == "YEARLY" else 1
        base, step = origin.year * 12 + origin.month - 1, plan.interval * months
        moved = base + (target.year * 12 + target.month - 1 - base) // step * step
        return origin.replace(year=moved // 12, month=moved % 12 + 1)
    period = _STEP[plan.frequency] * plan.interval
    return origin + (target - origin) // period * period


def search(
    plan: Plan, dtstart: datetime, bound: datetime, spend: Callable[[int], None]
) -> Iterator[datetime]:
    """The rule's occurrences (naive local) from ``dtstart``, in order, up to the first after
    ``bound``: dateutil runs in the calendar shifted by 400-year cycles so that the year 9999,
    where it stops, comes at most 400 years after ``bound``. Each day searched and each
    occurrence is charged to the current budget."""
    shift = CYCLE_YEARS * max(0, (MAXYEAR - bound.year) // CYCLE_YEARS)
    start = dtstart.replace(year=dtstart.year + shift)
    last, found = start, 0
    # dateutil looks at each day of each period it goes through (a daily rule's INTERVAL
    # skips days; a finer rule looks at each day, and at each occurrence).
    skip = plan.interval if plan.frequency in ("YEARLY", "MONTHLY", "WEEKLY", "DAILY") else 1
    # ... and a finer rule goes through each of its periods in a day it does not skip whole.
    per_day = {"HOURLY": 24, "MINUTELY": 1440}.get(plan.frequency, 1) // plan.interval or 1
    for moment in islice(rrulestr(f"RRULE:{plan.text}", dtstart=start), plan.count):
        spend((moment - last).days * per_day // skip + 1)
        last, found = moment, found + 1
        real = moment.replace(year=moment.year - shift)
        yield real
        if real > bound:
            return
    if found != plan.count:  # dateutil searched to the end of the year 9999
        spend((datetime(MAXYEAR, 12, 31) - last).days * per_day // skip)


def require_first(
    plan: Plan, first: datetime, tz: ZoneInfo | None, spend: Callable[[int], None]
) -> None:
    bound = plus(first, timedelta(days=366 * FIRST_WITHIN_YEARS))
    for moment in search(plan, first, bound, spend):
        if moment > bound:
            break
        start = utc_of(moment, tz) if tz else None
        if plan.until is None or start is None or start <= plan.until:
            return
        break
    raise InvalidInput(
        f"the recurrence rule never occurs within {FIRST_WITHIN_YEARS} years of its start"
    )


def plus(moment: datetime, delta: timedelta) -> datetime:
    """``moment + delta``, held within datetime's range."""
    try:
        return moment + delta
    except OverflowError:
        limit = datetime.max if delta > timedelta(0) else datetime.min
        return limit.replace(tzinfo=moment.tzinfo)


def utc_of(local: datetime, tz: ZoneInfo) -> datetime | None:
    """A naive local time as a UTC instant; None beyond datetime's range."""
    try:
        return local.replace(tzinfo=tz).astimezone(UTC)
    except OverflowError:
        return None

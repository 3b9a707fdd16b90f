"""Recurring interactions (RFC 5545 RRULE and EXDATE): checking rules and expanding them.

Time zone names reaching here were checked when the interaction's period was.

Every expansion is bounded in work, whatever the rule. dateutil searches a rule until it finds
an occurrence or passes the year 9999: an UNTIL stops it only at an occurrence, so a rule that
never (or very rarely) matches runs for hours. Each search here therefore runs in the calendar
shifted by whole 400-year Gregorian cycles (weekdays, leap years and week numbers repeat
exactly), placed so that the year 9999 comes at most 400 years after what is looked for; and
the days searched and the occurrences produced are counted against a ``Budget`` (one per
request where the caller opens one with ``budget()``), refused with InvalidInput beyond it.

Occurrences are expanded within a window [start, end): a rule without COUNT starts from a
period-aligned instant just before the window (its implicit BYxxx parts made explicit), so an
occurrence in 2040 costs what one near DTSTART does. A series without end holds its span until
``FOREVER``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import MAXYEAR, UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from icalendar import vRecur

from caldav_bridge.domain.errors import InvalidInput
from caldav_bridge.domain.rrule_search import (
    CYCLE_YEARS,
    aligned,
    plan_of,
    plus,
    require_first,
    search,
    utc_of,
)

# The end of a series that never ends, as stored (``last_ends_at``): the last second of
# datetime's range, which SQLite and PostgreSQL both store.
FOREVER = datetime(MAXYEAR, 12, 31, 23, 59, 59, tzinfo=UTC)


# Work one request may spend expanding rules: days searched plus occurrences produced.
MAX_STEPS = 1_000_000


class Budget:
    """Work allowed to recurrence expansion, in steps (a day a rule's search went through,
    or an occurrence it produced). ``spend`` refuses with InvalidInput past the limit.

    Reusable by any bounded expansion: open one per request with ``budget()``; helpers here
    charge ``current()``."""

    def __init__(self, limit: int = MAX_STEPS) -> None:
        self.limit = limit
        self.spent = 0

    def spend(self, steps: int) -> None:
        self.spent += steps
        if self.spent > self.limit:
            raise InvalidInput(
                f"expanding the recurrence rules here needs more than {self.limit:,} steps "
                "(days searched and occurrences): ask for a shorter time range, or give the "
                "series an end (UNTIL or COUNT)"
            )


_CURRENT: ContextVar[Budget | None] = ContextVar("recurrence_budget", default=None)


@contextmanager
def budget(limit: int = MAX_STEPS) -> Iterator[Budget]:
    """One budget for everything expanded inside (a request); an enclosing one is kept."""
    found = _CURRENT.get()
    if found is not None:
        yield found
        return
    opened = Budget(limit)
    token = _CURRENT.set(opened)
    try:
        yield opened
    finally:
        _CURRENT.reset(token)


def current() -> Budget:
    """The open budget, or a fresh one for this expansion alone."""
    return _CURRENT.get() or Budget()


@dataclass(frozen=True)
class Series:
    """What expansion needs of an interaction: its first occurrence and its rule."""

    starts_at: datetime  # UTC
    ends_at: datetime  # UTC
    all_day: bool
    timezone: str
    rrule: str = ""
    exdates: str = ""
    # Occurrences the organizer moved: (RECURRENCE-ID, new start, new end), all UTC.
    moves: tuple[tuple[datetime, datetime, datetime], ...] = ()


def checked_rule(text: str, timezone: str, whole_days: bool = False) -> str:
    """An RRULE value as stored (RFC 5545 text, UNTIL in UTC), or InvalidInput saying what is
    wrong. A floating or date UNTIL is read in ``timezone``; for an all-day series
    (``whole_days``) UNTIL is the local midnight of its day, as it is served (a date)."""
    text = text.strip()
    if text.upper().startswith("RRULE:"):
        text = text[6:]
    if not text:
        return ""
    if len(text) > 500:
        raise InvalidInput("the recurrence rule is longer than 500 characters")
    try:
        rule = vRecur.from_ical(text)
        _check_bounds(rule)
        if "UNTIL" in rule:
            rule["UNTIL"] = [_utc_until(value, timezone, whole_days) for value in rule["UNTIL"]]
        stored = str(rule.to_ical().decode())
        # Whatever its start: a rule that never occurs is refused here (a calendar of one's
        # own is expanded by Radicale); a series' own start is checked by ``check_occurs``.
        require_first(plan_of(stored, _REFERENCE_START), _REFERENCE_START, None, current().spend)
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise InvalidInput(f"the recurrence rule {text!r} is not valid: {exc}") from exc
    return stored


_REFERENCE_START = datetime(2000, 1, 1)


# A rule that searches through seconds (or never moves: INTERVAL=0) would hold a request for
# as long as it runs.
_FREQUENCIES = {"MINUTELY", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY"}
MAX_COUNT = 10_000
_DAY_PARTS = {"BYDAY", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYMONTH"}
_MONTH_DAYS = {
    1: 31,
    2: 29,
    3: 31,
    4: 30,
    5: 31,
    6: 30,
    7: 31,
    8: 31,
    9: 30,
    10: 31,
    11: 30,
    12: 31,
}


def _check_bounds(rule: vRecur) -> None:
    frequency = [str(f).upper() for f in rule.get("FREQ", [])]
    if len(frequency) != 1 or frequency[0] not in _FREQUENCIES:
        raise InvalidInput(
            f"the recurrence rule must repeat MINUTELY to YEARLY (got "
            f"{', '.join(frequency) or 'no FREQ'})"
        )
    # A finer rule that picks days, stepping across midnight at another time each day, is
    # searched period by period (its days may never come round again at the times it picks).
    per_day = {"HOURLY": 24, "MINUTELY": 1440}.get(frequency[0])
    interval = int(rule.get("INTERVAL", [1])[0])
    if per_day and per_day % interval and any(part in rule for part in _DAY_PARTS):
        raise InvalidInput(
            f"a {frequency[0]} rule that picks days ({', '.join(sorted(_DAY_PARTS))}) "
            f"needs an INTERVAL that divides a day ({per_day})"
        )
    for interval in rule.get("INTERVAL", []):
        if not 1 <= int(interval) <= 1000:
            raise InvalidInput("the recurrence rule's INTERVAL must be between 1 and 1000")
    for count in rule.get("COUNT", []):
        if not 1 <= int(count) <= MAX_COUNT:
            raise InvalidInput(f"the recurrence rule's COUNT must be between 1 and {MAX_COUNT:,}")
    # Within an hour or a minute, the candidates are the BYMINUTE and BYSECOND times: a
    # position beyond them never occurs (and dateutil would search minute after minute).
    per_period = {"HOURLY": ("BYMINUTE", "BYSECOND"), "MINUTELY": ("BYSECOND",)}
    candidates = math.prod(len(rule.get(part, [0])) for part in per_period.get(frequency[0], ()))
    positions = [abs(int(p)) for p in rule.get("BYSETPOS", [])]
    if frequency[0] in per_period and positions and max(positions) > candidates:
        raise InvalidInput(
            f"the recurrence rule never occurs: BYSETPOS beyond the {candidates} time(s) of "
            f"each {'hour' if frequency[0] == 'HOURLY' else 'minute'}"
        )
    # A day no month of the rule has (February 30): searching for it runs to the year 9999.
    months = [int(m) for m in rule.get("BYMONTH", [])] or list(range(1, 13))
    days = [abs(int(d)) for d in rule.get("BYMONTHDAY", [])]
    if days and min(days) > max(_MONTH_DAYS.get(m, 31) for m in months):
        raise InvalidInput("the recurrence rule never occurs (no such day in its months)")


def _utc_until(value: datetime | date, timezone: str, whole_days: bool) -> datetime:
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(0))
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(timezone))
    if whole_days:
        day = value.astimezone(ZoneInfo(timezone)).date()
        value = datetime.combine(day, time(0), ZoneInfo(timezone))
    return value.astimezone(UTC)


def exdate_text(moments: Iterable[datetime | date]) -> str:
    """EXDATE values as stored: UTC instants, or days for all-day interactions."""
    values = []
    for moment in moments:
        if isinstance(moment, datetime):
            utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
            values.append(f"{utc.year:04}{utc:%m%dT%H%M%SZ}")
        else:
            values.append(f"{moment.year:04}{moment:%m%d}")
    return ",".join(sorted(set(values)))


def exdate_values(series: Series) -> list[datetime | date]:
    """The stored EXDATEs: aware datetimes in the interaction's zone, or days."""
    found: list[datetime | date] = []
    for value in filter(None, series.exdates.split(",")):
        if len(value) == 8:
            found.append(date(int(value[:4]), int(value[4:6]), int(value[6:])))
        else:
            moment = datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            found.append(moment.astimezone(ZoneInfo(series.timezone)))
    return found


def check_object_rule(stored: str, start: object) -> None:
    """A rule as a calendar object of any calendar gives it, with its DTSTART: it must occur
    within FIRST_WITHIN_YEARS of that start, and at most MAX_COUNT times before its UNTIL
    (Radicale lists every occurrence of a rule with UNTIL, and searches for the first of one
    without: both unbounded otherwise)."""
    if isinstance(start, datetime):
        zone = start.tzinfo
        name = zone.key if isinstance(zone, ZoneInfo) else "UTC"
        first = start if zone is not None else start.replace(tzinfo=UTC)
        series = Series(first.astimezone(UTC), first.astimezone(UTC), False, name, stored)
    elif isinstance(start, date):
        moment = datetime.combine(start, time(0), UTC)
        series = Series(moment, moment, True, "UTC", stored)
    else:
        raise InvalidInput("DTSTART must be a date or a date-time")
    with budget():
        try:
            check_occurs(series)
        except (ValueError, OverflowError) as exc:  # dateutil: its BYxxx parts never meet
            raise InvalidInput(f"the recurrence rule {stored!r} never occurs: {exc}") from exc
        local = _local_first(series)
        plan = plan_of(stored, local)
        if plan.until is None or plan.count is not None:
            return
        until = _naive_local(plan.until, ZoneInfo(series.timezone))
        for number, moment in enumerate(search(plan, local, until, current().spend), start=1):
            if moment > until:
                return
            if number > MAX_COUNT:
                raise InvalidInput(
                    f"the recurrence rule has more than {MAX_COUNT:,} occurrences before its "
                    "UNTIL: give it a nearer UNTIL, or a COUNT"
                )


def check_occurs(series: Series) -> None:
    """InvalidInput unless the series' rule occurs within FIRST_WITHIN_YEARS of its start
    (a rule that never occurs would be searched to the year 9999)."""
    if series.rrule:
        first = _local_first(series)
        require_first(
            plan_of(series.rrule, first), first, ZoneInfo(series.timezone), current().spend
        )


def _naive_local(moment: datetime, tz: ZoneInfo) -> datetime:
    try:
        return moment.astimezone(tz).replace(tzinfo=None)
    except OverflowError:
        return (datetime.max if moment.year > 1 else datetime.min).replace(tzinfo=None)


def _local_first(series: Series) -> datetime:
    local = _naive_local(series.starts_at, ZoneInfo(series.timezone))
    return datetime.combine(local.date(), time(0)) if series.all_day else local


def _rule_occurrences(
    series: Series, lowest: datetime, highest: datetime
) -> Iterator[tuple[datetime, datetime]]:
    """The rule's occurrences (UTC start, UTC end) starting in [lowest, highest], excluded
    dates left out, in order."""
    tz = ZoneInfo(series.timezone)
    first = _local_first(series)
    plan = plan_of(series.rrule, first)
    duration = series.ends_at - series.starts_at
    days = round(duration / timedelta(days=1))
    excluded = {instant(value, series.timezone) for value in exdate_values(series)}
    low = plus(_naive_local(lowest, tz), -timedelta(days=1))
    high = plus(_naive_local(highest, tz), timedelta(days=1))
    if plan.until is not None:
        high = min(high, plus(_naive_local(plan.until, tz), timedelta(days=1)))
    dtstart = first if plan.count else aligned(plan, first, low)
    for moment in search(plan, dtstart, high, current().spend):
        start = utc_of(moment, tz)
        if moment > high or start is None or start > highest:
            return
        if (plan.until is not None and start > plan.until) or start < lowest:
            continue
        if start in excluded:
            continue
        if series.all_day:  # whole days, whatever the clock change in between
            last = utc_of(datetime.combine(moment.date(), time(0)) + timedelta(days=days), tz)
            yield start, last or FOREVER
        else:
            yield start, min(plus(start, duration), FOREVER)


def _moved(series: Series) -> dict[datetime, tuple[datetime, datetime]]:
    return {rid: (s, e) for rid, s, e in series.moves}


def instances(
    series: Series, start: datetime | None = None, end: datetime | None = None
) -> list[tuple[datetime, datetime, datetime]]:
    """The occurrences overlapping [start, end) (by default the whole series) as
    (RECURRENCE-ID, start, end), all UTC, moved occurrences at their new times, in order of
    start. An empty period counts at its instant."""
    low, high = start or datetime.min.replace(tzinfo=UTC), end or FOREVER

    def overlaps(s: datetime, e: datetime) -> bool:
        return (e > low or (s == e and s >= low)) and s < high

    if not series.rrule:
        only = (series.starts_at, series.starts_at, series.ends_at)
        return [only] if (start is None and end is None) or overlaps(*only[1:]) else []
    moved = _moved(series)
    duration = series.ends_at - series.starts_at
    found = [
        (rid, rid, e)
        for rid, e in _rule_occurrences(series, plus(low, -duration - timedelta(days=1)), high)
        if rid not in moved and overlaps(rid, e)
    ]
    found += [(rid, s, e) for rid, (s, e) in moved.items() if overlaps(s, e)]
    return sorted(found, key=lambda i: (i[1], i[0]))


def occurrences(
    series: Series, start: datetime | None = None, end: datetime | None = None
) -> list[tuple[datetime, datetime]]:
    """The occurrences (UTC start, UTC end) that overlap [start, end)."""
    return [(s, e) for _, s, e in instances(series, start, end)]


def occurrence(series: Series, rid: datetime) -> tuple[datetime, datetime, datetime] | None:
    """The occurrence whose RECURRENCE-ID is ``rid`` (at its new time if moved), if any."""
    if not series.rrule:
        return (rid, series.starts_at, series.ends_at) if rid == series.starts_at else None
    found = next((e for s, e in _rule_occurrences(series, rid, rid) if s == rid), None)
    if found is None:
        return None
    return (rid, *_moved(series).get(rid, (rid, found)))


def next_occurrence(series: Series, after: datetime) -> tuple[datetime, datetime] | None:
    """The first occurrence (UTC start, end) not over by ``after``."""
    moved = _moved(series)
    later = [(s, e) for s, e in moved.values() if e > after]
    if series.rrule:
        duration = series.ends_at - series.starts_at
        lowest = plus(after, -duration - timedelta(days=1))
        for s, e in _rule_occurrences(series, lowest, FOREVER):
            if s not in moved and e > after:
                later.append((s, e))
                break
    elif series.ends_at > after:
        later.append((series.starts_at, series.ends_at))
    return min(later, default=None)


def span(series: Series) -> tuple[datetime, datetime]:
    """Where the series' occurrences lie (UTC), as stored for queries to pre-select on: from
    its earliest start (a move may come before DTSTART) to its last end (``FOREVER`` for a
    series without end; after UNTIL's occurrence otherwise)."""
    moves = series.moves if series.rrule else ()
    first = min([series.starts_at, *(s for _, s, _ in moves)])
    ends = [series.ends_at, *(e for _, _, e in moves)]
    if series.rrule:
        plan = plan_of(series.rrule, _local_first(series))
        if plan.count:
            ends += [e for _, e in _rule_occurrences(series, series.starts_at, FOREVER)]
        elif plan.until is not None:  # no later than UNTIL's occurrence could end
            ends.append(plus(plan.until, series.ends_at - series.starts_at + timedelta(days=1)))
        else:
            ends.append(FOREVER)
    return first, min(max(ends), FOREVER)


def overlap(
    first: Sequence[tuple[datetime, datetime]], second: Sequence[tuple[datetime, datetime]]
) -> bool:
    """Whether any period of ``first`` overlaps any of ``second`` (both sorted)."""
    i = j = 0
    while i < len(first) and j < len(second):
        (a_start, a_end), (b_start, b_end) = first[i], second[j]
        if a_start < b_end and b_start < a_end:
            return True
        if a_end <= b_end:
            i += 1
        else:
            j += 1
    return False


# Units of each frequency in one 400-year cycle: a rule's pattern repeats after the cycles
# that make a whole number of its INTERVALs.
_UNITS_PER_CYCLE = {
    "YEARLY": 400,
    "MONTHLY": 4800,
    "WEEKLY": 20871,
    "DAILY": 146097,
    "HOURLY": 146097 * 24,
    "MINUTELY": 146097 * 24 * 60,
}
# After this, zones follow their yearly rule (the tz database lists transitions until 2037).
_ZONES_STEADY = datetime(2038, 1, 1, tzinfo=UTC)


def _cycles(series: Series) -> int:
    plan = plan_of(series.rrule, _local_first(series))
    return plan.interval // math.gcd(plan.interval, _UNITS_PER_CYCLE[plan.frequency])


def collide(one: Series, other: Series) -> bool:
    """Whether an occurrence of ``one`` overlaps one of ``other``, at any date.

    Over their common span; when both never end, over the part of it where they can first
    differ (up to their last exception and the zones' last listed change) and then one whole
    common cycle: both rules, their zones and the calendar repeat after it (400 years times
    what their INTERVALs need), so nothing later can overlap that did not already. Work is
    charged to the budget: InvalidInput when that cannot be done within it."""
    (a_first, a_last), (b_first, b_last) = span(one), span(other)
    low, high = max(a_first, b_first), min(a_last, b_last)
    if high == FOREVER:
        exceptions = [low, _ZONES_STEADY]
        for series in (one, other):
            exceptions += [m for _, s, e in series.moves for m in (s, e)]
            exceptions += [instant(v, series.timezone) for v in exdate_values(series)]
        cycles = math.lcm(_cycles(one), _cycles(other))
        years = min(CYCLE_YEARS * cycles, MAXYEAR)
        high = plus(max(exceptions), timedelta(days=366 * years))
    # 20 years at a time (a clash is usually found soon); a series much rarer than the other
    # is expanded alone, the other only during its occurrences.
    first = min(high, plus(low, timedelta(days=7305)))
    counts = len(occurrences(one, low, first)), len(occurrences(other, low, first))
    sparse, dense = (one, other) if counts[0] <= counts[1] else (other, one)
    rare = 8 * min(counts) < max(counts)
    while low <= high:
        step = min(high, plus(low, timedelta(days=7305)))
        if rare:
            for start, end in occurrences(sparse, low, step):
                if any(s < end and start < e for s, e in occurrences(dense, start, end)):
                    return True
        elif overlap(occurrences(one, low, step), occurrences(other, low, step)):
            return True
        if step == high:
            break
        low = step
    return False


def instant(value: object, timezone: str) -> datetime:
    """A DATE or DATE-TIME value (RECURRENCE-ID, EXDATE) as a UTC instant: floating times and
    dates are read in ``timezone``, a date as its midnight."""
    tz = ZoneInfo(timezone)
    try:
        if isinstance(value, datetime):
            return (value if value.tzinfo else value.replace(tzinfo=tz)).astimezone(UTC)
        if isinstance(value, date):
            return datetime.combine(value, time(0), tz).astimezone(UTC)
    except OverflowError as exc:
        raise InvalidInput("a recurrence date must lie in the years 1 to 9999") from exc
    raise InvalidInput("a recurrence date must be a date or a date-time")

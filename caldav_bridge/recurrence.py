"""Recurring interactions (RFC 5545 RRULE and EXDATE): checking rules and expanding them.

Time zone names reaching here were checked when the interaction's period was.

Occurrences are expanded up to a bounded horizon: far enough for booking rooms and answering
free-busy, never unbounded (a rule without end would never finish).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr
from icalendar import vRecur

from caldav_bridge.errors import InvalidInput

# How far after its first occurrence a recurring interaction is expanded, and at most how many
# occurrences: rooms and free-busy look no further.
HORIZON = timedelta(days=2 * 366)
MAX_OCCURRENCES = 1000


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
        rrulestr(f"RRULE:{stored}", dtstart=datetime(2000, 1, 1, tzinfo=UTC), forceset=True)
    except (ValueError, TypeError, KeyError) as exc:
        raise InvalidInput(f"the recurrence rule {text!r} is not valid: {exc}") from exc
    return stored


# A rule that searches through seconds (or never moves: INTERVAL=0) would hold a request for
# as long as it runs.
_FREQUENCIES = {"MINUTELY", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY"}
MAX_COUNT = 10_000
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
    for interval in rule.get("INTERVAL", []):
        if not 1 <= int(interval) <= 1000:
            raise InvalidInput("the recurrence rule's INTERVAL must be between 1 and 1000")
    for count in rule.get("COUNT", []):
        if not 1 <= int(count) <= MAX_COUNT:
            raise InvalidInput(f"the recurrence rule's COUNT must be between 1 and {MAX_COUNT:,}")
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
            values.append(f"{utc:%Y%m%dT%H%M%SZ}")
        else:
            values.append(f"{moment:%Y%m%d}")
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


def instances(series: Series) -> list[tuple[datetime, datetime, datetime]]:
    """Every occurrence within the horizon as (RECURRENCE-ID, start, end), all UTC, moved
    occurrences at their new times, in order of start."""
    duration = series.ends_at - series.starts_at
    if not series.rrule:
        return [(series.starts_at, series.starts_at, series.ends_at)]
    moved = {rid: (s, e) for rid, s, e in series.moves}
    found = [(rid, *moved.get(rid, (rid, end))) for rid, end in _expanded(series, duration)]
    return sorted(found, key=lambda i: (i[1], i[0]))


def occurrences(
    series: Series, start: datetime | None = None, end: datetime | None = None
) -> list[tuple[datetime, datetime]]:
    """The occurrences (UTC start, UTC end) that overlap [start, end), within the horizon."""
    return [
        (s, e)
        for _, s, e in instances(series)
        if (start is None or e > start or (s == e and s >= start)) and (end is None or s < end)
    ]


def last_end(series: Series) -> datetime:
    """The end of the last occurrence within the horizon."""
    return max((e for _, e in occurrences(series)), default=series.ends_at)


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


def _expanded(series: Series, duration: timedelta) -> Iterable[tuple[datetime, datetime]]:
    tz = ZoneInfo(series.timezone)
    local_start = series.starts_at.astimezone(tz)
    if series.all_day:
        local_start = datetime.combine(local_start.date(), time(0), tz)
    excluded = {instant(value, series.timezone) for value in exdate_values(series)}
    rule = rrulestr(f"RRULE:{series.rrule}", dtstart=local_start, forceset=True, ignoretz=False)
    horizon = local_start + HORIZON
    for moment in islice(rule, MAX_OCCURRENCES):
        if moment > horizon:
            break
        if moment.astimezone(UTC) in excluded:
            continue
        if series.all_day:  # whole days, whatever the clock change in between
            days = round(duration / timedelta(days=1))
            last = datetime.combine(moment.date() + timedelta(days=days), time(0), tz)
            yield moment.astimezone(UTC), last.astimezone(UTC)
        else:
            yield moment.astimezone(UTC), (moment + duration).astimezone(UTC)


def instant(value: object, timezone: str) -> datetime:
    """A DATE or DATE-TIME value (RECURRENCE-ID, EXDATE) as a UTC instant: floating times and
    dates are read in ``timezone``, a date as its midnight."""
    tz = ZoneInfo(timezone)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=tz)).astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tz).astimezone(UTC)
    raise InvalidInput("a recurrence date must be a date or a date-time")

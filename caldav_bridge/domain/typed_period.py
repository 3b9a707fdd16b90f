"""Times as people type them (the CLI's options, the web pages' fields): ``2026-11-30`` for a
day, ``2026-11-30T10:00`` or ``2026-11-30 10:00`` for a time, read in the owner's zone."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from caldav_bridge.domain.errors import InvalidInput

# Years a person types for an interaction: days around these still have a day after them
# (an all-day end, an agenda's range), which the last representable year has not.
FIRST_YEAR, LAST_YEAR = 1900, 2999


def moment(text: str) -> datetime | date:
    try:
        found: datetime | date = (
            date.fromisoformat(text.strip())
            if len(text.strip()) == 10
            else datetime.fromisoformat(text.strip())
        )
    except ValueError as exc:
        raise InvalidInput(
            f"{text!r} is not a date (2026-11-30) or a time (2026-11-30T10:00)"
        ) from exc
    if not FIRST_YEAR <= found.year <= LAST_YEAR:
        raise InvalidInput(f"{text!r} is not between the years {FIRST_YEAR} and {LAST_YEAR}")
    return found


def day(text: str) -> date:
    """A day as typed: ``2026-11-30``."""
    found = moment(text)
    if isinstance(found, datetime):
        raise InvalidInput(f"{text!r} is a time, not a day: type the day alone (2026-11-30)")
    return found


def period(start_text: str, end_text: str | None) -> tuple[datetime | date, datetime | date]:
    """Start and end as typed; an all-day end names the last day, included. No end: one hour
    later, or the same day."""
    return span(moment(start_text), moment(end_text) if end_text else None)


def span(
    start: datetime | date, end: datetime | date | None
) -> tuple[datetime | date, datetime | date]:
    """``period`` of values already read by ``moment``."""
    if isinstance(start, datetime):
        end = end if end is not None else start + timedelta(hours=1)
        if not isinstance(end, datetime):
            raise InvalidInput("the end must be a time too when the start is a time")
        return start, end
    last = end if end is not None else start
    if isinstance(last, datetime):
        raise InvalidInput("the end must be a day too when the start is a day")
    return start, last + timedelta(days=1)

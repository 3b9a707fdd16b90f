"""Times as people type them (the CLI's options, the web pages' fields): ``2026-11-30`` for a
day, ``2026-11-30T10:00`` or ``2026-11-30 10:00`` for a time, read in the owner's zone."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from caldav_bridge.errors import InvalidInput


def moment(text: str) -> datetime | date:
    try:
        if len(text.strip()) == 10:
            return date.fromisoformat(text.strip())
        return datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise InvalidInput(
            f"{text!r} is not a date (2026-11-30) or a time (2026-11-30T10:00)"
        ) from exc


def period(start_text: str, end_text: str | None) -> tuple[datetime | date, datetime | date]:
    """Start and end as typed; an all-day end names the last day, included. No end: one hour
    later, or the same day."""
    start = moment(start_text)
    if isinstance(start, datetime):
        end = moment(end_text) if end_text else start + timedelta(hours=1)
        if not isinstance(end, datetime):
            raise InvalidInput("the end must be a time too when the start is a time")
        return start, end
    last = moment(end_text) if end_text else start
    if isinstance(last, datetime):
        raise InvalidInput("the end must be a day too when the start is a day")
    return start, last + timedelta(days=1)

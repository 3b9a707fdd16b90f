"""The per-calendar change log that CalDAV sync reads (RFC 6578 deltas, deletions included).

Calendars are named by what they show: a user's interactions calendar, a resource's bookings.
"""

from __future__ import annotations

from sqlalchemy import insert
from sqlalchemy.orm import Session

from caldav_bridge.models import CalendarChange, utcnow


def user_calendar(user_id: int) -> str:
    return f"user/{user_id}/interactions"


def resource_calendar(resource_id: int) -> str:
    return f"resource/{resource_id}/bookings"


def inbox_calendar(user_id: int) -> str:
    return f"user/{user_id}/inbox"


def stored_calendar(collection_id: int) -> str:
    return f"stored/{collection_id}"


def record(session: Session, calendars: set[str], item_href: str, deleted: bool = False) -> None:
    """One item changed in each of ``calendars`` (a meeting with twenty attendees is in
    twenty-one calendars)."""
    record_items(session, [(calendar, item_href) for calendar in sorted(calendars)], deleted)


def record_items(session: Session, items: list[tuple[str, str]], deleted: bool = False) -> None:
    """(calendar, item name) pairs that changed, written in one statement."""
    now = utcnow()
    rows = [
        {"calendar": calendar, "item_href": href, "deleted": deleted, "changed_at": now}
        for calendar, href in items
    ]
    if rows:
        session.execute(insert(CalendarChange), rows)

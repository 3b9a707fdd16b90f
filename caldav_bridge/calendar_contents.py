"""Which interactions each calendar shows: a user's interactions calendar and a room's bookings
calendar, as CalDAV serves them and as their ICS feeds publish them (one rule for both); and
what a room's bookings calendar shows of each."""

from __future__ import annotations

from typing import Any

from icalendar import Calendar, Component, Event
from sqlalchemy import and_, select, union
from sqlalchemy.orm import Session

from caldav_bridge.models import Booking, Interaction, InteractionLink, InteractionStatus


def of_user(user_id: int) -> Any:
    """Those the user owns or is linked to, unless they took it out of their calendar."""
    # A union of two index lookups: an OR across the tables would scan every interaction.
    owned = select(Interaction.id).where(Interaction.owner_id == user_id)
    linked = select(InteractionLink.interaction_id).where(
        InteractionLink.user_id == user_id, InteractionLink.removed.is_(False)
    )
    return Interaction.id.in_(union(owned, linked))


def of_resource(resource_id: int) -> Any:
    """Those the resource is booked for (not those it declined)."""
    booked = select(Booking.interaction_id).where(
        Booking.resource_id == resource_id, Booking.declined.is_(False)
    )
    return Interaction.id.in_(booked)


def shown(which: Any) -> Any:
    """Of ``which``, those a calendar shows: a cancelled interaction leaves every calendar."""
    return and_(which, Interaction.status != InteractionStatus.CANCELLED)


def in_user_calendar(session: Session, user_id: int, uid: str) -> str | None:
    """The item name of the interaction with ``uid`` in the user's interactions calendar, if
    it is there. A user's calendars hold one copy of a meeting (RFC 6638 3.2.4.1): one of
    their own cannot hold it too; a meeting they have no part in says nothing."""
    query = select(Interaction.href).where(shown(of_user(user_id)), Interaction.uid == uid)
    return session.scalar(query)


# What every user reads of a meeting in a room's bookings calendar and feed: when the room is
# taken, by what subject. Whatever else the event holds (notes, organizer, attendees, place,
# alarms, attachments, links, X- properties, parameters such as ALTREP) is not copied.
_BOOKING_PROPERTIES = frozenset(
    {
        "UID",
        "DTSTAMP",
        "DTSTART",
        "DTEND",
        "DURATION",
        "RRULE",
        "RDATE",
        "EXDATE",
        "RECURRENCE-ID",
        "SEQUENCE",
        "SUMMARY",
        "STATUS",
        "TRANSP",
    }
)
_KEPT_PARAMETERS = frozenset({"TZID", "VALUE"})


def _bare(value: Any) -> Any:
    """A property value with only the parameters that say what its time means."""
    for one in value if isinstance(value, list) else [value]:
        params = getattr(one, "params", None)
        if params is not None:
            for name in [n for n in params if n.upper() not in _KEPT_PARAMETERS]:
                del params[name]
    return value


def _booking_event(event: Component) -> Event:
    kept = Event()
    for name, value in event.items():
        if name.upper() in _BOOKING_PROPERTIES:
            kept[name] = _bare(value)
    return kept


def booking_text(etag: str, ical: str) -> str:
    """An interaction's text (``ical``, whose content hash is ``etag``) as a room's bookings
    calendar shows it to every user: its times (recurrence and moved occurrences included)
    and subject. Remembered by ETag: the same text is not parsed again."""
    shown = _BOOKING_TEXTS.get(etag)
    if shown is None:
        if len(_BOOKING_TEXTS) >= _REMEMBERED:
            _BOOKING_TEXTS.clear()
        shown = _BOOKING_TEXTS[etag] = _booking_text(ical)
    return shown


_REMEMBERED = 4096  # projected texts are a few kB: a few MB at most
_BOOKING_TEXTS: dict[str, str] = {}


def _booking_text(ical: str) -> str:
    calendar = Calendar.from_ical(ical)
    shown = Calendar()
    for name in ("PRODID", "VERSION", "CALSCALE"):
        if name in calendar:
            shown[name] = calendar[name]
    for component in calendar.subcomponents:
        if component.name == "VTIMEZONE":
            shown.add_component(component)
        elif component.name == "VEVENT":
            shown.add_component(_booking_event(component))
    return str(shown.to_ical().decode())

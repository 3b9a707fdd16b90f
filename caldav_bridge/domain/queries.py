"""Who is shown an interaction, and which interactions each calendar shows: a user's
interactions calendar and a room's bookings calendar, as CalDAV serves them and as their ICS
feeds publish them (one rule for both); and what a room's bookings calendar shows of each."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from icalendar import Calendar, Component, Event
from sqlalchemy import and_, case, func, or_, select, true, union
from sqlalchemy.orm import Session

from caldav_bridge.domain.errors import CalDavPrecondition, NotAllowed, UidConflict
from caldav_bridge.domain.models import (
    Booking,
    Interaction,
    InteractionLink,
    InteractionStatus,
    LinkStatus,
    StoredCollection,
    User,
)

# ---------------------------------------------------------------- who is shown an interaction
# One rule, said in SQL (``of_user``) and in Python (``shown_to``) side by side: an interaction
# is shown to its owner and to each user linked to it; a user unlinked from it is shown it
# nowhere. A linked user who declined it by deleting it from their calendar (``removed``) is
# still among its participants: the CRM pages and the RSVP page show it to them, where they
# may change their mind (answering brings it back); their calendars (CalDAV, the ICS feed) do
# not. ``in_calendars`` says which of the two is asked.


def _kept(in_calendars: bool) -> Any:
    """The links whose user is shown the interaction: in their calendars, those they kept."""
    return InteractionLink.removed.is_(False) if in_calendars else true()


def of_user(user_id: int, in_calendars: bool = True) -> Any:
    """Those shown to the user: owned, or linked (and, ``in_calendars``, not taken out)."""
    # A union of two index lookups: an OR across the tables would scan every interaction.
    owned = select(Interaction.id).where(Interaction.owner_id == user_id)
    linked = select(InteractionLink.interaction_id).where(
        InteractionLink.user_id == user_id, _kept(in_calendars)
    )
    return Interaction.id.in_(union(owned, linked))


def shown_to(interaction: Interaction, user_id: int, in_calendars: bool = True) -> bool:
    """Whether ``interaction`` is shown to the user: ``of_user`` in Python."""
    if interaction.owner_id == user_id:
        return True
    link = next((k for k in interaction.links if k.user_id == user_id), None)
    return link is not None and not (in_calendars and link.removed)


def require_shown(interaction: Interaction, user: User) -> None:
    """The CRM's refusal to show an interaction to someone it is not shown to."""
    if not shown_to(interaction, user.id, in_calendars=False):
        raise NotAllowed("only its owner and linked users see an interaction")


# Where a user stands in each interaction of their list, as the list filters it.
STANDINGS = ("owner", *(s.value for s in LinkStatus), "cancelled")


def standing(interaction: Interaction, link: InteractionLink | None) -> str:
    """One of ``STANDINGS``: cancelled, else owner (``link`` None), else their link's status
    (a tentative answer keeps it Invited)."""
    if interaction.cancelled:
        return "cancelled"
    return "owner" if link is None else link.status.value


def of_interactions_calendar(user_id: int) -> Any:
    """Of the user's, those their interactions calendar holds: all but those they keep in a
    calendar of their own."""
    owned = select(Interaction.id).where(
        Interaction.owner_id == user_id, Interaction.calendar_id.is_(None)
    )
    linked = select(InteractionLink.interaction_id).where(
        InteractionLink.user_id == user_id,
        _kept(in_calendars=True),
        InteractionLink.calendar_id.is_(None),
    )
    return Interaction.id.in_(union(owned, linked))


def of_calendar(collection_id: int) -> Any:
    """Those a calendar a user made holds: meetings they organise or moved there."""
    owned = select(Interaction.id).where(Interaction.calendar_id == collection_id)
    linked = select(InteractionLink.interaction_id).where(
        InteractionLink.calendar_id == collection_id, _kept(in_calendars=True)
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


def name_in(user_id: int) -> Any:
    """The name each interaction has in one user's calendars (SQL): the organizer's own, or
    the one everyone shares."""
    own = func.coalesce(Interaction.organizer_href, Interaction.href)
    return case((Interaction.owner_id == user_id, own), else_=Interaction.href)


def named(user_id: int, hrefs: Collection[str]) -> Any:
    """Those named one of ``hrefs`` in the user's calendars (looked up by index first)."""
    wanted = list(hrefs)
    return and_(
        or_(Interaction.href.in_(wanted), Interaction.organizer_href.in_(wanted)),
        name_in(user_id).in_(wanted),
    )


def name_of(interaction: Interaction, user_id: int) -> str:
    """The name of ``interaction`` in one user's calendars (``name_in`` in Python)."""
    if interaction.owner_id == user_id and interaction.organizer_href:
        return interaction.organizer_href
    return interaction.href


@dataclass(frozen=True)
class Placement:
    """Where one user's calendars hold an interaction: its name, and the calendar of their
    own that holds it (None: their interactions calendar)."""

    href: str
    calendar_id: int | None


def placement_of(interaction: Interaction, user_id: int) -> int | None:
    """The calendar of the user's own holding the interaction for them, if one does."""
    if interaction.owner_id == user_id:
        return interaction.calendar_id
    link = next((k for k in interaction.links if k.user_id == user_id), None)
    return None if link is None else link.calendar_id


def in_user_calendar(session: Session, user_id: int, uid: str) -> Placement | None:
    """Where the interaction with ``uid`` is in the user's calendars, if it is there. A
    user's calendars hold one copy of a meeting (RFC 6638 3.2.4.1); a meeting they have no
    part in says nothing."""
    query = select(Interaction).where(shown(of_user(user_id)), Interaction.uid == uid)
    interaction = session.scalar(query)
    if interaction is None:
        return None
    return Placement(name_of(interaction, user_id), placement_of(interaction, user_id))


def check_one_copy(
    session: Session, user_id: int, uid: str, calendar_id: int | None, href: str
) -> None:
    """A user's calendars hold one copy of a meeting (RFC 6638 3.2.4.1), and a calendar one
    item of a UID (RFC 4791 5.3.2.1): writing its UID anywhere but where it is is refused,
    with where it is."""
    placement = in_user_calendar(session, user_id, uid)
    if placement is None or placement == Placement(href, calendar_id):
        return
    if placement.calendar_id == calendar_id:
        raise UidConflict(f"{placement.href} in this calendar has the UID {uid!r} already")
    where = "'CRM interactions'"
    if placement.calendar_id is not None:
        path = session.scalar(
            select(StoredCollection.path).where(StoredCollection.id == placement.calendar_id)
        )
        where = f"/{path}/"
    raise CalDavPrecondition(
        "C:unique-scheduling-object-resource",
        f"this meeting is in your calendar {where} already, as {placement.href}: "
        "change it there, or move it here",
    )


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


# CLASS (RFC 5545 3.8.1.3) is the organizer's wish; honouring it is the server's. As
# CalendarServer's private events do for those who are not the owner: the time is always
# shown (so the room or the person is seen busy), PRIVATE shows nothing else, CONFIDENTIAL a
# generic subject in place of the real one.
RESTRICTED = frozenset({"PRIVATE", "CONFIDENTIAL"})
CONFIDENTIAL_SUMMARY = "Busy"


def shown_summary(access: Any, summary: str) -> str:
    """The SUMMARY others read of an event of access class ``access`` ("" for none)."""
    value = str(access or "PUBLIC").strip().upper()
    if value == "PRIVATE":
        return ""
    return CONFIDENTIAL_SUMMARY if value == "CONFIDENTIAL" else summary


def restricted(calendar: Calendar) -> bool:
    """Whether an event of ``calendar`` is PRIVATE or CONFIDENTIAL."""
    return any(
        str(e.get("CLASS", "")).strip().upper() in RESTRICTED for e in calendar.walk("VEVENT")
    )


def _booking_event(event: Component, series: Component | None) -> Event:
    """What others read of one VEVENT; CLASS (its own, else its series') is honoured
    (``shown_summary``): PRIVATE shows the time only, CONFIDENTIAL a generic subject."""
    kept = Event()
    for name, value in event.items():
        if name.upper() in _BOOKING_PROPERTIES:
            kept[name] = _bare(value)
    access = event.get("CLASS", series.get("CLASS") if series is not None else None)
    summary = shown_summary(access, str(event.get("SUMMARY", "")))
    kept.pop("SUMMARY", None)
    if summary:
        kept.add("summary", summary)
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
    series = next((e for e in calendar.walk("VEVENT") if "RECURRENCE-ID" not in e), None)
    for name in ("PRODID", "VERSION", "CALSCALE"):
        if name in calendar:
            shown[name] = calendar[name]
    for component in calendar.subcomponents:
        if component.name == "VTIMEZONE":
            shown.add_component(component)
        elif component.name == "VEVENT":
            shown.add_component(_booking_event(component, series))
    return str(shown.to_ical().decode())

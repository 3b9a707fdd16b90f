"""The iCalendar face of an interaction (DESIGN.md section 2), both ways, with ``icalendar``.

Out: an interaction becomes a VCALENDAR with one VEVENT (owner as ORGANIZER and CHAIR attendee,
linked users with the PARTSTAT of their status, rooms as CUTYPE=ROOM attendees) and the
VTIMEZONE it needs. Back: a VEVENT gives the fields an owner may change, and an attendee's
PARTSTAT gives that attendee's answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from icalendar import Calendar, Event, Timezone, vCalAddress, vRecur
from icalendar.timezone import tzid_from_dt
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from caldav_bridge import __version__
from caldav_bridge.domain import recurrence
from caldav_bridge.domain.errors import InvalidInput
from caldav_bridge.domain.models import (
    Guest,
    Interaction,
    InteractionLink,
    LinkStatus,
    ResourceKind,
    User,
)
from caldav_bridge.domain.rules import ANSWER_OF_PARTSTAT, partstat
from caldav_bridge.domain.rules import Answer as Answer  # noqa: PLC0414 (importable here too)
from caldav_bridge.ical import source, timezones
from caldav_bridge.ical.source import normalize_address as normalize_address  # noqa: PLC0414 (here too)

PRODID = f"-//caldav-bridge//caldav-bridge {__version__}//EN"


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"unknown time zone {name!r} (use a name like Europe/Paris)") from exc


# ---------------------------------------------------------------------------- out


def _address(email: str | None, fallback: str) -> vCalAddress:
    return vCalAddress(f"mailto:{email}" if email else fallback)


USER_URN = "urn:x-caldav-bridge:user:"


def addresses_of(user: User) -> set[str]:
    """Every calendar address of a user, normalised: their emails, and the address that names
    them in events when they have none."""
    return {e.address for e in user.emails} | {f"{USER_URN}{user.login}"}


def _person(user: User, **params: str) -> vCalAddress:
    address = _address(user.email, f"{USER_URN}{user.login}")
    address.params["CN"] = user.display_name
    address.params.update(params)
    return address


def _local(interaction: Interaction, moment: datetime) -> datetime:
    return moment.astimezone(zone(interaction.timezone))


def _vtimezone(interaction: Interaction) -> Timezone:
    """Valid for every occurrence (RFC 5545 3.6.5), an endless series included."""
    return timezones.vtimezone(interaction.timezone, _local(interaction, interaction.starts_at))


def location_text(interaction: Interaction) -> str:
    """The LOCATION clients show: the typed location, else the booked rooms' names."""
    if interaction.location:
        return interaction.location
    return ", ".join(
        b.resource.name
        for b in interaction.bookings
        if b.resource.kind is ResourceKind.ROOM and not b.declined
    )


def interaction_event(
    interaction: Interaction,
    only_attendee: User | Guest | None = None,
    stamp: datetime | None = None,
    method: str | None = None,
    occurrence: tuple[datetime, datetime, datetime] | None = None,
) -> Event:
    """The VEVENT; ``only_attendee`` limits the attendees to one (a REPLY, or the CANCEL that
    tells a removed user, who is then no longer linked but still named). With ``occurrence``
    (its UTC start and end), the instance of a recurring interaction (RECURRENCE-ID), with
    the answers given to that occurrence: (RECURRENCE-ID, start, end), UTC."""
    event = Event()
    event.add("uid", interaction.uid)
    event.add("dtstamp", stamp or interaction.modified_at)
    event.add("created", interaction.created_at)
    event.add("last-modified", interaction.modified_at)
    event.add("sequence", interaction.sequence)
    rid, start, end = occurrence or (None, interaction.starts_at, interaction.ends_at)
    _add_moment(event, "dtstart", interaction, start)
    _add_moment(event, "dtend", interaction, end)
    if rid is not None:
        _add_moment(event, "recurrence-id", interaction, rid)
    elif interaction.rrule:
        _add_recurrence(event, interaction)
    event.add("summary", interaction.subject)
    if interaction.notes:
        event.add("description", interaction.notes)
    event.add("categories", [interaction.kind])
    location = location_text(interaction)
    if location:
        event.add("location", location)
    if interaction.cancelled:
        event.add("status", "CANCELLED")
    elif method != "CANCEL":  # RFC 5546 3.2.5: no STATUS when uninviting some attendees
        event.add("status", "CONFIRMED")
    event.add("transp", "TRANSPARENT" if interaction.cancelled else "OPAQUE")
    event.add("organizer", _person(interaction.owner))
    # RFC 6638 section 7.3: the organizer's copy says what became of each delivery; iTIP
    # messages carry no scheduling parameters.
    stored = method is None
    _add_people(event, interaction, only_attendee, rid, stored)
    if only_attendee is None:
        _add_resources(event, interaction, stored)
    return event


def _add_people(
    event: Event,
    interaction: Interaction,
    only_attendee: User | Guest | None,
    rid: datetime | None,
    stored: bool,
) -> None:
    """The owner, the linked users (with their answers to occurrence ``rid``) and the guests
    as ATTENDEEs; only ``only_attendee`` when given."""
    only_user = only_attendee if isinstance(only_attendee, User) else None
    if only_attendee is None or (only_user is not None and only_user.id == interaction.owner_id):
        event.add(
            "attendee",
            _person(interaction.owner, CUTYPE="INDIVIDUAL", ROLE="CHAIR", PARTSTAT="ACCEPTED"),
        )
    for link in interaction.links:
        if only_attendee is not None and (only_user is None or link.user_id != only_user.id):
            continue
        status, tentative = answer_to(link, rid)
        params = {
            "CUTYPE": "INDIVIDUAL",
            "ROLE": "REQ-PARTICIPANT",
            "PARTSTAT": partstat(status, tentative),
        }
        if status is LinkStatus.INVITED:
            params["RSVP"] = "TRUE"
        if stored:
            params.update(_schedule_params(link.client_scheduled, _DELIVERED))
        event.add("attendee", _person(link.user, **params))
    if only_attendee is None:
        for guest in interaction.guests:
            event.add("attendee", _guest(guest, stored))
    if only_user is not None and only_user.id not in {
        interaction.owner_id,
        *(k.user_id for k in interaction.links),
    }:
        event.add("attendee", _person(only_user, CUTYPE="INDIVIDUAL", ROLE="REQ-PARTICIPANT"))
    if isinstance(only_attendee, Guest):
        event.add("attendee", _guest(only_attendee, stored=False))


def _add_resources(event: Event, interaction: Interaction, stored: bool) -> None:
    """The booked rooms and resources as ATTENDEEs with their answers."""
    for booking in interaction.bookings:
        resource = booking.resource
        room = _address(resource.email, f"urn:x-caldav-bridge:resource:{resource.slug}")
        room.params.update(
            CN=resource.name,
            CUTYPE="ROOM" if resource.kind is ResourceKind.ROOM else "RESOURCE",
            ROLE="NON-PARTICIPANT",
            PARTSTAT="DECLINED" if booking.declined else "ACCEPTED",
        )
        if stored:
            room.params["SCHEDULE-STATUS"] = _DELIVERED
        event.add("attendee", room)


def series_of(interaction: Interaction) -> recurrence.Series:
    moves = (
        tuple((m.recurrence_id, m.starts_at, m.ends_at) for m in interaction.moves)
        if interaction.rrule
        else ()
    )
    return recurrence.Series(
        interaction.starts_at,
        interaction.ends_at,
        interaction.all_day,
        interaction.timezone,
        interaction.rrule,
        interaction.exdates,
        moves,
    )


def _add_recurrence(event: Event, interaction: Interaction) -> None:
    """RRULE (UNTIL as a date for all-day series, RFC 5545 3.3.10) and EXDATEs in the
    interaction's zone, as DTSTART is."""
    rule = vRecur.from_ical(interaction.rrule)
    if interaction.all_day and "UNTIL" in rule:
        tz = zone(interaction.timezone)
        rule["UNTIL"] = [u.astimezone(tz).date() for u in rule["UNTIL"]]
    event.add("rrule", rule)
    excluded = recurrence.exdate_values(series_of(interaction))
    if excluded:
        event.add("exdate", excluded)


# iTIP request statuses (RFC 5546 section 3.6) the organizer's copy shows per attendee.
_DELIVERED = "1.2"  # in the CRM user's (or room's) own calendar and schedule inbox
_SENT = "1.1"  # handed to email


def _guest(guest: Guest, stored: bool) -> vCalAddress:
    address = vCalAddress(f"mailto:{guest.address}")
    if guest.name:
        address.params["CN"] = guest.name
    address.params.update(CUTYPE="INDIVIDUAL", ROLE="REQ-PARTICIPANT", PARTSTAT=guest.partstat)
    if stored:
        address.params.update(_schedule_params(guest.client_scheduled, _SENT))
    return address


def _schedule_params(client_scheduled: bool, status: str) -> dict[str, str]:
    return {"SCHEDULE-AGENT": "CLIENT"} if client_scheduled else {"SCHEDULE-STATUS": status}


def interaction_calendar(
    interaction: Interaction,
    method: str | None = None,
    only_attendee: User | Guest | None = None,
    stamp: datetime | None = None,
    occurrence: datetime | None = None,
) -> Calendar:
    """The series (with an instance for each occurrence someone answered apart), or, with
    ``occurrence``, that one instance (the REPLY to one occurrence)."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    if method:
        calendar.add("method", method)
    if not interaction.all_day and interaction.timezone != "UTC":
        calendar.add_component(_vtimezone(interaction))
    written = source.parsed(interaction.source) if interaction.source else None
    if occurrence is None:
        calendar.add_component(interaction_event(interaction, only_attendee, stamp, method))
        instances = _apart(interaction, written)
    else:
        found = recurrence.occurrence(series_of(interaction), occurrence)
        instances = [found] if found else []
    for instance in instances:
        calendar.add_component(
            interaction_event(interaction, only_attendee, stamp, method, occurrence=instance)
        )
    if written is None or method == "REPLY":  # a REPLY is the attendee's: no organizer's text
        return calendar
    return source.merged(calendar, written, _instant_in(interaction), itip=method is not None)


def _instant_in(interaction: Interaction) -> Callable[[datetime | date], datetime]:
    """A RECURRENCE-ID's instant, a floating or all-day one read in the interaction's zone."""
    return lambda value: recurrence.instant(value, interaction.timezone)


def answer_to(link: InteractionLink, occurrence: datetime | None) -> tuple[LinkStatus, bool]:
    """A linked user's (status, tentative) for the series, or for one occurrence of it."""
    if occurrence is not None:
        for answer in link.occurrence_answers:
            if answer.recurrence_id == occurrence:
                return answer.status, answer.tentative
    return link.status, link.tentative


def _apart(
    interaction: Interaction, written: Calendar | None
) -> list[tuple[datetime, datetime, datetime]]:
    """The occurrences (RECURRENCE-ID, start, end; UTC) that were moved, that someone
    answered apart from the series, or that the organizer's client wrote an instance of (its
    own summary or description): each is written as an instance of its own."""
    if not interaction.rrule:
        return []
    apart = {a.recurrence_id for k in interaction.links for a in k.occurrence_answers}
    apart |= {m.recurrence_id for m in interaction.moves}
    if written is not None:
        instant = _instant_in(interaction)
        apart |= {k for k in source.keys(written, instant) if isinstance(k, datetime)}
    if not apart:
        return []
    series = series_of(interaction)
    found = (recurrence.occurrence(series, rid) for rid in sorted(apart))
    return sorted((i for i in found if i), key=lambda i: (i[1], i[0]))


def _add_moment(event: Event, name: str, interaction: Interaction, moment: datetime) -> None:
    """A date-time property as DTSTART is written: a date (all day), UTC, or local with TZID."""
    if interaction.all_day:
        event.add(name, _local(interaction, moment).date())
    elif interaction.timezone == "UTC":
        event.add(name, moment)
    else:
        event.add(name, _local(interaction, moment))


def interaction_ical(
    interaction: Interaction,
    method: str | None = None,
    only_attendee: User | Guest | None = None,
    stamp: datetime | None = None,
    occurrence: datetime | None = None,
) -> str:
    calendar = interaction_calendar(interaction, method, only_attendee, stamp, occurrence)
    return str(calendar.to_ical().decode())


# ---------------------------------------------------------------------------- back


@dataclass(frozen=True)
class EventFields:
    """What an owner may set from a VEVENT: the editable fields of an interaction."""

    subject: str
    notes: str
    kind: str
    location: str
    start: datetime | date
    end: datetime | date
    timezone: str
    rrule: str = ""  # the RRULE value as the client wrote it
    exdates: tuple[datetime | date, ...] = ()


@cache
def _iana_names() -> frozenset[str]:
    return frozenset(available_timezones())


def zone_name(moment: datetime, default: str) -> str:
    """The IANA name for the zone of a parsed DTSTART (Windows names mapped), else ``default``.

    Unknown custom zones still give the right instant: the VTIMEZONE was applied on parsing.
    """
    if moment.tzinfo is None:
        return default
    name = (tzid_from_dt(moment) or "").strip()
    for prefix in ("/freeassociation.sourceforge.net/Tzfile/", "/freeassociation.sourceforge.net/"):
        name = name.removeprefix(prefix)
    if name in _iana_names():
        return name
    if name in WINDOWS_TO_OLSON:
        return WINDOWS_TO_OLSON[name]
    return "UTC" if moment.utcoffset() == timedelta(0) else default


def _text(event: Event, name: str) -> str:
    value = event.get(name)
    return str(value).strip() if value is not None else ""


def event_fields(event: Event, default_timezone: str) -> EventFields:
    """The editable fields of a VEVENT; floating times are read in ``default_timezone``."""
    try:
        start = event.start
        end = event.end
    except (KeyError, ValueError, TypeError) as exc:
        raise InvalidInput(f"the event has no usable DTSTART/DTEND: {exc}") from exc
    all_day = not isinstance(start, datetime)
    if all_day:
        if isinstance(end, datetime):
            end = end.date()
        if end <= start:
            end = start + timedelta(days=1)
        timezone = default_timezone
    else:
        assert isinstance(start, datetime)
        if not isinstance(end, datetime):
            end = datetime.combine(end, start.timetz())
        if start.tzinfo is None:
            start = start.replace(tzinfo=zone(default_timezone))
            end = end.replace(tzinfo=start.tzinfo)
        elif end.tzinfo is None:
            end = end.replace(tzinfo=start.tzinfo)
        timezone = zone_name(start, default_timezone)
    categories = event.categories
    rule = event.get("RRULE")
    if isinstance(rule, list):
        raise InvalidInput("an event with more than one RRULE is not supported")
    return EventFields(
        subject=_text(event, "SUMMARY"),
        notes=_text(event, "DESCRIPTION"),
        kind=next((str(c).strip().lower() for c in categories if str(c).strip()), "meeting"),
        location=_text(event, "LOCATION"),
        start=start,
        end=end,
        timezone=timezone,
        rrule=rule.to_ical().decode() if rule is not None else "",
        exdates=_exdates(event, start),
    )


def _exdates(event: Event, start: datetime | date) -> tuple[datetime | date, ...]:
    """EXDATE values; floating ones take DTSTART's zone."""
    found = event.get("EXDATE")
    lists = found if isinstance(found, list) else [found] if found is not None else []
    values: list[datetime | date] = []
    for listed in lists:
        for value in listed.dts:
            moment = value.dt
            if isinstance(moment, datetime) and moment.tzinfo is None:
                moment = moment.replace(tzinfo=start.tzinfo if isinstance(start, datetime) else UTC)
            values.append(moment)
    return tuple(values)


def attendee_answer(event: Event, addresses: Iterable[str]) -> Answer | None:
    """The answer carried by the PARTSTAT of the attendee with one of ``addresses``.

    None when that attendee is absent or still NEEDS-ACTION; an unknown PARTSTAT is refused.
    """
    wanted = {normalize_address(a) for a in addresses}
    for attendee in event.attendees:
        if normalize_address(attendee) not in wanted:
            continue
        value = str(attendee.params.get("PARTSTAT", "NEEDS-ACTION")).strip().upper()
        if value == "NEEDS-ACTION":
            return None
        if value not in ANSWER_OF_PARTSTAT:
            raise InvalidInput(f"PARTSTAT {value!r} is not an answer this server understands")
        return ANSWER_OF_PARTSTAT[value]
    return None


def message_stamp(event: Event) -> tuple[int, datetime | None]:
    """The SEQUENCE and DTSTAMP (UTC; None when absent or a date) of an iTIP message's
    VEVENT or of an attendee's copy: what orders answers (``rules.stale``)."""
    try:
        sequence = int(event.get("SEQUENCE", 0))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"SEQUENCE is not a number: {exc}") from exc
    try:
        stamp = event.decoded("DTSTAMP") if "DTSTAMP" in event else None
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"DTSTAMP is not a date-time: {exc}") from exc
    if not isinstance(stamp, datetime):
        return sequence, None
    return sequence, (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).astimezone(UTC)

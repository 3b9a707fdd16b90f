"""The organizer's event, whole (issue 16): what their client wrote, merged with what the CRM rules.

An interaction saved by its organizer's client keeps that client's VCALENDAR
(``Interaction.source``). Every copy and every iTIP message is the CRM's rendering
(``mapping.interaction_calendar``) merged into it, component by component (the series, and each
instance by RECURRENCE-ID): the CRM decides the properties in ``RULED`` (times, texts, the type,
status, organizer and attendees with their answers, SEQUENCE, DTSTAMP), and every other property,
parameter and component the client wrote comes back as written (X- properties such as Teams'
links, ATTACH, URL, CONFERENCE, RELATED-TO, CLASS, PRIORITY, alarms...). Where the CRM's value is
the client's (the same instants, the same text), the client's property is kept with its
parameters (TZID, LANGUAGE, ALTREP).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

from icalendar import Calendar, Component, Event, vCalAddress

# Decided by the CRM in every component it renders; a ruled property it does not render (the
# client's DURATION beside the CRM's DTEND, an RRULE on an instance) is not kept.
RULED = frozenset(
    {
        "UID",
        "DTSTAMP",
        "CREATED",
        "LAST-MODIFIED",
        "SEQUENCE",
        "DTSTART",
        "DTEND",
        "DURATION",
        "RECURRENCE-ID",
        "RRULE",
        "RDATE",
        "EXRULE",
        "EXDATE",
        "SUMMARY",
        "DESCRIPTION",
        "LOCATION",
        "CATEGORIES",
        "STATUS",
        "TRANSP",
        "ORGANIZER",
        "ATTENDEE",
    }
)
# What the client wrote beside a text, stale once the CRM's text replaces it (Outlook shows
# X-ALT-DESC before DESCRIPTION; Apple's structured location is a map of the old place).
_STALE_WITH = {"DESCRIPTION": ("X-ALT-DESC",), "LOCATION": ("X-APPLE-STRUCTURED-LOCATION",)}
_TEXTS = ("SUMMARY", "DESCRIPTION", "LOCATION")
# Scheduling parameters the server sets (RFC 6638 7.3), and what only the CRM knows of a person.
_SERVER_PARAMETERS = frozenset({"SCHEDULE-STATUS", "SCHEDULE-AGENT", "SCHEDULE-FORCE-SEND"})
_CALENDAR_OWN = frozenset({"PRODID", "VERSION", "METHOD"})
# The state of the organizer's own alarms (Thunderbird's), which iTIP messages do not carry.
_ALARM_STATE = ("X-MOZ-LASTACK", "X-MOZ-SNOOZE-TIME")
# No news to attendees: the stamp, the client's own bookkeeping (Thunderbird's save count and
# alarm state, Apple's travel time), and the people, whom a change concerns the CRM tells itself.
_NO_NEWS = ("DTSTAMP", "X-MOZ-", "X-APPLE-TRAVEL-", "ORGANIZER", "ATTENDEE")

Key = datetime | date | None  # a component's RECURRENCE-ID, UTC; None: the series


@lru_cache(maxsize=256)
def parsed(source: str) -> Calendar:
    """The client's calendar, parsed once for the several renderings of one change (the
    copies and each iTIP message); never changed by ``merged``, which only reads it."""
    return Calendar.from_ical(source)


def key_of(component: Component, instant: Any) -> Key:
    """The component's RECURRENCE-ID as ``instant`` (``recurrence.instant`` in the interaction's
    zone) gives it; None for the series."""
    if "RECURRENCE-ID" not in component:
        return None
    return instant(component.decoded("RECURRENCE-ID"))  # type: ignore[no-any-return]


def merged(rendered: Calendar, source: Calendar, instant: Any, itip: bool) -> Calendar:
    """``rendered`` (the CRM's calendar) merged into the client's ``source``; ``instant`` turns
    a RECURRENCE-ID into its key. An iTIP message (``itip``) carries no alarm of the organizer's."""
    events = {key_of(e, instant): e for e in source.walk("VEVENT") if isinstance(e, Event)}
    series = events.get(None)
    calendar = Calendar()
    for name in ("PRODID", "VERSION", "METHOD"):
        if name in rendered:
            calendar[name] = rendered[name]
    for name, value in source.items():
        if name.upper() not in _CALENDAR_OWN:
            calendar[name] = value
    out = []
    for event in rendered.subcomponents:
        if not isinstance(event, Event):
            continue
        written = events.get(key_of(event, instant))
        out.append(_merged_event(event, written or series, series if written else None, itip))
    # The CRM's zone is valid for every occurrence; the client's others where still named.
    zones = _zones(source) | _zones(rendered)
    used = set().union(*(_tzids(e) for e in out))
    for tzid, vtimezone in zones.items():
        if tzid in used:
            calendar.add_component(vtimezone)
    for event in out:
        calendar.add_component(event)
    return calendar


def _zones(calendar: Calendar) -> dict[str, Component]:
    return {str(z.get("TZID", "")): z for z in calendar.walk("VTIMEZONE")}


def _tzids(component: Component) -> set[str]:
    found = set()
    for value in component.values():
        for one in value if isinstance(value, list) else [value]:
            tzid = getattr(one, "params", {}).get("TZID")
            if tzid:
                found.add(str(tzid))
    for sub in component.subcomponents:
        found |= _tzids(sub)
    return found


def _merged_event(
    rendered: Event, written: Event | None, override_of: Event | None, itip: bool
) -> Event:
    """One VEVENT: the client's ``written`` (its own instance, or the series for an instance
    only the CRM has; ``override_of`` the series when ``written`` is an instance of its own)
    with the CRM's ``rendered`` properties where the CRM rules."""
    if written is None:
        return rendered
    decided = _decided(rendered, written, override_of)
    stale = {
        extra
        for name, kept in _STALE_WITH.items()
        if name in written and decided.get(name) is not written[name]
        for extra in kept
    }
    event = Event()
    for name, value in written.items():
        upper = name.upper()
        if upper in RULED:
            if upper in decided and upper not in event:
                event[upper] = decided.pop(upper)
        elif upper not in stale and not (itip and upper.startswith(_ALARM_STATE)):
            event[name] = value
    for name, value in decided.items():
        event[name] = value
    for sub in written.subcomponents:
        if not (itip and sub.name == "VALARM"):
            event.add_component(sub)
    return event


def _decided(rendered: Event, written: Event, override_of: Event | None) -> dict[str, Any]:
    """The ruled properties as the merged event holds them: the CRM's, or the client's own
    where they say the same (or say what the CRM leaves to the client)."""
    decided: dict[str, Any] = {n.upper(): v for n, v in rendered.items()}
    if _same_times(rendered, written):
        for name in ("DTSTART", "DTEND", "DURATION"):
            decided.pop(name, None)
            if name in written:
                decided[name] = written[name]
    for name in ("UID", "CREATED", "RECURRENCE-ID"):
        if name in written and (name in decided or name == "CREATED"):
            decided[name] = written[name]
    for name in ("RRULE", "EXDATE"):
        if (
            name in decided
            and name in written
            and _instants(written, name) == _instants(rendered, name)
        ):
            decided[name] = written[name]
    for name in _TEXTS:
        if _kept_text(name, rendered, written, override_of):
            decided[name] = written[name]
    _categories(decided, written)
    _left_to_client(decided, rendered, written)
    return decided


def _left_to_client(decided: dict[str, Any], rendered: Event, written: Event) -> None:
    """TENTATIVE and TRANSP as the client wrote them, unless the CRM cancelled; the people's
    parameters that the CRM does not rule."""
    cancelled = str(rendered.get("STATUS", "")).upper() == "CANCELLED"
    tentative = str(written.get("STATUS", "")).upper() == "TENTATIVE"
    if not cancelled and "STATUS" in rendered and tentative:
        decided["STATUS"] = written["STATUS"]
    if not cancelled and "TRANSP" in written:
        decided["TRANSP"] = written["TRANSP"]
    people = _people(written)
    if "ORGANIZER" in decided:
        decided["ORGANIZER"] = _person(decided["ORGANIZER"], people)
    if "ATTENDEE" in decided:
        attendees = decided["ATTENDEE"]
        listed = attendees if isinstance(attendees, list) else [attendees]
        decided["ATTENDEE"] = [_person(a, people) for a in listed]


def _norm(value: Any) -> str:
    return str(value).replace("\r\n", "\n").replace("\r", "\n").replace("\ufeff", "").strip()


def _kept_text(
    name: str, rendered: Event, written: Event, override_of: Event | None = None
) -> bool:
    """The client's text is kept when the CRM's is the same, and in an instance of the
    client's own whose text differs from its series (an override the CRM does not hold)."""
    if name not in written or isinstance(written[name], list):
        return False
    if _norm(written[name]) == _norm(rendered.get(name, "")):
        return True
    if override_of is None:
        return False
    series = override_of.get(name)
    return series is None or _norm(series) != _norm(written[name])


def _categories(decided: dict[str, Any], written: Event) -> None:
    """Every CATEGORIES value the client wrote; the CRM's type is the first that is not blank
    (``mapping.event_fields``), or the first when the type changed. Without any, the CRM's type
    is written."""
    if "CATEGORIES" not in written or "CATEGORIES" not in decided:
        return
    values = [str(c).strip() for c in written.categories]
    kind = str(decided["CATEGORIES"].cats[0]) if decided["CATEGORIES"].cats else ""
    if next((v for v in values if v), "").lower() == kind.lower():
        decided["CATEGORIES"] = written["CATEGORIES"]
        return
    holder = Event()
    rest = [v for v in values[1:] if v and v.lower() != kind.lower()]
    holder.add("categories", [kind, *rest])
    decided["CATEGORIES"] = holder["CATEGORIES"]


def _moment(value: Any) -> datetime | date | None:
    """A DATE or an instant (UTC); None for a floating time, which only the CRM places."""
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else None
    return value if isinstance(value, date) else None


def _same_times(rendered: Event, written: Event) -> bool:
    try:
        mine = (_moment(rendered.start), _moment(rendered.end))
        theirs = (_moment(written.start), _moment(written.end))
    except (KeyError, ValueError, TypeError):
        return False
    if None in theirs or mine != theirs or type(mine[0]) is not type(theirs[0]):
        return False
    return all(
        _tzid(rendered, n) == _tzid(written, n) for n in ("DTSTART", "DTEND") if n in written
    )


def _tzid(event: Event, name: str) -> str:
    value = event.get(name)
    return str(value.params.get("TZID", "")) if value is not None else ""


def _instants(component: Component, name: str) -> Any:
    value = component.get(name)
    if name == "RRULE":
        return value.to_ical() if value is not None else None
    found = set()
    for listed in value if isinstance(value, list) else [value]:
        for one in listed.dts:
            moment = _moment(one.dt)
            if moment is None:
                return None
            found.add(moment)
    return frozenset(found)


def normalize_address(value: str) -> str:
    """``mailto:Bob@Example.com`` → ``bob@example.com``; spaces inside (GroupWise) dropped."""
    address = "".join(str(value).split())
    if address[:7].lower() == "mailto:":
        address = address[7:]
    return address.lower()


def _people(written: Event) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in ("ORGANIZER", "ATTENDEE"):
        value = written.get(name)
        for one in value if isinstance(value, list) else [value] if value is not None else []:
            found.setdefault(normalize_address(one), one)
    return found


def _person(rendered: vCalAddress, written: dict[str, Any]) -> vCalAddress:
    """The CRM's ORGANIZER or ATTENDEE with the parameters the client wrote for that address
    that the CRM does not rule (LANGUAGE, SENT-BY, DELEGATED-*, RSVP, ROLE, X- parameters)."""
    theirs = written.get(normalize_address(rendered))
    if theirs is None:
        return rendered
    person = vCalAddress(str(rendered))
    params = getattr(theirs, "params", {})
    kept = {k: v for k, v in params.items() if k.upper() not in _SERVER_PARAMETERS | {"PARTSTAT"}}
    individual = str(rendered.params.get("CUTYPE", "INDIVIDUAL")).upper() == "INDIVIDUAL"
    for name, value in rendered.params.items():
        if name.upper() == "ROLE" and individual and "ROLE" in kept:
            continue
        kept[name] = value
    person.params.update(kept)
    return person


def keys(source: Calendar, instant: Any) -> Iterable[Key]:
    """The RECURRENCE-IDs of the instances the client wrote that are not cancelled."""
    for event in source.walk("VEVENT"):
        key = key_of(event, instant)
        if key is not None and str(event.get("STATUS", "")).upper() != "CANCELLED":
            yield key


def news(message: str) -> list[str]:
    """What of an iTIP message's text is news to attendees, to compare two: its content lines
    in any order, but those of ``_NO_NEWS``."""
    unfolded = message.replace("\r\n ", "").replace("\r\n\t", "")
    return sorted(line for line in unfolded.split("\r\n") if not line.startswith(_NO_NEWS))

"""Each user's own data in their copy of a meeting, the model of Apple's CalendarServer
(``twistedcaldav/datafilters/peruserdata.py``) and Cyrus: what a user's client writes for that
user alone is theirs, kept apart from the meeting everyone shares.

What is a user's own (``is_per_user``):

- every VALARM (their reminders; Apple Calendar and Thunderbird add a default one to each
  invitation), with what it holds (X-APPLE-DEFAULT-ALARM, X-WR-ALARMUID, ACKNOWLEDGED…);
- TRANSP (whether the meeting takes their time: their free-busy reads it);
- their client's personal X- properties: every X-MOZ- one (Thunderbird's bookkeeping of an
  invitation and its alarms: X-MOZ-LASTACK, X-MOZ-SNOOZE-TIME and X-MOZ-SNOOZE-TIME-<occurrence>,
  X-MOZ-GENERATION, X-MOZ-RECEIVED-SEQUENCE, X-MOZ-RECEIVED-DTSTAMP, X-MOZ-INVITED-ATTENDEE,
  X-MOZ-SEND-INVITATIONS…), Apple's travel time (X-APPLE-TRAVEL-*: DURATION, START,
  RETURN-DURATION, RETURN, ADVISORY-BEHAVIOR) and its alarm and reply flags
  (X-APPLE-DEFAULT-ALARM, X-APPLE-LOCAL-DEFAULT-ALARM, X-APPLE-NEEDS-REPLY);
- in an attendee's copy, any other X- property the organizer's event does not carry (the
  organizer's own, such as a Teams link or Apple's structured location, stay the organizer's
  and reach everyone).

A user's data is kept per instance: the series' (no RECURRENCE-ID) and, for an occurrence,
only where it differs from the series' (an alarm changed for one occurrence); an occurrence
without its own takes the series'. It is shown in that user's copy only, and never in iTIP.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from icalendar import Calendar, Component, Event

from caldav_bridge.domain import recurrence

PER_USER_COMPONENTS = frozenset({"VALARM"})
PER_USER_PROPERTIES = frozenset(
    {
        "TRANSP",
        "X-APPLE-DEFAULT-ALARM",
        "X-APPLE-LOCAL-DEFAULT-ALARM",
        "X-APPLE-NEEDS-REPLY",
    }
)
PER_USER_PREFIXES = ("X-MOZ-", "X-APPLE-TRAVEL-")

# The properties an occurrence derived from the series does not copy: its times are its own.
_SERIES_ONLY = frozenset({"RRULE", "RDATE", "EXDATE", "DTSTART", "DTEND", "DURATION"})

# One instance's data: None is the series'.
Instances = dict[datetime | None, Component]
# The occurrence (RECURRENCE-ID, start, end; UTC) whose RECURRENCE-ID is given, if any.
Occurrences = Callable[[datetime], "tuple[datetime, datetime, datetime] | None"]


def is_per_user(name: str, shared: Collection[str] | None = None) -> bool:
    """Whether a VEVENT property is the user's own. With ``shared`` (the organizer's
    property names), an X- property the organizer's event does not carry is too."""
    upper = name.upper()
    if upper in PER_USER_PROPERTIES or upper.startswith(PER_USER_PREFIXES):
        return True
    return shared is not None and upper.startswith("X-") and upper not in shared


def property_names(event: Component) -> frozenset[str]:
    return frozenset(name.upper() for name in event)


def _series(calendar: Calendar) -> Component | None:
    return next(
        (c for c in calendar.subcomponents if c.name == "VEVENT" and "RECURRENCE-ID" not in c),
        None,
    )


def shared_names(shared_text: str) -> frozenset[str]:
    """The property names of the series of a shared copy (``is_per_user``'s ``shared``)."""
    series = _series(Calendar.from_ical(shared_text)) if shared_text else None
    return property_names(series) if series is not None else frozenset()


def split_per_user(
    calendar: Calendar, timezone: str = "UTC", shared: Collection[str] | None = None
) -> tuple[Calendar, Calendar]:
    """(shared, mine): ``calendar`` without its user's data, and that data as kept (a
    VCALENDAR of one VEVENT per instance that has its own: RECURRENCE-ID in UTC, floating
    times and dates read in ``timezone``). ``calendar`` is not changed. ``shared`` as for
    ``is_per_user``: None for the organizer's own event."""
    kept = Calendar()
    for name, value in calendar.items():
        kept[name] = value
    instances: Instances = {}
    for component in calendar.subcomponents:
        if component.name != "VEVENT":
            kept.add_component(component)
            continue
        event, own = _split_event(component, shared)
        kept.add_component(event)
        instances[_rid(component, timezone)] = own
    return kept, _mine(instances)


def _split_event(event: Component, shared: Collection[str] | None) -> tuple[Event, Event]:
    kept, own = Event(), Event()
    for name, value in event.items():
        if not is_per_user(name, shared):
            kept[name] = value
        elif not _default(name, value):
            own[name] = value
    for sub in event.subcomponents:
        (own if sub.name in PER_USER_COMPONENTS else kept).add_component(sub)
    return kept, own


def _default(name: str, value: object) -> bool:
    """TRANSP:OPAQUE is what an event without TRANSP means (RFC 5545 3.8.2.7): no data."""
    return name.upper() == "TRANSP" and str(value).upper() == "OPAQUE"


def _rid(event: Component, timezone: str) -> datetime | None:
    if "RECURRENCE-ID" not in event:
        return None
    return recurrence.instant(event.decoded("RECURRENCE-ID"), timezone)


def _mine(instances: Instances) -> Calendar:
    """The instances kept: the series' when it has any data, each occurrence's that differs
    from the series'."""
    series = instances.get(None)
    series_text = series.to_ical() if series is not None else Event().to_ical()
    mine = Calendar()
    if series is not None and _has_data(series):
        mine.add_component(series)
    for rid, own in sorted(((r, o) for r, o in instances.items() if r), key=lambda i: i[0]):
        if own.to_ical() != series_text:
            own.add("recurrence-id", rid)
            mine.add_component(own)
    return mine


def _has_data(own: Component) -> bool:
    return bool(own.subcomponents) or any(name != "RECURRENCE-ID" for name in own)


def is_empty(mine: Calendar) -> bool:
    """Whether the user has no data of their own (nothing is kept for them)."""
    return not mine.subcomponents


def instances_of(mine: Calendar) -> Instances:
    """The data kept (``split_per_user``'s ``mine``) by instance."""
    found: Instances = {}
    for own in mine.subcomponents:
        rid = own.decoded("RECURRENCE-ID") if "RECURRENCE-ID" in own else None
        found[rid.astimezone(UTC) if isinstance(rid, datetime) else None] = own
    return found


def transparency(mine: Calendar) -> tuple[bool, list[datetime]]:
    """Whether the series is TRANSPARENT to the user, and the occurrences (RECURRENCE-IDs,
    UTC) they marked the other way."""
    instances = instances_of(mine)
    series = _transparent(instances.get(None))
    apart = [rid for rid, own in instances.items() if rid and _transparent(own) != series]
    return series, sorted(apart)


def _transparent(own: Component | None) -> bool:
    return own is not None and str(own.get("TRANSP", "")).upper() == "TRANSPARENT"


def merged(shared_text: str, mine: Calendar, timezone: str, occurrence_of: Occurrences) -> str:
    """A user's copy: the shared event with their data in each of its instances; an
    occurrence they have data for that the shared event does not list apart is added (derived
    from the series) while it still occurs (``occurrence_of``)."""
    calendar = Calendar.from_ical(shared_text)
    instances = instances_of(mine)
    series = _series(calendar)
    organizers = property_names(series) if series is not None else frozenset()
    listed: set[datetime | None] = set()
    for event in calendar.subcomponents:
        if event.name == "VEVENT":
            rid = _rid(event, timezone)
            listed.add(rid)
            _apply(event, instances.get(rid, instances.get(None)), organizers)
    for rid, own in sorted(((r, o) for r, o in instances.items() if r), key=lambda i: i[0]):
        found = occurrence_of(rid) if rid not in listed and series is not None else None
        if series is not None and found is not None:
            derived = _derived(series, found, timezone)
            _apply(derived, own, organizers)
            calendar.add_component(derived)
    return str(calendar.to_ical().decode())


def _apply(event: Component, own: Component | None, organizers: Collection[str]) -> None:
    """The user's data in one instance: their properties replace the shared ones of the same
    name (TRANSP), but an X- property of the organizer's stays theirs; their alarms join."""
    if own is None:
        return
    for name, value in own.items():
        if name.upper() == "RECURRENCE-ID":
            continue
        if name.upper() in organizers and not is_per_user(name):
            continue
        event.pop(name, None)
        event[name] = value
    for sub in own.subcomponents:
        event.add_component(sub)


def _derived(
    series: Component, occurrence: tuple[datetime, datetime, datetime], timezone: str
) -> Event:
    """The instance of ``series`` at ``occurrence``, as the series has it."""
    rid, start, end = occurrence
    instance = Event()
    first = series.decoded("DTSTART")
    for name, value in series.items():
        if name.upper() not in _SERIES_ONLY:
            instance[name] = value
    for name, moment in (("recurrence-id", rid), ("dtstart", start), ("dtend", end)):
        instance.add(name, _as_written(moment, first, timezone))
    return instance


def _as_written(moment: datetime, first: date | datetime, timezone: str) -> date | datetime:
    """A UTC instant as the series' DTSTART is written: a date (an all-day occurrence starts
    at its local midnight), floating, or in DTSTART's zone."""
    if not isinstance(first, datetime):
        return moment.astimezone(ZoneInfo(timezone)).date()
    if first.tzinfo is None:
        return moment.astimezone(ZoneInfo(timezone)).replace(tzinfo=None)
    return moment.astimezone(first.tzinfo)

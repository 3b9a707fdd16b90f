"""Invitations from outside the CRM: events whose ORGANIZER is no CRM user or resource. They
are the user's own, kept in a calendar of theirs (their default calendar,
``DEFAULT_CALENDAR``, made on first use, or any other they save them in), series or single
occurrences alike, and answered by iMIP (RFC 6047):

- the user's client changing their PARTSTAT there answers: an iTIP REPLY naming only their
  ATTENDEE goes to the organizer through the outbox, delivered as every email (``answered``),
  and removing the copy declines (``removed``);
- an emailed REQUEST lands in the user's default calendar, or updates their copy wherever it
  is; one older than that copy (SEQUENCE, then DTSTAMP: ``rules.stale``) is ignored. A CANCEL of
  the event marks every copy's VEVENT STATUS:CANCELLED, as Apple Calendar and Outlook do: it
  stays, crossed out, until the user removes it; a CANCEL of one occurrence excludes it
  (EXDATE), as CalendarServer does. The user gets a messenger notice (``receive``).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from icalendar import Calendar, Event
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from caldav_bridge.domain import changelog, rules
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.errors import InvalidInput
from caldav_bridge.domain.models import (
    Channel,
    NotificationKind,
    OutboxMessage,
    OutboxState,
    StoredCollection,
    StoredItem,
    User,
    utcnow,
)
from caldav_bridge.domain.outbox import message_id
from caldav_bridge.ical.mapping import addresses_of, message_stamp, normalize_address

DEFAULT_CALENDAR = "calendar"  # /<login>/calendar/, as Apple's CalendarServer names it
_DEFAULT_PROPS = {
    "tag": "VCALENDAR",
    "D:displayname": "Personal",
    "C:supported-calendar-component-set": "VEVENT",
}
# An item written here has no exact time range (Radicale computes it at the client's next save):
# every time-range query reads it and checks it (Radicale's bounds of all time).
_ALL_TIME = (-62135596800, 253402300800)
_PRODID = "-//caldav-bridge//outside invitations//EN"


def default_path(login: str) -> str:
    return f"{login}/{DEFAULT_CALENDAR}"


def has_default_calendar(session: Session, login: str) -> bool:
    path = default_path(login)
    return (
        session.scalar(select(StoredCollection.id).where(StoredCollection.path == path)) is not None
    )


def default_calendar(session: Session, user: User) -> StoredCollection:
    """The user's default calendar (RFC 6638 9.2), made when first wanted; two requests making
    it at once make one."""
    path = default_path(user.login)
    query = select(StoredCollection).where(StoredCollection.path == path)
    row = session.scalar(query)
    if row is not None:
        return row
    try:
        with session.begin_nested():
            row = StoredCollection(path=path, props=json.dumps(_DEFAULT_PROPS, sort_keys=True))
            session.add(row)
    except IntegrityError:
        row = session.scalar(query)
    assert row is not None
    return row


# ---------------------------------------------------------------------------- reading


def _parsed(text: str | None) -> Calendar | None:
    if not text:
        return None
    try:
        return Calendar.from_ical(text)
    except (ValueError, LookupError):
        return None


def _events(calendar: Calendar | None) -> list[Event]:
    return [] if calendar is None else [e for e in calendar.events if isinstance(e, Event)]


def _rid(event: Event) -> str | None:
    """The occurrence a VEVENT is (its RECURRENCE-ID as written), None for the series."""
    value = event.get("RECURRENCE-ID")
    return None if value is None else value.to_ical().decode()


def _own(event: Event, addresses: set[str]) -> object | None:
    """The user's ATTENDEE property of an event (one of ``addresses``), or None."""
    return next((a for a in event.attendees if normalize_address(a) in addresses), None)


def _partstat(event: Event, addresses: set[str]) -> str | None:
    attendee = _own(event, addresses)
    if attendee is None:
        return None
    return str(getattr(attendee, "params", {}).get("PARTSTAT", rules.NEEDS_ACTION)).upper()


def outside_organizer(session: Session, events: Iterable[Event]) -> str | None:
    """The ORGANIZER (normalised) of events when it is no CRM user or resource, else None."""
    written = next((e["ORGANIZER"] for e in events if "ORGANIZER" in e), None)
    if written is None:
        return None
    address = normalize_address(str(written))
    directory = Directory(session)
    if not address or directory.users_by_addresses([address]):
        return None
    return None if directory.resources_by_addresses([address]) else address


# ---------------------------------------------------------------------------- answers out


def answered(session: Session, user: User, before: str | None, after: str) -> bool:
    """Queue the REPLY telling an outside organizer what ``user`` answered, when their copy
    ``after`` (as their client saves it, ``before`` the copy it replaces) changes their
    PARTSTAT, to the series or to occurrences; True when one was queued."""
    if "ORGANIZER" not in after or "ATTENDEE" not in after:  # most items: no parsing
        return False
    calendar = _parsed(after)
    if calendar is None:
        return False
    own = addresses_of(user)
    old = {_rid(e): _partstat(e, own) for e in _events(_parsed(before))}
    changed = []
    for event in _events(calendar):
        partstat = _partstat(event, own)
        if partstat not in rules.ANSWER_OF_PARTSTAT:
            continue
        if old.get(_rid(event), old.get(None)) != partstat:
            changed.append(event)
    organizer = outside_organizer(session, _events(calendar)) if changed else None
    if organizer is None:
        return False
    _queue_reply(session, user, organizer, calendar, changed, own)
    return True


def removed(session: Session, user: User, text: str) -> bool:
    """The user removing their copy of an outside invitation declines it, as removing an
    interaction from one's calendar does (and CalendarServer does): a REPLY DECLINED, unless
    it was cancelled or they declined already. True when one was queued."""
    if "ORGANIZER" not in text or "ATTENDEE" not in text:
        return False
    calendar = _parsed(text)
    events = _events(calendar)
    whole = [e for e in events if _rid(e) is None] or events
    if calendar is None or any(str(e.get("STATUS", "")).upper() == "CANCELLED" for e in whole):
        return False
    own = addresses_of(user)
    declining = [e for e in whole if _partstat(e, own) not in (None, "DECLINED")]
    organizer = outside_organizer(session, declining) if declining else None
    if organizer is None:
        return False
    for event in declining:
        getattr(_own(event, own), "params", {})["PARTSTAT"] = "DECLINED"
    _queue_reply(session, user, organizer, calendar, declining, own)
    return True


_REPLIED = ("UID", "RECURRENCE-ID", "SEQUENCE", "DTSTART", "DTEND", "DURATION", "SUMMARY")


def _reply(calendar: Calendar, events: list[Event], own: set[str]) -> str:
    """The iTIP REPLY (RFC 5546 3.2.3) of ``events``: only the user's ATTENDEE."""
    reply = Calendar()
    reply.add("prodid", _PRODID)
    reply.add("version", "2.0")
    reply.add("method", "REPLY")
    for zone in calendar.walk("VTIMEZONE"):
        reply.add_component(zone)
    for event in events:
        answer = Event()
        for name in ("ORGANIZER", *_REPLIED):
            if name in event:
                answer[name] = event[name]
        answer.add("dtstamp", datetime.now(UTC).replace(microsecond=0))
        attendee = _own(event, own)
        params = getattr(attendee, "params", {})
        for param in ("SCHEDULE-STATUS", "SCHEDULE-AGENT", "RSVP"):
            params.pop(param, None)
        answer_given = rules.ANSWER_OF_PARTSTAT[str(params["PARTSTAT"]).upper()]
        params["PARTSTAT"] = rules.PARTSTAT_OF_ANSWER[answer_given]  # Apple's CONFIRMED too
        answer["ATTENDEE"] = attendee
        reply.add_component(answer)
    return str(reply.to_ical().decode())


def _queue_reply(
    session: Session,
    user: User,
    organizer: str,
    calendar: Calendar,
    events: list[Event],
    own: set[str],
) -> None:
    partstat = _partstat(events[0], own) or ""
    words = rules.ANSWER_WORDS[rules.ANSWER_OF_PARTSTAT[partstat]]
    summary = str(events[0].get("SUMMARY", "")) or "(no title)"
    occurrences = [e for e in events if _rid(e) is not None]
    which = f", {len(occurrences)} occurrence(s) apart" if occurrences else ""
    _queue(
        session,
        kind=NotificationKind.OUTSIDE_REPLY,
        channel=Channel.EMAIL,
        recipient_address=organizer,
        itip_method="REPLY",
        sequence=message_stamp(events[0])[0],
        subject=f"{user.display_name} {words}: {summary}",
        body=f"{user.display_name} {words} {summary!r}{which}.",
        calendar=_reply(calendar, events, own),
    )


def _queue(session: Session, **row: object) -> None:
    now = utcnow()
    session.add(
        OutboxMessage(
            message_id=message_id(),
            interaction_id=None,
            state=OutboxState.PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
            link=None,
            **row,
        )
    )


# ---------------------------------------------------------------------------- messages in


def receive(session: Session, calendar: Calendar, method: str) -> list[str]:
    """An emailed REQUEST or CANCEL (its sender checked: the ORGANIZER) for the CRM users it
    invites; what became of it for each, in words."""
    events = _events(calendar)
    if not events:
        raise InvalidInput(f"the {method} holds no event")
    if len({str(e.get("UID", "")) for e in events}) != 1 or not str(events[0].get("UID", "")):
        raise InvalidInput(f"the events of a {method} must share one UID")
    organizer = outside_organizer(session, events)
    if organizer is None:
        return [f"ignored: the {method} is not from an organizer outside the CRM"]
    invited = [normalize_address(a) for e in events for a in e.attendees]
    users = Directory(session).users_by_addresses(invited)
    found = list({u.id: u for u in users.values() if u.active}.values())
    if not found:
        return [f"ignored: the {method} invites no CRM user"]
    return [_take(session, user, calendar, events, method) for user in found]


def _copy(session: Session, user: User, uid: str) -> StoredItem | None:
    """The user's copy of the event ``uid``, in any calendar of theirs."""
    return session.scalar(
        select(StoredItem)
        .join(StoredCollection, StoredCollection.id == StoredItem.collection_id)
        .where(
            StoredItem.uid == uid,
            StoredCollection.path.startswith(f"{user.login}/", autoescape=True),
        )
        .limit(1)
    )


def _stale(incoming: list[Event], stored: list[Event]) -> str | None:
    """Why the message is older than the copy, by each VEVENT's stored counterpart."""
    known = {_rid(e): e for e in stored}
    for event in incoming:
        mine = known.get(_rid(event), known.get(None))
        if mine is None:
            continue
        sequence, dtstamp = message_stamp(mine)
        why = rules.stale(
            rules.Stamp(*message_stamp(event)), sequence, rules.Stamp(sequence, dtstamp)
        )
        if why is not None:
            return why
    return None


def _take(
    session: Session, user: User, calendar: Calendar, events: list[Event], method: str
) -> str:
    uid = str(events[0]["UID"])
    row = _copy(session, user, uid)
    stored = _parsed(row.text) if row is not None else None
    if method == "CANCEL" and stored is None:
        return f"ignored: {user.login} has no copy of {uid!r}"
    why = _stale(events, _events(stored))
    if why is not None:
        return f"ignored for {user.login}, older than their copy: {why}"
    if method == "CANCEL":
        assert stored is not None
        merged, kind = _cancelled(stored, events), NotificationKind.CANCELLATION
    else:
        merged = _requested(stored, calendar, events)
        kind = NotificationKind.INVITATION if stored is None else NotificationKind.UPDATE
    if row is None:
        collection = default_calendar(session, user)
        row = StoredItem(collection_id=collection.id, href=_href(session, collection.id, uid))
        session.add(row)
    _write(session, row, uid, merged.to_ical().decode())
    _notice(session, user, events[0], kind)
    return f"{method} for {user.login}: {kind.value} kept in /{_path_of(session, row)}/"


def _requested(stored: Calendar | None, calendar: Calendar, events: list[Event]) -> Calendar:
    """The copy after a REQUEST: the organizer's series replaces the whole event; occurrences
    sent alone replace (or join) their own. The user's alarms stay with their VEVENT."""
    merged = Calendar()
    for name in ("PRODID", "VERSION", "CALSCALE"):
        if name in calendar:
            merged[name] = calendar[name]
    kept = _events(stored)
    if any(_rid(e) is None for e in events):
        kept = []
    else:
        sent = {_rid(e) for e in events}
        kept = [e for e in kept if _rid(e) not in sent]
    alarms = {_rid(e): e.walk("VALARM") for e in _events(stored)}
    zones = {str(z.get("TZID")): z for z in (stored.walk("VTIMEZONE") if stored else [])}
    zones.update({str(z.get("TZID")): z for z in calendar.walk("VTIMEZONE")})
    for zone in zones.values():
        merged.add_component(zone)
    for event in kept:
        merged.add_component(event)
    for event in events:
        for alarm in alarms.get(_rid(event), []):
            if not event.walk("VALARM"):
                event.add_component(alarm)
        merged.add_component(event)
    return merged


def _cancelled(stored: Calendar, events: list[Event]) -> Calendar:
    """The copy after a CANCEL: the whole event marked cancelled, or each occurrence named
    excluded from the series (marked cancelled when there is no series)."""
    whole = any(_rid(e) is None for e in events)
    series = next((e for e in _events(stored) if _rid(e) is None), None)
    named = {_rid(e): e for e in events if _rid(e) is not None}
    for event in list(_events(stored)):
        if whole or _rid(event) in named:
            if series is not None and not whole:
                stored.subcomponents.remove(event)
                continue
            event["STATUS"] = "CANCELLED"
            event["SEQUENCE"] = events[0].get("SEQUENCE", event.get("SEQUENCE", 0))
    if series is not None and not whole:
        for cancel in named.values():
            series.add("EXDATE", cancel.decoded("RECURRENCE-ID"))
    return stored


def _href(session: Session, collection_id: int, uid: str) -> str:
    name = f"{uid}.ics" if re.fullmatch(r"[A-Za-z0-9@._+-]{1,200}", uid) else ""
    taken = select(StoredItem.id).where(
        StoredItem.collection_id == collection_id, StoredItem.href == name
    )
    if not name or session.scalar(taken) is not None:
        name = f"{uuid.uuid4()}.ics"
    return name


def _write(session: Session, row: StoredItem, uid: str, text: str) -> None:
    row.uid, row.text, row.name, row.component = uid, text, "VCALENDAR", "VEVENT"
    row.etag = f'"{hashlib.sha256(text.encode()).hexdigest()}"'
    row.starts_ts, row.ends_ts = _ALL_TIME
    row.modified_at = utcnow()
    session.flush()
    changelog.record(session, {changelog.stored_calendar(row.collection_id)}, row.href)


def _path_of(session: Session, row: StoredItem) -> str:
    path = session.scalar(
        select(StoredCollection.path).where(StoredCollection.id == row.collection_id)
    )
    return str(path)


_WORDS = {
    NotificationKind.INVITATION: ("Invitation", "invites you to"),
    NotificationKind.UPDATE: ("Updated", "changed"),
    NotificationKind.CANCELLATION: ("Cancelled", "cancelled"),
}


def _notice(session: Session, user: User, event: Event, kind: NotificationKind) -> None:
    organizer = event["ORGANIZER"]
    who = str(organizer.params.get("CN", "")) or normalize_address(str(organizer))
    summary = str(event.get("SUMMARY", "")) or "(no title)"
    title, verb = _WORDS[kind]
    answer = (
        " Answer from your calendar program." if kind is not NotificationKind.CANCELLATION else ""
    )
    _queue(
        session,
        kind=kind,
        channel=Channel.MESSENGER,
        recipient_user_id=user.id,
        recipient_address=None,
        itip_method=None,
        calendar=None,
        sequence=message_stamp(event)[0],
        subject=f"{title}: {summary}",
        body=f"{who} (outside the CRM) {verb} {summary!r}.{answer}",
    )

"""What a calendar client's write of a meeting means for the CRM.

A PUT or DELETE of an interaction (in a user's interactions calendar, or of a meeting they
organise or keep in a calendar of their own) is turned into calls of the interaction service,
never written around it: the organizer creates, edits or cancels; an attendee's own PARTSTAT
is their answer and deleting the event declines it; each writer's own data (alarms, TRANSP) is
kept as theirs (``domain.per_user``); anything else is refused. Who may write
what is the domain's to say (``rules.is_organizer_of``, ``attendee_changes``,
``rules.guest_partstat``, ``rules.stale``); this module reads the client's event for it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime

from icalendar import Calendar, Event

from caldav_bridge.domain import attendee_changes, recurrence, rules, validation
from caldav_bridge.domain import per_user as own_data
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.errors import (
    AlreadyExists,
    BridgeError,
    CalDavPrecondition,
    InvalidInput,
    NotAllowed,
    StaleMessage,
)
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import Interaction, LinkStatus, Resource, User
from caldav_bridge.domain.participants import GuestEntry
from caldav_bridge.domain.periods import Changes, Draft, Move, period_of
from caldav_bridge.domain.queries import check_one_copy, name_of, placement_of, shown_to
from caldav_bridge.domain.validation import one_line
from caldav_bridge.ical import per_user
from caldav_bridge.ical.mapping import (
    Answer,
    EventFields,
    addresses_of,
    attendee_answer,
    event_fields,
    message_stamp,
    normalize_address,
    series_of,
)

logger = logging.getLogger("caldav_bridge.caldav.client_writes")


@dataclass
class _Attendees:
    users: dict[int, User] = field(default_factory=dict)
    resources: dict[int, Resource] = field(default_factory=dict)
    guests: list[GuestEntry] = field(default_factory=list)
    client_scheduled: set[int] = field(default_factory=set)  # SCHEDULE-AGENT=CLIENT users
    force_send: set[int] = field(default_factory=set)  # SCHEDULE-FORCE-SEND=REQUEST users


@dataclass
class _Item:
    """A client's calendar object: the event (a series, or a single one) and the instances
    of occurrences it overrides (RECURRENCE-ID)."""

    event: Event
    instances: list[Event]
    calendar: Calendar
    text: str  # as the client wrote it: the organizer's is kept (``keep_source``)


def parse_item(text: str) -> _Item:
    """The VEVENTs of an item; what the interaction model cannot hold is refused."""
    try:
        calendar = Calendar.from_ical(text)
    except ValueError as exc:
        raise InvalidInput(f"malformed iCalendar: {exc}") from exc
    components = [c for c in calendar.subcomponents if c.name != "VTIMEZONE"]
    if any(c.name != "VEVENT" for c in components) or not components:
        raise CalDavPrecondition(
            "C:supported-calendar-component",
            "the interactions calendar holds events (VEVENT) only",
        )
    events = [c for c in components if isinstance(c, Event)]
    series = [e for e in events if "RECURRENCE-ID" not in e]
    instances = [e for e in events if "RECURRENCE-ID" in e]
    if len(series) != 1 or "RDATE" in series[0]:
        raise NotAllowed(
            "occurrences without their series, and RDATE, cannot be CRM interactions yet: "
            "save such events in a calendar of your own"
        )
    if len({str(e.get("UID", "")) for e in events}) != 1:
        raise InvalidInput("the events of one calendar object must share their UID")
    if instances and "RRULE" not in series[0]:
        raise InvalidInput("RECURRENCE-ID names an occurrence of an event that does not repeat")
    return _Item(series[0], instances, calendar, text)


def organised_by(text: str, organizer: User) -> bool:
    """Whether an item of a calendar of the user's own is a meeting they organise that the
    CRM can hold (RFC 6638 3.2.1: a scheduling object resource, ORGANIZER theirs and someone
    else invited): it is then scheduled as an interaction. Anything else, tasks included,
    is stored as written."""
    try:
        item = parse_item(text)
    except BridgeError:
        return False
    own = _addresses(organizer)
    organizer_property = item.event.get("ORGANIZER")
    if organizer_property is None or normalize_address(organizer_property) not in own:
        return False
    return any(normalize_address(a) not in own for a in item.event.attendees)


class ClientWrites:
    def __init__(self, service: InteractionService) -> None:
        self.service = service
        self.directory = Directory(service.session)

    def put(
        self,
        actor: User,
        href: str,
        text: str,
        calendar_id: int | None = None,
        checked: Interaction | None = None,
    ) -> Interaction:
        """One PUT is one change: rendered, logged and told once. ``calendar_id`` is the
        calendar of the actor's own written to (None: their interactions calendar);
        ``checked`` what the request's conditions (If-Match, If-None-Match) held for there."""
        with self.service.one_change():
            return self._put(actor, href, text, calendar_id, checked)

    def _put(
        self,
        actor: User,
        href: str,
        text: str,
        calendar_id: int | None,
        checked: Interaction | None,
    ) -> Interaction:
        item = parse_item(text)
        event = item.event
        uid = validation.uid(str(event.get("UID", "")))
        check_one_copy(self.service.session, actor.id, uid, calendar_id, href)
        interaction = self.service.find_by_uid(uid)
        if (
            interaction is not None
            and interaction is not checked
            and _held_here(interaction, actor, calendar_id, href)
        ):
            # Saved here by a request that committed after this one's conditions were
            # checked: this one is run again, and sees it.
            raise AlreadyExists(f"{uid!r} was saved by another request at the same moment")
        if interaction is None:
            return self._create(actor, href, uid, item, calendar_id)
        if not rules.is_organizer_of(actor, interaction):
            self._attendee_save(actor, interaction, item)
        elif interaction.cancelled and not _says_cancelled(event):
            return self._create(actor, href, uid, item, calendar_id, interaction)  # restore
        else:
            self._owner_edit(actor, interaction, item)
        return interaction

    def delete(self, actor: User, interaction: Interaction) -> None:
        """The organizer deleting cancels; an attendee deleting declines (a cancelled
        interaction has left their calendar already)."""
        if interaction.cancelled and interaction.owner_id != actor.id:
            return
        if rules.is_organizer_of(actor, interaction):
            self.service.cancel(actor, interaction)
        else:
            self.service.answer(actor, interaction, Answer.DECLINE, remove=True)

    # ------------------------------------------------------------------ the organizer

    def _create(
        self,
        actor: User,
        href: str,
        uid: str,
        item: _Item,
        calendar_id: int | None,
        cancelled: Interaction | None = None,
    ) -> Interaction:
        event = item.event
        organizer = event.get("ORGANIZER")
        if organizer is not None and normalize_address(organizer) not in _addresses(actor):
            raise NotAllowed(
                "only events you organise can be created in your interactions calendar"
            )
        fields, moves = _organizer_instances(event_fields(event, actor.timezone), item)
        attendees = self._attendees(event, actor)
        booked = [b.resource for b in cancelled.bookings] if cancelled else []
        self.service.hold_resources([*attendees.resources.values(), *booked])
        draft = Draft(
            moves=moves,
            subject=fields.subject or "(no subject)",
            start=fields.start,
            end=fields.end,
            timezone=fields.timezone,
            notes=fields.notes,
            kind=fields.kind,
            location=_typed_location(fields, attendees),
            rrule=fields.rrule,
            exdates=fields.exdates,
        )
        interaction = self.service.create(actor, draft, uid=uid, href=href, calendar_id=calendar_id)
        self._apply_attendees(actor, interaction, attendees)
        self._keep_own(actor, interaction, item)
        self.service.keep_source(actor, interaction, _shared_text(item, interaction), edited=True)
        return interaction

    def _owner_edit(self, actor: User, interaction: Interaction, item: _Item) -> None:
        event = item.event
        if _says_cancelled(event):
            self.service.cancel(actor, interaction)
            return
        fields, moves = _organizer_instances(event_fields(event, interaction.timezone), item)
        attendees = self._attendees(event, actor)
        stored = {g.address: g for g in interaction.guests}
        attendees.guests = [
            replace(
                guest,
                partstat=rules.guest_partstat(
                    stored.get(guest.address), guest.partstat, guest.client_scheduled
                ),
            )
            for guest in attendees.guests
        ]
        self.service.hold_resources(
            [*attendees.resources.values(), *(b.resource for b in interaction.bookings)]
        )
        # Rooms the event no longer names are released first, so that a move cannot conflict
        # with them; what is new is added once the interaction has its new time.
        self._release_unwanted(actor, interaction, attendees)
        edited = self.service.edit(
            actor,
            interaction,
            rooms_answer=True,
            changes=Changes(
                subject=fields.subject or interaction.subject,
                notes=fields.notes,
                kind=fields.kind,
                location=_typed_location(fields, attendees),
                start=fields.start,
                end=fields.end,
                timezone=fields.timezone,
                rrule=fields.rrule,
                exdates=fields.exdates,
                moves=moves,
            ),
        )
        self._apply_attendees(actor, interaction, attendees)
        self._keep_own(actor, interaction, item)
        self.service.keep_source(actor, interaction, _shared_text(item, interaction), edited)

    def _attendees(self, event: Event, organizer: User) -> _Attendees:
        found = _Attendees()
        own = _addresses(organizer)
        attendees = [(normalize_address(a), a) for a in event.attendees]
        addresses = [address for address, _ in attendees if address and address not in own]
        users = self.directory.users_by_addresses(addresses)
        resources = self.directory.resources_by_addresses(addresses)
        for address, attendee in attendees:
            if not address or address in own:
                continue
            by_client = str(attendee.params.get("SCHEDULE-AGENT", "SERVER")).upper() == "CLIENT"
            if address in users:
                user = users[address]
                found.users[user.id] = user
                if by_client:
                    found.client_scheduled.add(user.id)
                if str(attendee.params.get("SCHEDULE-FORCE-SEND", "")).upper() == "REQUEST":
                    found.force_send.add(user.id)
            elif address in resources:
                found.resources[resources[address].id] = resources[address]
            elif "@" in address and not address.startswith(("urn:", "http:", "https:")):
                name = str(attendee.params.get("CN", ""))
                partstat = str(attendee.params.get("PARTSTAT", "NEEDS-ACTION")).upper()
                found.guests.append(
                    GuestEntry(
                        address, one_line(name, "an attendee's name", 200), partstat[:32], by_client
                    )
                )
        return found

    def _release_unwanted(self, actor: User, interaction: Interaction, wanted: _Attendees) -> None:
        for booking in list(interaction.bookings):
            if booking.resource_id not in wanted.resources:
                self.service.release(actor, interaction, booking.resource)

    def _apply_attendees(self, actor: User, interaction: Interaction, wanted: _Attendees) -> None:
        """Make bookings, links and guests match the attendees of the event."""
        self._release_unwanted(actor, interaction, wanted)
        booked = {b.resource_id for b in interaction.bookings}
        for resource in wanted.resources.values():
            if resource.id not in booked:  # the room answers: accepted or declined
                self.service.ask_room(actor, interaction, resource)
        for link in list(interaction.links):
            if link.user_id not in wanted.users:
                self.service.unlink(actor, interaction, link.user)
        linked = {k.user_id for k in interaction.links}
        self.service.schedule_by_client(actor, interaction, wanted.client_scheduled)
        new = [user for user in wanted.users.values() if user.id not in linked]
        if new:
            self.service.link_users(
                actor, interaction, new, LinkStatus.INVITED, wanted.client_scheduled
            )
        self.service.set_guests(actor, interaction, wanted.guests)
        if wanted.force_send:
            self.service.send_again(actor, interaction, wanted.force_send)

    # ------------------------------------------------------------------ an attendee

    def _attendee_save(self, actor: User, interaction: Interaction, item: _Item) -> None:
        """The attendee's answers: to the series, and to each occurrence they answered apart.

        A copy of an older version (an older SEQUENCE: the organizer has changed the event
        since) naturally differs from the organizer's; its answers are ignored, as an older
        iTIP REPLY is, and so is each answer older than the one already taken (an older
        DTSTAMP, ``rules.stale``): the PUT succeeds with the stored event kept as it is, and
        its answer carries no ETag (``scheduling.with_schedule_tag``), so the client reads the
        newer event back rather than losing the newer answer. A current copy that changes what
        only the organizer may is refused (``attendee_changes.require_attendee_change``)."""
        event = item.event
        fields = event_fields(event, interaction.timezone)
        series = series_of(interaction)

        def expected(i: Event) -> tuple[datetime, datetime] | None:
            rid = recurrence.instant(i.decoded("RECURRENCE-ID"), fields.timezone)
            found = recurrence.occurrence(series, rid)
            return found[1:] if found else None

        stamp = rules.Stamp(*message_stamp(event))
        if rules.stale(stamp, interaction.sequence, None) is None:
            moved = any(_times(i, fields.timezone) != expected(i) for i in item.instances)
            attendee_changes.require_attendee_change(interaction, fields, moved)
        organizer = event.get("ORGANIZER")
        agent = str(organizer.params.get("SCHEDULE-AGENT", "SERVER")) if organizer else ""
        itip = agent.upper() == "SERVER"  # CLIENT: the attendee's client sends the REPLY
        answer = attendee_answer(event, _addresses(actor))
        if answer is not None:
            with _unless_stale():
                self.service.answer(actor, interaction, answer, itip=itip, message=stamp)
        for instance in item.instances:
            answer = attendee_answer(instance, _addresses(actor))
            if answer is not None:
                occurrence = recurrence.instant(instance.decoded("RECURRENCE-ID"), fields.timezone)
                message = rules.Stamp(*message_stamp(instance))
                with _unless_stale():
                    self.service.answer_occurrence(
                        actor, interaction, occurrence, answer, itip=itip, message=message
                    )
        self._keep_own(actor, interaction, item, per_user.shared_names(interaction.ical))

    def _keep_own(
        self,
        actor: User,
        interaction: Interaction,
        item: _Item,
        shared: frozenset[str] | None = None,
    ) -> None:
        """The actor's own data in what they wrote (their alarms, TRANSP, their client's
        personal X- properties: ``per_user``) is theirs, whatever else the write meant or
        ignored (a stale copy's answer). Changing only it is no answer and no change of the
        meeting: nobody is told, SEQUENCE and the Schedule-Tag stay; the actor's copy (and its
        ETag) changes. ``shared``: the organizer's property names, for an attendee's copy."""
        _, mine = per_user.split_per_user(item.calendar, interaction.timezone, shared)
        own_data.keep(self.service.session, interaction, actor.id, mine)


def _shared_text(item: _Item, interaction: Interaction) -> str:
    """The organizer's event as written, without what is the organizer's own (their alarms,
    TRANSP, their client's bookkeeping: ``per_user``), which is kept apart for them alone."""
    shared, mine = per_user.split_per_user(item.calendar, interaction.timezone)
    return item.text if not mine.subcomponents else shared.to_ical().decode()


@contextmanager
def _unless_stale() -> Iterator[None]:
    """An answer of an attendee's copy: a stale one is ignored (logged), the others taken."""
    try:
        yield
    except StaleMessage as stale:
        logger.info("ignored in an attendee's copy: %s", stale)


def _says_cancelled(event: Event) -> bool:
    """The organizer's event cancels the meeting (RFC 5546 3.2.5)."""
    return str(event.get("STATUS", "")).upper() == "CANCELLED"


def _held_here(interaction: Interaction, actor: User, calendar_id: int | None, href: str) -> bool:
    """Whether the actor's calendar ``calendar_id`` shows ``interaction`` as ``href``."""
    if interaction.cancelled or placement_of(interaction, actor.id) != calendar_id:
        return False
    return shown_to(interaction, actor.id) and name_of(interaction, actor.id) == href


def _times(instance: Event, timezone: str) -> tuple[datetime, datetime]:
    """An instance's start and end, UTC."""
    fields = event_fields(instance, timezone)
    period = period_of(fields.start, fields.end, fields.timezone)
    return period.starts_at, period.ends_at


def _organizer_instances(fields: EventFields, item: _Item) -> tuple[EventFields, tuple[Move, ...]]:
    """The organizer's series with its cancelled occurrences as EXDATEs, and the occurrences
    moved (instances whose times differ from where the rule puts them)."""
    first = period_of(fields.start, fields.end, fields.timezone)
    duration = first.ends_at - first.starts_at
    cancelled: list[datetime | date] = []
    moves: list[Move] = []
    for instance in item.instances:
        rid = recurrence.instant(instance.decoded("RECURRENCE-ID"), fields.timezone)
        if str(instance.get("STATUS", "")).upper() == "CANCELLED":
            cancelled.append(rid)
            continue
        start, end = _times(instance, fields.timezone)
        if (start, end) != (rid, rid + duration):
            moves.append((rid, start, end))
    if cancelled:
        fields = replace(fields, exdates=(*fields.exdates, *cancelled))
    return fields, tuple(moves)


def _addresses(user: User) -> set[str]:
    return addresses_of(user)


def _typed_location(fields: EventFields, attendees: _Attendees) -> str:
    """LOCATION that only repeats the booked rooms' names is not a typed location."""
    rooms = ", ".join(r.name for r in attendees.resources.values())
    return "" if fields.location == rooms else fields.location

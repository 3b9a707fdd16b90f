"""iMIP in (RFC 6047): an emailed iTIP REPLY applied through the interaction service, and a
REQUEST or CANCEL from an organizer outside the CRM filed in the invited users' calendars
(``domain.outside``), taken from the ORGANIZER's mailbox only, authenticated as replies are.

Replies sent from Outlook, Gmail, Thunderbird or Apple Mail arrive as email; an MTA pipes each
one to ``caldav-bridge imip-receive``. A reply counts only for the attendee who sent it (the
From mailbox must be the ATTENDEE it carries, or an alias configured for it) and only when the
mail proves it (``mail_auth``); an unknown UID, or a stale reply (an older SEQUENCE than the
interaction's, or an older DTSTAMP than the attendee's answer already taken: ``rules.stale``,
decided by the service), is ignored with the reason logged and said (the listener answers 250:
the message was taken, and nothing is to be sent again); a malformed message is refused. Each
VEVENT answers what it names: the series, or with a RECURRENCE-ID one occurrence, as a CalDAV
client's answer does.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import default

from icalendar import Calendar, Event

from caldav_bridge.config import ImipSettings
from caldav_bridge.domain import outside, recurrence, rules
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.errors import InvalidInput, NotAllowed, StaleMessage
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import Interaction
from caldav_bridge.ical.mapping import (
    attendee_answer,
    message_stamp,
    normalize_address,
    series_of,
)
from caldav_bridge.mail import authentication as mail_auth

logger = logging.getLogger("caldav_bridge.mail.replies")


@dataclass(frozen=True)
class Outcome:
    applied: bool
    reason: str


# The parts a calendar travels in, most trusted first: Outlook, Apple Mail and Thunderbird send
# text/calendar (RFC 6047); Gmail adds the same calendar as an application/ics attachment, and a
# mailer that only attaches a file (.NET's Attachment, many web apps) names it *.ics whatever its
# type. vCalendar 1.0 (text/x-vcalendar) is another format, and is not read.
_CALENDAR_TYPES = ("text/calendar", "application/ics")


def _calendar_rank(part: EmailMessage) -> int | None:
    """How early ``part`` is read for the calendar (None: it holds none)."""
    kind = part.get_content_type()
    if kind in _CALENDAR_TYPES:
        return _CALENDAR_TYPES.index(kind)
    named = (part.get_filename() or "").lower().endswith(".ics")
    return len(_CALENDAR_TYPES) if named and not part.is_multipart() else None


def _calendar_part(message: EmailMessage) -> Calendar:
    """The message's calendar: its first text/calendar part, else its first application/ics
    part, else its first attachment named *.ics (Gmail sends one calendar twice: read once)."""
    ranked = [
        (rank, index, part)
        for index, part in enumerate(message.walk())
        if isinstance(part, EmailMessage) and (rank := _calendar_rank(part)) is not None
    ]
    if not ranked:
        raise InvalidInput(
            "the message has no text/calendar part (nor application/ics, nor an .ics file)"
        )
    _, _, part = min(ranked, key=lambda found: found[:2])
    content = part.get_content()
    try:
        return Calendar.from_ical(content if isinstance(content, str | bytes) else str(content))
    except (ValueError, LookupError) as exc:
        raise InvalidInput(f"the calendar part is not valid iCalendar: {exc}") from exc


def receive(
    service: InteractionService,
    raw: bytes,
    settings: ImipSettings,
    dnsfunc: mail_auth.DnsFunction | None = None,
) -> Outcome:
    """Apply one emailed message; raises InvalidInput (malformed) or NotAllowed (spoofed or
    not authenticated), and then nothing is changed."""
    try:
        return _receive(service, raw, settings, dnsfunc)
    except NotAllowed as refused:
        logger.warning("refused a REPLY: %s", refused)
        raise


def _receive(
    service: InteractionService,
    raw: bytes,
    settings: ImipSettings,
    dnsfunc: mail_auth.DnsFunction | None,
) -> Outcome:
    message = message_from_bytes(raw, policy=default)
    assert isinstance(message, EmailMessage)
    sender = mail_auth.sender(message, raw, settings)
    calendar = _calendar_part(message)
    method = str(calendar.get("METHOD", "")).upper()
    if method in _FROM_OUTSIDE:
        return _invitation(service, message, raw, sender, calendar, method, settings, dnsfunc)
    if method != "REPLY":
        raise InvalidInput("only iTIP REPLY, REQUEST and CANCEL messages are taken in")
    events = [e for e in calendar.events if isinstance(e, Event)]
    if not events:
        raise InvalidInput("the REPLY holds no event")
    proof = mail_auth.authenticate(message, raw, sender.domain, settings, dnsfunc)
    logger.info("a REPLY from %s: %s", sender.addr_spec, proof)
    with service.one_change():  # master and overrides: one change, one notice to the owner
        outcomes = [_apply(service, sender.addr_spec, event, settings) for event in events]
    return Outcome(any(o.applied for o in outcomes), "; ".join(o.reason for o in outcomes))


_FROM_OUTSIDE = ("REQUEST", "CANCEL")


def _invitation(
    service: InteractionService,
    message: EmailMessage,
    raw: bytes,
    sender: Address,
    calendar: Calendar,
    method: str,
    settings: ImipSettings,
    dnsfunc: mail_auth.DnsFunction | None,
) -> Outcome:
    """A REQUEST or CANCEL from an organizer outside the CRM to CRM users (``outside``),
    taken only from the ORGANIZER's own mailbox, authenticated as replies are."""
    organizer = next((e["ORGANIZER"] for e in calendar.events if "ORGANIZER" in e), None)
    if organizer is None:
        raise InvalidInput(f"the {method} names no ORGANIZER")
    if not mail_auth.may_answer_for(sender.addr_spec, _written(organizer), settings):
        raise NotAllowed(f"the sender {sender.addr_spec} is not the organizer of this {method}")
    proof = mail_auth.authenticate(message, raw, sender.domain, settings, dnsfunc)
    logger.info("a %s from %s: %s", method, sender.addr_spec, proof)
    reasons = outside.receive(service.session, calendar, method)
    applied = [r for r in reasons if not r.startswith("ignored")]
    for reason in reasons:
        logger.info("%s", reason)
    return Outcome(bool(applied), "; ".join(reasons))


def _written(address: object) -> str:
    """A calendar address as written, without spaces (GroupWise) and mailto:."""
    written = "".join(str(address).split())
    return written[7:] if written[:7].lower() == "mailto:" else written


def _replying_attendee(event: Event, sender: str, settings: ImipSettings) -> str:
    """The ATTENDEE (normalized) the sender answers for."""
    for attendee in event.attendees:
        if mail_auth.may_answer_for(sender, _written(attendee), settings):
            return normalize_address(attendee)
    raise NotAllowed(f"the sender {sender} is not the attendee this REPLY answers for")


def _apply(
    service: InteractionService, sender: str, event: Event, settings: ImipSettings
) -> Outcome:
    uid = str(event.get("UID", ""))
    interaction = service.find_by_uid(uid)
    if interaction is None:
        return _ignored(f"no interaction has the UID {uid!r}")
    message = rules.Stamp(*message_stamp(event))
    attendee = _replying_attendee(event, sender, settings)
    answer = attendee_answer(event, [attendee])
    if answer is None:
        return _ignored(f"{attendee} has not answered yet (NEEDS-ACTION)")
    occurrence = _occurrence(event, interaction)
    user = Directory(service.session).users_by_addresses([attendee]).get(attendee)
    if occurrence is not None and user is None:
        raise InvalidInput(
            f"{attendee} answered one occurrence; answers to one occurrence are kept for "
            "CRM users only: answer the whole series"
        )
    try:
        if occurrence is not None and user is not None:
            changed = service.answer_occurrence(
                user, interaction, occurrence, answer, itip=False, message=message
            )
        elif user is not None:
            changed = service.answer(user, interaction, answer, itip=False, message=message)
        else:
            changed = service.guest_answer(interaction, attendee, answer, message=message)
    except StaleMessage as stale:
        return _ignored(str(stale))
    verb = "applied" if changed else "already known"
    what = f" to {occurrence:%Y-%m-%d %H:%M} UTC" if occurrence else ""
    return Outcome(
        changed, f"{attendee} {answer.value}{what}: {verb} (interaction #{interaction.id})"
    )


def _occurrence(event: Event, interaction: Interaction) -> datetime | None:
    """The occurrence (its UTC start) a VEVENT with a RECURRENCE-ID answers; None for the
    series. One that is not an occurrence of the interaction is refused by the service."""
    if "RECURRENCE-ID" not in event:
        return None
    if str(event["RECURRENCE-ID"].params.get("RANGE", "")).upper() == "THISANDFUTURE":
        raise InvalidInput("an answer to this and all future occurrences is not supported")
    if not series_of(interaction).rrule:
        raise InvalidInput(
            f"the REPLY names an occurrence of interaction #{interaction.id}, which does not repeat"
        )
    try:
        value = event.decoded("RECURRENCE-ID")
    except (ValueError, KeyError) as exc:
        raise InvalidInput(f"the RECURRENCE-ID is not a date: {exc}") from exc
    return recurrence.instant(value, interaction.timezone)


def _ignored(reason: str) -> Outcome:
    logger.info("ignored a REPLY: %s", reason)
    return Outcome(False, f"ignored: {reason}")

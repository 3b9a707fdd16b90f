"""iMIP in (RFC 6047): an emailed iTIP REPLY applied through the interaction service.

Replies sent from Outlook, Gmail, Thunderbird or Apple Mail arrive as email; an MTA pipes each
one to ``caldav-bridge imip-receive``. A reply counts only for the attendee who sent it (the
From address must be the ATTENDEE it carries); an unknown UID or an older SEQUENCE than the
interaction's is ignored with the reason logged; a malformed message is refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from email.utils import parseaddr

from icalendar import Calendar, Event

from caldav_bridge.directory import Directory
from caldav_bridge.errors import InvalidInput, NotAllowed
from caldav_bridge.ical_mapping import attendee_answer, normalize_address
from caldav_bridge.interactions import InteractionService

logger = logging.getLogger("caldav_bridge.replies")


@dataclass(frozen=True)
class Outcome:
    applied: bool
    reason: str


def _calendar_part(message: EmailMessage) -> Calendar:
    for part in message.walk():
        if part.get_content_type() == "text/calendar":
            try:
                return Calendar.from_ical(part.get_content())
            except (ValueError, LookupError) as exc:
                raise InvalidInput(f"the calendar part is not valid iCalendar: {exc}") from exc
    raise InvalidInput("the message has no text/calendar part")


def receive(service: InteractionService, raw: bytes) -> Outcome:
    """Apply one emailed message; raises InvalidInput (malformed) or NotAllowed (spoofed)."""
    message = message_from_bytes(raw, policy=default)
    assert isinstance(message, EmailMessage)
    sender = normalize_address(parseaddr(str(message.get("From", "")))[1])
    if "@" not in sender:
        raise InvalidInput("the message has no sender address (From)")
    calendar = _calendar_part(message)
    if str(calendar.get("METHOD", "")).upper() != "REPLY":
        raise InvalidInput("only iTIP REPLY messages are taken in")
    events = [e for e in calendar.events if isinstance(e, Event)]
    if not events:
        raise InvalidInput("the REPLY holds no event")
    outcomes = [_apply(service, sender, event) for event in events]
    return Outcome(any(o.applied for o in outcomes), "; ".join(o.reason for o in outcomes))


def _apply(service: InteractionService, sender: str, event: Event) -> Outcome:
    uid = str(event.get("UID", ""))
    interaction = service.find_by_uid(uid)
    if interaction is None:
        return _ignored(f"no interaction has the UID {uid!r}")
    try:
        sequence = int(event.get("SEQUENCE", 0))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"the REPLY's SEQUENCE is not a number: {exc}") from exc
    if sequence < interaction.sequence:
        return _ignored(
            f"the reply answers SEQUENCE {sequence}; interaction #{interaction.id} is at "
            f"{interaction.sequence}"
        )
    answer = attendee_answer(event, [sender])
    if answer is None:
        named = {normalize_address(a) for a in event.attendees}
        if sender not in named:
            logger.warning("refused a REPLY for %r: %s is not its attendee", uid, sender)
            raise NotAllowed(f"the sender {sender} is not the attendee this REPLY answers for")
        return _ignored(f"{sender} has not answered yet (NEEDS-ACTION)")
    user = Directory(service.session).users_by_addresses([sender]).get(sender)
    if user is not None:
        changed = service.answer(user, interaction, answer, itip=False)
    else:
        changed = service.guest_answer(interaction, sender, answer)
    verb = "applied" if changed else "already known"
    return Outcome(changed, f"{sender} {answer.value}: {verb} (interaction #{interaction.id})")


def _ignored(reason: str) -> Outcome:
    logger.info("ignored a REPLY: %s", reason)
    return Outcome(False, f"ignored: {reason}")

"""The rules of multi-user interactions that need no database: what an answer makes of a
link, when linking again changes a link, who may change an interaction, and the CRM's words for
each status. The service (``interactions``) and every channel decide with these.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from caldav_bridge.domain import recurrence
from caldav_bridge.domain.errors import (
    CalDavPrecondition,
    InteractionCancelled,
    InvalidTransition,
    NotAllowed,
)
from caldav_bridge.domain.models import (
    Guest,
    Interaction,
    InteractionLink,
    LinkStatus,
    OccurrenceAnswer,
    User,
)
from caldav_bridge.domain.periods import period_of
from caldav_bridge.ical.mapping import Answer, EventFields, location_text

# What each answer makes of a linked user: (status, tentative).
ANSWERED = {
    Answer.ACCEPT: (LinkStatus.CONFIRMED, False),
    Answer.DECLINE: (LinkStatus.DECLINED, False),
    Answer.TENTATIVE: (LinkStatus.INVITED, True),
}


def relinks(link: InteractionLink, status: LinkStatus) -> bool:
    """Whether the owner linking an already linked user as ``status`` changes their link.

    Invited asks for an answer: it changes only a Declined link (inviting again). A user who
    confirmed, or answered tentatively, keeps their answer and gets no second invitation.
    Confirmed confirms an Invited user (tentative or not), never one who declined."""
    if status is LinkStatus.INVITED:
        return link.status is LinkStatus.DECLINED
    if link.status is LinkStatus.DECLINED:
        raise InvalidTransition(
            f"{link.user.login} declined: invite them again to ask for their agreement"
        )
    return link.status is not LinkStatus.CONFIRMED


# What an outside attendee's answer writes in their PARTSTAT.
GUEST_PARTSTAT = {
    Answer.ACCEPT: "ACCEPTED",
    Answer.DECLINE: "DECLINED",
    Answer.TENTATIVE: "TENTATIVE",
}


def link_label(link: InteractionLink) -> str:
    """The status in the CRM's words, with a client's tentative answer shown."""
    label = link.status.value.capitalize()
    return f"{label} (tentative)" if link.tentative else label


_GUEST_LABELS = {
    "ACCEPTED": "Confirmed",
    "DECLINED": "Declined",
    "TENTATIVE": "Confirmed (tentative)",
}


def guest_label(partstat: str) -> str:
    """An outside attendee's PARTSTAT in the CRM's words, as ``link_label`` says a user's."""
    return _GUEST_LABELS.get(partstat, "Invited")


def require_active(user: User) -> None:
    if not user.active:
        raise NotAllowed(f"user {user.login} is inactive")


def require_owner(actor: User, interaction: Interaction) -> None:
    """Only an active owner changes an interaction."""
    require_active(actor)
    if actor.id != interaction.owner_id:
        raise NotAllowed(
            f"only the owner ({interaction.owner.login}) can change interaction #{interaction.id}"
        )


def require_open(interaction: Interaction) -> None:
    if interaction.cancelled:
        raise InteractionCancelled(f"interaction #{interaction.id} is cancelled")


# ---------------------------------------- iTIP staleness, what attendees and organizers write


class Stamp(NamedTuple):
    """What orders an attendee's answers (RFC 5546 2.1.5): the SEQUENCE of the version the
    message answers and its DTSTAMP (None when it carries none)."""

    sequence: int
    dtstamp: datetime | None = None


def stale(message: Stamp, sequence: int, last: Stamp | None) -> str | None:
    """Why an iTIP message (an emailed REPLY, an attendee's copy PUT) is older than what is
    known, or None: it answers an older SEQUENCE than the interaction's (``sequence``), or,
    when the attendee's ``last`` answer taken was to this version too, its DTSTAMP is older
    than that answer's. A SEQUENCE above the interaction's answers its version (Exchange
    writes 5 for 1). Older messages are ignored on every channel, never applied."""
    if message.sequence < sequence:
        return f"it answers SEQUENCE {message.sequence}; the interaction is at SEQUENCE {sequence}"
    if last is None or last.dtstamp is None or message.dtstamp is None or last.sequence != sequence:
        return None
    if message.dtstamp.replace(microsecond=0) < last.dtstamp:
        return (
            f"its DTSTAMP {message.dtstamp:%Y-%m-%d %H:%M:%S} UTC is older than the answer "
            f"already taken ({last.dtstamp:%Y-%m-%d %H:%M:%S} UTC)"
        )
    return None


def answer_stamp(message: Stamp | None, sequence: int, now: datetime) -> Stamp:
    """What is kept of an answer taken: the interaction's SEQUENCE and the message's DTSTAMP,
    to the second as iCalendar writes it. An answer without one (the CRM pages, the RSVP
    page, a DELETE) is stamped ``now``, and so is one from a clock ahead of the server's: a
    DTSTAMP from the future must not hold every later answer off."""
    dtstamp = now if message is None or message.dtstamp is None else min(message.dtstamp, now)
    return Stamp(sequence, dtstamp.replace(microsecond=0))


def last_answer(holder: InteractionLink | OccurrenceAnswer | Guest | None) -> Stamp | None:
    if holder is None or holder.answer_sequence is None:
        return None
    return Stamp(holder.answer_sequence, holder.answer_dtstamp)


def guest_partstat(guest: Guest | None, sent: str, client_scheduled: bool) -> str:
    """A guest's PARTSTAT when the organizer's client saves the event. A guest's own answer
    (an emailed REPLY) is never overwritten by the organizer's copy, which may predate it (an
    answer does not change the Schedule-Tag: RFC 6638 3.2.10, the server merges), nor by a
    reschedule (linked users keep theirs too, ``ServiceBase._updated``). The organizer's value
    counts for a new guest, one who has not answered, and one their client schedules itself
    (SCHEDULE-AGENT=CLIENT: the answers go to the organizer's client)."""
    if guest is None or guest.answer_sequence is None or client_scheduled:
        return sent
    return guest.partstat


def _same_text(copy: str, organizer: str) -> bool:
    """The same words: line breaks and spacing as each client writes them do not count."""
    return copy.split() == organizer.split()


def attendee_changes(interaction: Interaction, fields: EventFields, moved: bool) -> list[str]:
    """The organizer's properties an attendee's copy changes. RFC 6638 3.2.2.1 lets an
    attendee change only their own PARTSTAT and their per-user data (alarms, TRANSP); what
    clients write for themselves (DTSTAMP, LAST-MODIFIED, SEQUENCE, X- properties such as
    Thunderbird's X-MOZ-*) and CATEGORIES (a user's own labels in Thunderbird and Apple
    Calendar) are not compared. ``moved``: an instance of the copy is not where the
    organizer has that occurrence."""
    period = period_of(fields.start, fields.end, fields.timezone)
    rule = recurrence.checked_rule(fields.rrule, interaction.timezone, period.all_day)
    excluded = recurrence.exdate_text(fields.exdates) if rule else ""
    changed = {
        "SUMMARY": fields.subject != interaction.subject,
        "DESCRIPTION": not _same_text(fields.notes, interaction.notes),
        "LOCATION": fields.location != location_text(interaction),
        "DTSTART/DTEND": (period.starts_at, period.ends_at, period.all_day)
        != (interaction.starts_at, interaction.ends_at, interaction.all_day),
        "RRULE/EXDATE": (rule, excluded) != (interaction.rrule, interaction.exdates),
        "RECURRENCE-ID instances": moved,
    }
    return [name for name, differs in changed.items() if differs]


def require_attendee_change(interaction: Interaction, fields: EventFields, moved: bool) -> None:
    """An attendee's copy that changes what only the organizer may is refused, never dropped
    in silence: 403 with the CalDAV precondition (RFC 6638 3.2.2.1)."""
    changed = attendee_changes(interaction, fields, moved)
    if changed:
        raise CalDavPrecondition(
            "C:allowed-attendee-scheduling-object-change",
            f"only the organizer can change {', '.join(changed)} of interaction "
            f"#{interaction.id}; an attendee changes their own answer, alarms and "
            "transparency (if your copy is out of date, read the event again)",
        )


def is_organizer_of(actor: User, interaction: Interaction) -> bool:
    """Who a client's write of ``interaction`` comes from: its organizer (True), or a linked
    attendee, whose copy carries answers only and who cannot bring a cancelled interaction
    back (False). Anyone else may not write it."""
    if interaction.owner_id == actor.id:
        return True
    if not any(k.user_id == actor.id for k in interaction.links):
        raise NotAllowed(
            f"{actor.login} is neither the organizer nor an attendee of {interaction.uid!r}"
        )
    if interaction.cancelled:  # an answer or not, their copy is gone with it
        raise InteractionCancelled(
            f"interaction #{interaction.id} is cancelled: only its organizer can bring it back"
        )
    return False

"""The rules of multi-user interactions that need no database: what an answer makes of a
link, when linking again changes a link, who may change or answer an interaction, and the CRM's
words for each status. The service (``interactions``) and every channel decide with these.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import NamedTuple

from caldav_bridge.domain.errors import InteractionCancelled, InvalidTransition, NotAllowed
from caldav_bridge.domain.models import (
    Guest,
    Interaction,
    InteractionLink,
    InteractionStatus,
    LinkStatus,
    OccurrenceAnswer,
    User,
)

# ---------------------------------------------------------------- answers, PARTSTAT, labels
# The one table between the CRM's answers and statuses and iCalendar's PARTSTAT (RFC 5545
# 3.2.12), and the one wording of each: CalDAV, email, the pages, the RSVP page and the CLI
# all read them here.


class Answer(enum.StrEnum):
    """What an invited user says, from any channel."""

    ACCEPT = "accept"
    DECLINE = "decline"
    TENTATIVE = "tentative"


NEEDS_ACTION = "NEEDS-ACTION"  # the PARTSTAT of an attendee who has not answered

PARTSTAT_OF_ANSWER = {
    Answer.ACCEPT: "ACCEPTED",
    Answer.DECLINE: "DECLINED",
    Answer.TENTATIVE: "TENTATIVE",
}
# Values seen from real clients, upper-cased first (Apple wrote CONFIRMED and lower case).
ANSWER_OF_PARTSTAT = {
    **{partstat: answer for answer, partstat in PARTSTAT_OF_ANSWER.items()},
    "CONFIRMED": Answer.ACCEPT,
}

# What each answer makes of a linked user: (status, tentative). A tentative answer confirms
# nothing: the user stays Invited (DESIGN.md section 1).
ANSWERED = {
    Answer.ACCEPT: (LinkStatus.CONFIRMED, False),
    Answer.DECLINE: (LinkStatus.DECLINED, False),
    Answer.TENTATIVE: (LinkStatus.INVITED, True),
}
_ANSWER_OF_LINK = {held: answer for answer, held in ANSWERED.items()}

# An answer as a notice and the CLI tell it.
ANSWER_WORDS = {
    Answer.ACCEPT: "accepted",
    Answer.DECLINE: "declined",
    Answer.TENTATIVE: "answered tentatively",
}

# An answer (None: none yet) in the CRM's words, the same for a user and for a guest.
_LABELS = {
    None: "Invited",
    Answer.ACCEPT: "Confirmed",
    Answer.DECLINE: "Declined",
    Answer.TENTATIVE: "Invited (tentative)",
}


def answer_of(status: LinkStatus, tentative: bool) -> Answer | None:
    """The answer a linked user's (status, tentative) holds; None while they have not
    answered. Only an Invited link is tentative."""
    return _ANSWER_OF_LINK.get((status, tentative and status is LinkStatus.INVITED))


def partstat(status: LinkStatus, tentative: bool) -> str:
    """A linked user's PARTSTAT."""
    answer = answer_of(status, tentative)
    return NEEDS_ACTION if answer is None else PARTSTAT_OF_ANSWER[answer]


def link_label(link: InteractionLink) -> str:
    """A linked user's status in the CRM's words, their tentative answer shown."""
    return _LABELS[answer_of(link.status, link.tentative)]


def guest_label(partstat: str) -> str:
    """An outside attendee's PARTSTAT in the words ``link_label`` says a user's."""
    return _LABELS[ANSWER_OF_PARTSTAT.get(partstat.upper())]


def answerable(interaction: Interaction) -> bool:
    """Attendees answer an interaction only while it is planned: not once it took place
    (done) or was cancelled. Every channel offers and takes answers by this."""
    return interaction.status is InteractionStatus.PLANNED


def require_answerable(interaction: Interaction, changes: bool = True) -> None:
    """``answerable``, or the refusal every channel gives (409), in one message. An answer
    that ``changes`` nothing (a client saving its copy again) takes nothing, and is let be."""
    if answerable(interaction) or not changes:
        return
    message = (
        f"interaction #{interaction.id} is {interaction.status.value}: "
        "it can be answered only while it is planned"
    )
    raise InteractionCancelled(message) if interaction.cancelled else InvalidTransition(message)


# ---------------------------------------------------------------- links and changes


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

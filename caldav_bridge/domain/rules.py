"""The rules of multi-user interactions that need no database: what an answer makes of a
link, when linking again changes a link, who may change or answer an interaction, and the CRM's
words for each status. The service (``interactions``) and every channel decide with these.
"""

from __future__ import annotations

import enum

from caldav_bridge.domain.errors import InteractionCancelled, InvalidTransition, NotAllowed
from caldav_bridge.domain.models import (
    Interaction,
    InteractionLink,
    InteractionStatus,
    LinkStatus,
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

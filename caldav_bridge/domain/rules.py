"""The rules of multi-user interactions that need no database: what an answer makes of a
link, when linking again changes a link, who may change an interaction, and the CRM's words for
each status. The service (``interactions``) and every channel decide with these.
"""

from __future__ import annotations

from caldav_bridge.domain.errors import InteractionCancelled, InvalidTransition, NotAllowed
from caldav_bridge.domain.models import Interaction, InteractionLink, LinkStatus, User
from caldav_bridge.ical.mapping import Answer

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

"""The RSVP page: the link in every notice opens the interaction, where a linked user accepts
or declines (DESIGN.md 4.5).

GET never changes anything: mail scanners open every link. A POST carrying the user's signed
token (``domain.tokens``) answers through the interaction service, so the owner is told as on
every other path; answering twice changes nothing the second time. The page is plain HTML
forms, usable without JavaScript and on a phone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import quote

from sqlalchemy.orm import Session

from caldav_bridge.domain import links, tokens
from caldav_bridge.domain.errors import BridgeError, NotAllowed, NotFound, status_of
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import Interaction, User
from caldav_bridge.domain.outbox import describe_when
from caldav_bridge.domain.queries import shown_to
from caldav_bridge.domain.rules import Answer, answerable, guest_label, link_label
from caldav_bridge.web.session import Page
from caldav_bridge.web.templating import render

_ANSWERS = {"accept": Answer.ACCEPT, "decline": Answer.DECLINE}

_NOT_VALID = (
    "This link does not work: it may be mistyped, or replaced by a newer one. "
    "Open the link of your latest notice, or answer from your calendar."
)


@dataclass(frozen=True)
class _Row:
    name: str
    status: str
    you: bool = False


@dataclass
class _View:
    interaction: Interaction
    user: User
    when: str
    participants: list[_Row] = field(default_factory=list)
    rooms: list[_Row] = field(default_factory=list)
    your_status: str = ""
    can_answer: bool = False


def show(session: Session, interaction_id: int, token: str, answered: bool = False) -> Page:
    """The page of one interaction for the user the token names (GET: reads only)."""
    try:
        interaction = InteractionService(session).get(interaction_id)
    except NotFound:
        return _refusal(HTTPStatus.NOT_FOUND, "There is no such interaction.")
    user = tokens.rsvp_user(session, token, interaction_id)
    if user is None:
        return _refusal(HTTPStatus.FORBIDDEN, _NOT_VALID)
    if not shown_to(interaction, user.id, in_calendars=False):  # unlinked since it was sent
        return _refusal(
            HTTPStatus.FORBIDDEN, "You are no longer among this interaction's participants."
        )
    view = _view(interaction, user)
    html = render("rsvp.html", view=view, token=token, answered=answered, error=None)
    return Page(HTTPStatus.OK, html)


def answer(
    service: InteractionService, interaction_id: int, token: str, choice: str, base: str
) -> Page:
    """A POST: apply the answer, then send the browser back to the page (303)."""
    session = service.session
    user = tokens.rsvp_user(session, token, interaction_id)
    if user is None:
        return _refusal(HTTPStatus.FORBIDDEN, _NOT_VALID)
    if choice not in _ANSWERS:
        return _refusal(HTTPStatus.BAD_REQUEST, "Choose Accept or Decline.")
    try:
        interaction = service.get(interaction_id)
        service.answer(user, interaction, _ANSWERS[choice])
    except BridgeError as exc:
        return _refusal(status_of(exc), _reason(exc))
    location = f"{base}{links.RSVP}{interaction_id}?token={quote(token)}&answered=1"
    return Page(HTTPStatus.SEE_OTHER, location=location)


def _reason(refusal: BridgeError) -> str:
    """The refusal in the page's words."""
    if isinstance(refusal, NotFound):
        return "There is no such interaction."
    if isinstance(refusal, NotAllowed):
        return "You are not among this interaction's participants."
    return str(refusal)


def _view(interaction: Interaction, user: User) -> _View:
    view = _View(interaction, user, describe_when(interaction, user.timezone))
    owner = interaction.owner
    view.participants.append(_Row(owner.display_name, "Owner", owner.id == user.id))
    for link in sorted(interaction.links, key=lambda one: one.user.display_name):
        status = link_label(link)  # a link taken out of its calendar is Declined
        view.participants.append(_Row(link.user.display_name, status, link.user_id == user.id))
        if link.user_id == user.id:
            view.your_status = status
            view.can_answer = answerable(interaction)
    for guest in interaction.guests:
        view.participants.append(_Row(guest.name or guest.address, guest_label(guest.partstat)))
    for booking in interaction.bookings:
        state = "Declined: taken at that time" if booking.declined else "Booked"
        view.rooms.append(_Row(booking.resource.name, state))
    return view


def _refusal(status: HTTPStatus, reason: str) -> Page:
    return Page(status, render("rsvp.html", view=None, error=reason, token="", answered=False))

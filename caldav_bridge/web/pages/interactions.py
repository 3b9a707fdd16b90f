"""The interactions: the list, one interaction with its linked users and rooms and what can be
done to it, and the editor of a new or changed one."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from http import HTTPStatus

from sqlalchemy.orm import Session

from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.errors import BridgeError, InvalidInput, NotAllowed
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import Interaction, LinkStatus
from caldav_bridge.domain.outbox import describe_when
from caldav_bridge.domain.periods import Changes, Draft
from caldav_bridge.domain.queries import STANDINGS, require_shown, standing
from caldav_bridge.domain.rules import answerable, guest_label, link_label
from caldav_bridge.domain.typed_period import period
from caldav_bridge.ical.mapping import Answer, zone
from caldav_bridge.web.pages.common import (
    day,
    done,
    midnight,
    number,
    row,
    signed_in_user,
    today,
)
from caldav_bridge.web.session import PAGES, Page, Request, page

KINDS = ["meeting", "call", "intervention", "visit", "task"]

_STATUS_FILTERS = ("", *STANDINGS)  # filtered on the value each entry holds, not on words


def listing(session: Session, request: Request) -> Page:
    user = signed_in_user(request)
    first = day(request.query.get("from", ""), today(user))
    last = day(request.query.get("to", ""), first + timedelta(days=30))
    if last < first:
        raise InvalidInput("the end of the range is before its start")
    if (last - first).days > 366:
        raise InvalidInput("choose a range of a year at most")
    status, kind = request.query.get("status", ""), request.query.get("type", "")
    if status not in _STATUS_FILTERS:
        raise InvalidInput(f"unknown status {status!r}")
    entries = InteractionService(session).agenda(
        user, midnight(first, user), midnight(last + timedelta(days=1), user)
    )
    rows = [(row(e, user), standing(e.interaction, e.link)) for e in entries]
    kinds = sorted({r.kind for r, _ in rows})
    shown = [r for r, held in rows if status in ("", held) and (not kind or r.kind == kind)]
    return page(
        session,
        request,
        "list.html",
        rows=shown,
        first=first,
        last=last,
        chosen=status,
        kind=kind,
        kinds=kinds,
        statuses=list(_STATUS_FILTERS),
    )


# ---------------------------------------------------------------------------- one interaction


@dataclass(frozen=True)
class Person:
    login: str
    name: str
    status: str
    you: bool


def interaction_page(
    session: Session,
    request: Request,
    interaction_id: int,
    error: str = "",
    status: HTTPStatus = HTTPStatus.OK,
    confirm_removal: str = "",
    confirm_cancel: bool = False,
) -> Page:
    user = signed_in_user(request)
    service = InteractionService(session)
    interaction = service.get(interaction_id)
    require_shown(interaction, user)
    mine = next((k for k in interaction.links if k.user_id == user.id), None)
    owner = interaction.owner_id == user.id
    people = [
        Person(
            k.user.login,
            k.user.display_name,
            link_label(k),  # a link taken out of its calendar is Declined
            k.user_id == user.id,
        )
        for k in sorted(interaction.links, key=lambda k: k.user.display_name)
    ]
    linked = {k.user_id for k in interaction.links} | {interaction.owner_id}
    directory = Directory(session)
    return page(
        session,
        request,
        "interaction.html",
        status,
        interaction=interaction,
        when=describe_when(interaction, user.timezone),
        owner=owner,
        mine=mine,
        people=people,
        guests=[(g.name or g.address, guest_label(g.partstat)) for g in interaction.guests],
        bookings=interaction.bookings,
        can_link=[u for u in directory.users() if u.active and u.id not in linked],
        rooms=[r for r in directory.resources() if r.active],
        open=answerable(interaction),
        multi_user=service.multi_user_enabled(),
        your_status=link_label(mine) if mine else "",
        error=error,
        done=done(request),
        confirm_removal=confirm_removal,
        confirm_cancel=confirm_cancel,
    )


def show(session: Session, request: Request, interaction_id: str) -> Page:
    return interaction_page(session, request, number(interaction_id))


def refused(
    session: Session, request: Request, error: str, status: HTTPStatus, interaction_id: str, *_: str
) -> Page | None:
    """The interaction's page with the refusal, for a user who may see it."""
    try:
        return interaction_page(session, request, number(interaction_id), error, status)
    except BridgeError:
        return None


@dataclass(frozen=True)
class _Action:
    """A POST on one interaction, as its action function sees it."""

    session: Session
    request: Request
    service: InteractionService
    interaction: Interaction

    def back(self, done: str) -> Page:
        return Page(
            HTTPStatus.SEE_OTHER,
            location=f"{PAGES}interactions/{self.interaction.id}?done={done}",
        )


def _answer(act: _Action) -> Page:
    choice = {"accept": Answer.ACCEPT, "decline": Answer.DECLINE}.get(act.request.arg("answer"))
    if choice is None:
        raise InvalidInput("choose Accept or Decline")
    act.service.answer(signed_in_user(act.request), act.interaction, choice)
    if act.request.arg("then") == "desk":
        return Page(HTTPStatus.SEE_OTHER, location=f"{PAGES}?done=answered")
    return act.back("answered")


def _link(act: _Action) -> Page:
    wanted = act.request.arg("status", "invited")
    status = next((s for s in LinkStatus if s.value == wanted), None)
    if status is None:  # the domain says which of the statuses the owner may give
        raise InvalidInput("link as Invited or Confirmed")
    colleague = Directory(act.session).user(act.request.arg("login"))
    act.service.link(signed_in_user(act.request), act.interaction, colleague, status)
    return act.back("linked")


def _unlink(act: _Action) -> Page:
    login = act.request.arg("login")
    if act.request.arg("confirm") != "yes":
        return interaction_page(act.session, act.request, act.interaction.id, confirm_removal=login)
    colleague = Directory(act.session).user(login)
    act.service.unlink(signed_in_user(act.request), act.interaction, colleague)
    return act.back("unlinked")


def _cancel(act: _Action) -> Page:
    if act.request.arg("confirm") != "yes":
        return interaction_page(act.session, act.request, act.interaction.id, confirm_cancel=True)
    act.service.cancel(signed_in_user(act.request), act.interaction)
    return act.back("saved")


def _done(act: _Action) -> Page:
    act.service.mark_done(signed_in_user(act.request), act.interaction)
    return act.back("saved")


def _book(act: _Action) -> Page:
    room = Directory(act.session).resource(act.request.arg("room"))
    act.service.book(signed_in_user(act.request), act.interaction, room)
    return act.back("booked")


def _release(act: _Action) -> Page:
    room = Directory(act.session).resource(act.request.arg("room"))
    act.service.release(signed_in_user(act.request), act.interaction, room)
    return act.back("released")


def _edit(act: _Action) -> Page:
    start_, end_ = _typed(act.request)
    changes = Changes(
        subject=act.request.arg("subject"),
        notes=act.request.arg("notes"),
        kind=act.request.arg("type", "meeting"),
        location=act.request.arg("location"),
        start=start_,
        end=end_,
    )
    act.service.edit(signed_in_user(act.request), act.interaction, changes)
    return act.back("saved")


_ACTIONS: dict[str, Callable[[_Action], Page]] = {
    "answer": _answer,
    "link": _link,
    "unlink": _unlink,
    "cancel": _cancel,
    "done": _done,
    "edit": _edit,
    "book": _book,
    "release": _release,
}


def interaction_action(
    session: Session, request: Request, interaction_id: str, action: str
) -> Page:
    """A POST on an interaction: answer, link, unlink or cancel (after a confirmation), mark
    done, edit, book, release."""
    service = InteractionService(session, request.public_url)
    interaction = service.get(number(interaction_id))
    act = _ACTIONS.get(action)
    if act is None:
        raise InvalidInput(f"unknown action {action!r}")
    return act(_Action(session, request, service, interaction))


# ---------------------------------------------------------------------------- the editor


def _typed(request: Request) -> tuple[datetime | date, datetime | date]:
    start_text, end_text = request.arg("start"), request.arg("end")
    if request.arg("all_day") == "yes":
        start_text, end_text = start_text[:10], end_text[:10]
    if not start_text:
        raise InvalidInput("give the start")
    return period(start_text, end_text or None)


def _form_values(interaction: Interaction) -> dict[str, str]:
    tz = zone(interaction.timezone)
    start_, end_ = interaction.starts_at.astimezone(tz), interaction.ends_at.astimezone(tz)
    if interaction.all_day:
        last = end_ - timedelta(days=1)
        return {"start": f"{start_:%Y-%m-%d}", "end": f"{last:%Y-%m-%d}", "all_day": "yes"}
    return {"start": f"{start_:%Y-%m-%dT%H:%M}", "end": f"{end_:%Y-%m-%dT%H:%M}"}


def editor(
    session: Session,
    request: Request,
    interaction: Interaction | None = None,
    error: str = "",
    status: HTTPStatus = HTTPStatus.OK,
) -> Page:
    """The form of a new interaction, or of one being changed (its owner only)."""
    values = {"subject": "", "type": "meeting", "location": "", "notes": ""}
    if interaction is not None:
        values = {
            "subject": interaction.subject,
            "type": interaction.kind,
            "location": interaction.location,
            "notes": interaction.notes,
            **_form_values(interaction),
        }
    if request.method == "POST":
        values.update({k: v for k, v in request.form.items() if k != "csrf"})
    return page(
        session,
        request,
        "editor.html",
        status,
        interaction=interaction,
        values=values,
        kinds=KINDS,
        error=error,
    )


def _owned(session: Session, request: Request, interaction_id: str) -> Interaction:
    interaction = InteractionService(session).get(number(interaction_id))
    if interaction.owner_id != signed_in_user(request).id:
        raise NotAllowed("only the owner changes an interaction")
    return interaction


def edit_form(session: Session, request: Request, interaction_id: str) -> Page:
    return editor(session, request, _owned(session, request, interaction_id))


def create(session: Session, request: Request) -> Page:
    start_, end_ = _typed(request)
    draft = Draft(
        subject=request.arg("subject"),
        start=start_,
        end=end_,
        notes=request.arg("notes"),
        kind=request.arg("type", "meeting"),
        location=request.arg("location"),
    )
    service = InteractionService(session, request.public_url)
    interaction = service.create(signed_in_user(request), draft)
    return Page(HTTPStatus.SEE_OTHER, location=f"{PAGES}interactions/{interaction.id}?done=saved")


def new_refused(session: Session, request: Request, error: str, status: HTTPStatus) -> Page:
    return editor(session, request, None, error, status)


def edit_refused(
    session: Session, request: Request, error: str, status: HTTPStatus, interaction_id: str, *_: str
) -> Page | None:
    """The editor with the refusal for the owner; the interaction's page for another."""
    with contextlib.suppress(BridgeError):
        return editor(session, request, _owned(session, request, interaction_id), error, status)
    return refused(session, request, error, status, interaction_id)

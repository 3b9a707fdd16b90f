"""The CRM's web pages (DESIGN.md section 1), under ``/.bridge/crm/``: the desk, the interaction
list, an interaction with its linked users and rooms, the week's agenda, and administration.

Server-rendered (Jinja2), plain forms that work without JavaScript and on a phone. Every action
is a POST with the session's CSRF token, calls the same domain service as CalDAV, email and the
CLI (so notices and calendars follow), then sends the browser back to a page (303).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from http import HTTPStatus

from sqlalchemy.orm import Session

from caldav_bridge.domain import links, messenger, tokens
from caldav_bridge.domain.administration import (
    Administration,
    may_administer,
    require_administrator,
)
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.errors import (
    BridgeError,
    InvalidInput,
    NotAllowed,
    NotFound,
    status_of,
)
from caldav_bridge.domain.interactions import AgendaEntry, InteractionService
from caldav_bridge.domain.models import Interaction, LinkStatus, User
from caldav_bridge.domain.outbox import describe_when
from caldav_bridge.domain.passwords import verify_password
from caldav_bridge.domain.periods import Changes, Draft
from caldav_bridge.domain.queries import STANDINGS, require_shown, standing
from caldav_bridge.domain.rules import answerable, guest_label, link_label
from caldav_bridge.domain.typed_period import period
from caldav_bridge.ical.mapping import Answer, location_text, zone
from caldav_bridge.web.session import (
    PAGES,
    Page,
    Request,
    csrf_ok,
    end,
    login_check_ok,
    login_failed,
    login_form,
    login_throttled,
    next_page,
    page,
    signed_in,
    start,
)
from caldav_bridge.web.session import to_login as _to_login

DESK_DAYS = 14

# What a page says after an action: fixed words, never text taken from the address.
DONE = {
    "answered": "Your answer is recorded; the owner is told.",
    "linked": "Linked; they are told.",
    "unlinked": "Removed; they are told.",
    "booked": "Booked.",
    "released": "Released.",
    "saved": "Saved.",
}


@dataclass(frozen=True)
class Row:
    """One occurrence of an interaction, as the pages list it."""

    id: int
    when: str
    hours: str
    day: date
    subject: str
    kind: str
    status: str
    others: str
    where: str
    can_answer: bool


def _row(entry: AgendaEntry, user: User) -> Row:
    interaction, tz = entry.interaction, zone(user.timezone)
    start_, end_ = entry.starts_at.astimezone(tz), entry.ends_at.astimezone(tz)
    when = "all day" if interaction.all_day else f"{start_:%H:%M}–{end_:%H:%M}"
    if interaction.cancelled:
        status = "Cancelled"
    else:
        status = "Owner" if entry.link is None else link_label(entry.link)
    people = [k.user.display_name for k in interaction.links if k.user_id != user.id]
    if interaction.owner_id != user.id:
        people.insert(0, interaction.owner.display_name)
    return Row(
        interaction.id,
        f"{start_:%a %d %b} {when}",
        when,
        start_.date(),
        interaction.subject,
        interaction.kind,
        status,
        ", ".join(people),
        location_text(interaction),
        entry.link is not None and answerable(interaction),
    )


def _midnight(day: date, user: User) -> datetime:
    return datetime.combine(day, time(0), zone(user.timezone))


def _today(user: User) -> date:
    return datetime.now(zone(user.timezone)).date()


def _day(text: str, default: date) -> date:
    if not text:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(f"{text!r} is not a date (use YYYY-MM-DD)") from exc


# ---------------------------------------------------------------------------- pages


def desk(session: Session, request: Request) -> Page:
    user = request.user
    assert user is not None
    service, today = InteractionService(session), _today(user)
    start_ = _midnight(today, user)
    upcoming = [_row(e, user) for e in service.agenda(user, start_, start_ + timedelta(DESK_DAYS))]
    pending = [_row(e, user) for e in service.invitations(user, start_)]
    notices = messenger.notices(session, user, limit=10)
    return page(
        session,
        request,
        "desk.html",
        pending=pending,
        notices=notices,
        tz=zone(user.timezone),
        upcoming=upcoming,
        days=DESK_DAYS,
        done=DONE.get(request.query.get("done", ""), ""),
    )


_STATUS_FILTERS = ("", *STANDINGS)  # filtered on the value each entry holds, not on words


def listing(session: Session, request: Request) -> Page:
    user = request.user
    assert user is not None
    first = _day(request.query.get("from", ""), _today(user))
    last = _day(request.query.get("to", ""), first + timedelta(days=30))
    if last < first:
        raise InvalidInput("the end of the range is before its start")
    if (last - first).days > 366:
        raise InvalidInput("choose a range of a year at most")
    status, kind = request.query.get("status", ""), request.query.get("type", "")
    if status not in _STATUS_FILTERS:
        raise InvalidInput(f"unknown status {status!r}")
    entries = InteractionService(session).agenda(
        user, _midnight(first, user), _midnight(last + timedelta(days=1), user)
    )
    rows = [(_row(e, user), standing(e.interaction, e.link)) for e in entries]
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


def agenda(session: Session, request: Request) -> Page:
    user = request.user
    assert user is not None
    day = _day(request.query.get("week", ""), _today(user))
    monday = day - timedelta(days=day.weekday())
    entries = InteractionService(session).agenda(
        user, _midnight(monday, user), _midnight(monday + timedelta(days=7), user)
    )
    rows = [_row(e, user) for e in entries]
    days = [monday + timedelta(days=n) for n in range(7)]
    columns = [(d, [r for r in rows if r.day == d]) for d in days]
    return page(
        session,
        request,
        "agenda.html",
        columns=columns,
        monday=monday,
        previous=monday - timedelta(days=7),
        following=monday + timedelta(days=7),
        today=_today(user),
    )


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
    user = request.user
    assert user is not None
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
        done=DONE.get(request.query.get("done", ""), ""),
        confirm_removal=confirm_removal,
        confirm_cancel=confirm_cancel,
    )


def interaction_action(
    session: Session, request: Request, interaction_id: int, action: str
) -> Page:
    """A POST on an interaction: answer, link, unlink (after a confirmation), book, release."""
    user = request.user
    assert user is not None
    service = InteractionService(session, request.public_url)
    interaction = service.get(interaction_id)
    directory = Directory(session)
    back = f"{PAGES}interactions/{interaction_id}"
    if action == "answer":
        choice = {"accept": Answer.ACCEPT, "decline": Answer.DECLINE}.get(request.arg("answer"))
        if choice is None:
            raise InvalidInput("choose Accept or Decline")
        service.answer(user, interaction, choice)
        then = (
            f"{PAGES}?done=answered" if request.arg("then") == "desk" else f"{back}?done=answered"
        )
        return Page(HTTPStatus.SEE_OTHER, location=then)
    if action == "link":
        status = next((s for s in LinkStatus if s.value == request.arg("status", "invited")), None)
        if status is None:  # the domain says which of the statuses the owner may give
            raise InvalidInput("link as Invited or Confirmed")
        service.link(user, interaction, directory.user(request.arg("login")), status)
        return Page(HTTPStatus.SEE_OTHER, location=f"{back}?done=linked")
    if action == "unlink":
        login = request.arg("login")
        if request.arg("confirm") != "yes":
            return interaction_page(session, request, interaction_id, confirm_removal=login)
        service.unlink(user, interaction, directory.user(login))
        return Page(HTTPStatus.SEE_OTHER, location=f"{back}?done=unlinked")
    if action == "cancel":
        if request.arg("confirm") != "yes":
            return interaction_page(session, request, interaction_id, confirm_cancel=True)
        service.cancel(user, interaction)
        return Page(HTTPStatus.SEE_OTHER, location=f"{back}?done=saved")
    if action == "done":
        service.mark_done(user, interaction)
        return Page(HTTPStatus.SEE_OTHER, location=f"{back}?done=saved")
    if action == "edit":
        return edit_interaction(session, request, interaction)
    if action in ("book", "release"):
        room = directory.resource(request.arg("room"))
        if action == "book":
            service.book(user, interaction, room)
        else:
            service.release(user, interaction, room)
        done = "booked" if action == "book" else "released"
        return Page(HTTPStatus.SEE_OTHER, location=f"{back}?done={done}")
    raise InvalidInput(f"unknown action {action!r}")


# ---------------------------------------------------------------------------- new and edited

KINDS = ["meeting", "call", "intervention", "visit", "task"]


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


def create_interaction(session: Session, request: Request) -> Page:
    user = request.user
    assert user is not None
    start_, end_ = _typed(request)
    draft = Draft(
        subject=request.arg("subject"),
        start=start_,
        end=end_,
        notes=request.arg("notes"),
        kind=request.arg("type", "meeting"),
        location=request.arg("location"),
    )
    interaction = InteractionService(session, request.public_url).create(user, draft)
    return Page(HTTPStatus.SEE_OTHER, location=f"{PAGES}interactions/{interaction.id}?done=saved")


def edit_interaction(session: Session, request: Request, interaction: Interaction) -> Page:
    user = request.user
    assert user is not None
    start_, end_ = _typed(request)
    changes = Changes(
        subject=request.arg("subject"),
        notes=request.arg("notes"),
        kind=request.arg("type", "meeting"),
        location=request.arg("location"),
        start=start_,
        end=end_,
    )
    InteractionService(session, request.public_url).edit(user, interaction, changes)
    return Page(HTTPStatus.SEE_OTHER, location=f"{PAGES}interactions/{interaction.id}?done=saved")


# ---------------------------------------------------------------------------- administration


def admin(
    session: Session, request: Request, error: str = "", status: HTTPStatus = HTTPStatus.OK
) -> Page:
    user = request.user
    assert user is not None
    require_administrator(user)
    directory = Directory(session)

    def feed_of(subject: tokens.FeedSubject) -> str:
        token = tokens.feed_token(session, subject)
        return links.webcal(links.feed(request.public_url, token)) if token else ""

    return page(
        session,
        request,
        "admin.html",
        status,
        multi_user=InteractionService(session).multi_user_enabled(),
        users=[(u, feed_of(u)) for u in directory.users()],
        rooms=[(r, feed_of(r)) for r in directory.resources()],
        error=error,
        done=DONE.get(request.query.get("done", ""), ""),
    )


def admin_action(session: Session, request: Request, action: str) -> Page:
    user = request.user
    assert user is not None
    require_administrator(user)
    directory, administration = Directory(session), Administration(session, user)
    if action == "multi-user":
        administration.set_multi_user(request.arg("state") == "on")
    elif action == "add-user":
        email = request.arg("email")
        administration.add_user(
            request.arg("login"),
            request.arg("name"),
            [email] if email else [],
            request.arg("password"),
            request.arg("timezone", "UTC"),
        )
    elif action == "active":
        administration.set_active(request.arg("login"), request.arg("active") == "yes")
    elif action == "add-room":
        administration.add_resource(request.arg("slug"), request.arg("name"), request.arg("email"))
    elif action == "feed":
        slug, login = request.arg("room"), request.arg("login")
        subject: tokens.FeedSubject = directory.resource(slug) if slug else directory.user(login)
        if request.arg("do") == "revoke":
            tokens.revoke_feed(subject)
        else:
            tokens.rotate_feed(subject)
    else:
        raise InvalidInput(f"unknown action {action!r}")
    return Page(HTTPStatus.SEE_OTHER, location=f"{PAGES}admin?done=saved")


# ---------------------------------------------------------------------------- login and routes


def login(session: Session, request: Request) -> Page:
    then = next_page(request.arg("next"))  # never another site, never a header of its own
    if request.method == "GET":
        return login_form(session, request, HTTPStatus.OK, then=then, error="")
    if not login_check_ok(request):
        return login_form(
            session,
            request,
            HTTPStatus.FORBIDDEN,
            then=then,
            error="This login form is out of date (or not from this site): log in again.",
        )
    throttled = login_throttled(session, request, then)
    if throttled is not None:
        return throttled
    found = Directory(session).find_user(request.login_name)
    hashed = found.password_hash if found is not None and found.active else None
    if not verify_password(hashed, request.arg("password")) or found is None:
        login_failed(request)
        return login_form(
            session, request, HTTPStatus.UNAUTHORIZED, then=then, error="Wrong login or password."
        )
    return start(session, request, found, then)


def handle(session: Session, request: Request) -> Page:
    """One request to the pages; refusals are shown on the page with a 4xx status."""
    route = request.route
    if route == "login":
        return login(session, request)
    request.user = signed_in(session, request)
    if request.user is None:
        return _to_login(request)
    if request.method == "POST" and not csrf_ok(session, request):
        return page(
            session,
            request,
            "error.html",
            HTTPStatus.FORBIDDEN,
            error="This form is out of date (or not from this site): open the page again.",
        )
    if route == "logout" and request.method == "POST":
        return end(request)
    try:
        with session.begin_nested():  # a refused action leaves nothing behind
            return _route(session, request)
    except BridgeError as exc:
        status = status_of(exc)
        parts = route.split("/")
        if parts == ["interactions", "new"]:
            return editor(session, request, None, str(exc), status)
        if len(parts) == 3 and parts[2] == "edit" and parts[1].isdecimal():
            with contextlib.suppress(BridgeError):
                interaction = InteractionService(session).get(_number(parts[1]))
                if interaction.owner_id == request.user.id:
                    return editor(session, request, interaction, str(exc), status)
        if len(parts) >= 2 and parts[0] == "interactions" and parts[1].isdecimal():
            try:
                return interaction_page(session, request, _number(parts[1]), str(exc), status)
            except BridgeError:
                pass
        if parts[0] == "admin" and may_administer(request.user):
            return admin(session, request, str(exc), status)
        return page(session, request, "error.html", status, error=str(exc))


def _number(text: str) -> int:
    if not (text.isascii() and text.isdecimal() and len(text) < 12):
        raise NotFound("there is no such interaction")
    return int(text)


def _route(session: Session, request: Request) -> Page:
    parts, post = request.route.split("/") if request.route else [], request.method == "POST"
    if not parts and not post:
        return desk(session, request)
    if parts == ["interactions"] and not post:
        return listing(session, request)
    if parts == ["interactions", "new"]:
        return create_interaction(session, request) if post else editor(session, request)
    if len(parts) == 3 and parts[0] == "interactions" and parts[2] == "edit" and not post:
        interaction = InteractionService(session).get(_number(parts[1]))
        if interaction.owner_id != request.user.id:  # type: ignore[union-attr]
            raise NotAllowed("only the owner changes an interaction")
        return editor(session, request, interaction)
    if len(parts) in (2, 3) and parts[0] == "interactions" and parts[1].isdecimal():
        number = _number(parts[1])
        if len(parts) == 2 and not post:
            return interaction_page(session, request, number)
        if len(parts) == 3 and post:
            return interaction_action(session, request, number, parts[2])
    if parts == ["notices", "read"] and post:
        messenger.mark_read(session, request.user)  # type: ignore[arg-type]
        return Page(HTTPStatus.SEE_OTHER, location=PAGES)
    if parts == ["agenda"] and not post:
        return agenda(session, request)
    if parts == ["admin"] and not post:
        return admin(session, request)
    if len(parts) == 2 and parts[0] == "admin" and post:
        return admin_action(session, request, parts[1])
    return page(
        session, request, "error.html", HTTPStatus.NOT_FOUND, error="There is no such page."
    )

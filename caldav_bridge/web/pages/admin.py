"""Administration: users, rooms, their feeds, and the multi-user setting (administrators only).

Every call into the domain of the page and of its actions is in this module."""

from __future__ import annotations

from http import HTTPStatus

from sqlalchemy.orm import Session

from caldav_bridge.domain import links, tokens
from caldav_bridge.domain.administration import (
    Administration,
    may_administer,
    require_administrator,
)
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.errors import InvalidInput
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.models import User
from caldav_bridge.domain.passwords import MINIMUM_LENGTH
from caldav_bridge.web.pages.common import done, signed_in_user
from caldav_bridge.web.session import PAGES, Page, Request, page


def _administrator(request: Request) -> User:
    user = signed_in_user(request)
    require_administrator(user)
    return user


def admin(
    session: Session, request: Request, error: str = "", status: HTTPStatus = HTTPStatus.OK
) -> Page:
    _administrator(request)
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
        password_length=MINIMUM_LENGTH,  # the form says the domain's rule
        error=error,
        done=done(request),
    )


def refused(
    session: Session, request: Request, error: str, status: HTTPStatus, *_: str
) -> Page | None:
    """The admin page with the refusal of its action, for an administrator."""
    user = signed_in_user(request)
    return admin(session, request, error, status) if may_administer(user) else None


def _add_user(session: Session, request: Request, user: User) -> None:
    email = request.arg("email")
    Administration(session, user).add_user(
        request.arg("login"),
        request.arg("name"),
        [email] if email else [],
        request.arg("password"),
        request.arg("timezone", "UTC"),
    )


def _active(session: Session, request: Request, user: User) -> None:
    Administration(session, user).set_active(request.arg("login"), request.arg("active") == "yes")


def _add_room(session: Session, request: Request, user: User) -> None:
    Administration(session, user).add_resource(
        request.arg("slug"), request.arg("name"), request.arg("email")
    )


def _feed(session: Session, request: Request, user: User) -> None:
    directory = Directory(session)
    slug, login = request.arg("room"), request.arg("login")
    subject: tokens.FeedSubject = directory.resource(slug) if slug else directory.user(login)
    if request.arg("do") == "revoke":
        tokens.revoke_feed(subject)
    else:
        tokens.rotate_feed(subject)


def _multi_user(session: Session, request: Request, user: User) -> None:
    Administration(session, user).set_multi_user(request.arg("state") == "on")


_ACTIONS = {
    "multi-user": _multi_user,
    "add-user": _add_user,
    "active": _active,
    "add-room": _add_room,
    "feed": _feed,
}


def admin_action(session: Session, request: Request, action: str) -> Page:
    user = _administrator(request)
    act = _ACTIONS.get(action)
    if act is None:
        raise InvalidInput(f"unknown action {action!r}")
    act(session, request, user)
    return Page(HTTPStatus.SEE_OTHER, location=f"{PAGES}admin?done=saved")

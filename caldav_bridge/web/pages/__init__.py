"""The CRM's web pages (DESIGN.md section 1), under ``/.bridge/crm/``: the desk (``desk``), the
interaction list, an interaction with its linked users and rooms, and its editor
(``interactions``), the week's agenda (``agenda``), and administration (``admin``).

Server-rendered (Jinja2), plain forms that work without JavaScript and on a phone. Every action
is a POST with the session's CSRF token, calls the same domain service as CalDAV, email and the
CLI (so notices and calendars follow), then sends the browser back to a page (303). The routes
are all in ``ROUTES``: each names the page that answers, and the page that shows a refusal.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from sqlalchemy.orm import Session

from caldav_bridge.domain.errors import BridgeError, status_of
from caldav_bridge.web.pages import admin, agenda, desk, interactions
from caldav_bridge.web.pages.login import login
from caldav_bridge.web.session import Page, Request, csrf_ok, end, page, signed_in, to_login

# A page of a route: (session, request, *the groups of its pattern).
Answerer = Callable[..., Page]
# The page of a refusal: (session, request, error, status, *the groups), None to show the error
# page instead.
Refuser = Callable[..., Page | None]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]  # the path under the pages, without slashes at either end
    answer: Answerer
    refused: Refuser | None = None


def _route(method: str, pattern: str, answer: Answerer, refused: Refuser | None = None) -> Route:
    return Route(method, re.compile(pattern), answer, refused)


_ID = "([0-9]+)"
_ACTION = "([a-z-]+)"
ROUTES = [
    _route("GET", "", desk.desk),
    _route("POST", "notices/read", desk.notices_read),
    _route("GET", "interactions", interactions.listing),
    _route("GET", "interactions/new", interactions.editor, interactions.new_refused),
    _route("POST", "interactions/new", interactions.create, interactions.new_refused),
    _route("GET", f"interactions/{_ID}", interactions.show, interactions.refused),
    _route("GET", f"interactions/{_ID}/edit", interactions.edit_form, interactions.edit_refused),
    _route(
        "POST",
        f"interactions/{_ID}/(edit)",
        interactions.interaction_action,
        interactions.edit_refused,
    ),
    _route(
        "POST",
        f"interactions/{_ID}/{_ACTION}",
        interactions.interaction_action,
        interactions.refused,
    ),
    _route("GET", "agenda", agenda.agenda),
    _route("GET", "admin", admin.admin, admin.refused),
    _route("POST", f"admin/{_ACTION}", admin.admin_action, admin.refused),
]


def _error(session: Session, request: Request, status: HTTPStatus, error: str) -> Page:
    return page(session, request, "error.html", status, error=error)


def handle(session: Session, request: Request) -> Page:
    """One request to the pages; refusals are shown on the page with a 4xx status."""
    if request.route == "login":
        return login(session, request)
    request.user = signed_in(session, request)
    if request.user is None:
        return to_login(request)
    if request.method == "POST" and not csrf_ok(session, request):
        return _error(
            session,
            request,
            HTTPStatus.FORBIDDEN,
            "This form is out of date (or not from this site): open the page again.",
        )
    if request.route == "logout" and request.method == "POST":
        return end(request)
    found = _found(request)
    if found is None:
        return _error(session, request, HTTPStatus.NOT_FOUND, "There is no such page.")
    route, groups = found
    try:
        with session.begin_nested():  # a refused action leaves nothing behind
            return route.answer(session, request, *groups)
    except BridgeError as exc:
        status = status_of(exc)
        shown = (
            route.refused(session, request, str(exc), status, *groups) if route.refused else None
        )
        return shown or _error(session, request, status, str(exc))


def _found(request: Request) -> tuple[Route, tuple[Any, ...]] | None:
    for route in ROUTES:
        matched = route.pattern.fullmatch(request.route)
        if matched is not None and route.method == request.method:
            return route, matched.groups()
    return None

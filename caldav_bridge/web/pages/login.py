"""The login form (GET), and the login (POST): its CSRF check, the throttle, the password."""

from __future__ import annotations

from http import HTTPStatus

from sqlalchemy.orm import Session

from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.passwords import verify_password
from caldav_bridge.web.session import (
    Page,
    Request,
    login_check_ok,
    login_failed,
    login_form,
    login_throttled,
    next_page,
    start,
)


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

"""Requests and answers of the CRM's web pages, and their login: a signed session cookie
(``tokens.session_token``), HttpOnly and SameSite=Lax (Secure behind https), and a CSRF token
in every form, checked on every POST."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs, quote

from sqlalchemy.orm import Session

from caldav_bridge import links, tokens
from caldav_bridge.models import User
from caldav_bridge.templating import render

COOKIE = "caldav_bridge_session"
PAGES = f"{links.PREFIX}crm/"


@dataclass
class Request:
    method: str
    route: str  # the path under PAGES, without slashes at either end
    query: dict[str, str]
    form: dict[str, str]
    cookie: str
    secure: bool  # served behind https: the cookie is Secure
    public_url: str
    user: User | None = None

    def arg(self, name: str, default: str = "") -> str:
        return self.form.get(name) or self.query.get(name) or default


@dataclass
class Page:
    status: HTTPStatus
    html: str = ""
    location: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def parse(
    method: str, route: str, query_string: str, body: bytes, cookie_header: str, public_url: str
) -> Request:
    def flat(text: str) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}

    cookie = ""
    try:
        jar = SimpleCookie(cookie_header)
        cookie = jar[COOKIE].value if COOKIE in jar else ""
    except CookieError:
        pass
    return Request(
        method,
        route.strip("/"),
        flat(query_string),
        flat(body.decode("utf-8", "replace")),
        cookie,
        public_url.startswith("https:"),
        public_url,
    )


def signed_in(session: Session, request: Request) -> User | None:
    return tokens.session_user(session, request.cookie, time.time()) if request.cookie else None


def _cookie(value: str, secure: bool, max_age: int) -> str:
    flags = f"Path={PAGES}; HttpOnly; SameSite=Lax; Max-Age={max_age}"
    return f"{COOKIE}={value}; {flags}{'; Secure' if secure else ''}"


def start(session: Session, request: Request, user: User, then: str) -> Page:
    """Signed in: the cookie, and on to ``then``."""
    token = tokens.session_token(session, user, time.time())
    cookie = _cookie(token, request.secure, tokens.SESSION_HOURS * 3600)
    return Page(HTTPStatus.SEE_OTHER, location=then, headers={"Set-Cookie": cookie})


def end(request: Request) -> Page:
    return Page(
        HTTPStatus.SEE_OTHER,
        location=f"{PAGES}login",
        headers={"Set-Cookie": _cookie("", request.secure, 0)},
    )


def to_login(request: Request) -> Page:
    then = quote(f"{PAGES}{request.route}", safe="/")
    return Page(HTTPStatus.SEE_OTHER, location=f"{PAGES}login?next={then}")


def csrf_ok(session: Session, request: Request) -> bool:
    return tokens.csrf_valid(session, request.cookie, request.form.get("csrf", ""))


def page(
    session: Session,
    request: Request,
    template: str,
    status: HTTPStatus = HTTPStatus.OK,
    **context: object,
) -> Page:
    """A page of the CRM, its forms carrying the session's CSRF token."""
    csrf = tokens.csrf_token(session, request.cookie) if request.cookie else ""
    html = render(f"crm/{template}", user=request.user, csrf=csrf, pages=PAGES, **context)
    return Page(status, html)

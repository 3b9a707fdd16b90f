"""Requests and answers of the CRM's web pages, and their login: a signed session cookie
(``tokens.session_token``), HttpOnly and SameSite=Lax (Secure behind https), and a CSRF token
in every form, checked on every POST."""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs, quote

from sqlalchemy.orm import Session

from caldav_bridge.domain import links, throttle, tokens
from caldav_bridge.domain.models import User
from caldav_bridge.domain.throttle import Throttle
from caldav_bridge.web.templating import render

logger = logging.getLogger("caldav_bridge")

COOKIE = "caldav_bridge_session"
LOGIN_COOKIE = "caldav_bridge_login"  # the login form's own CSRF check (double submit)
PAGES = f"{links.PREFIX}crm/"
# Where a login may send the browser on: these pages, and no character that could end a header.
_NEXT = re.compile(r"/\.bridge/crm/[A-Za-z0-9/_.?=&%-]{0,300}")


@dataclass
class Request:
    method: str
    route: str  # the path under PAGES, without slashes at either end
    query: dict[str, str]
    form: dict[str, str]
    cookie: str
    login_cookie: str
    secure: bool  # served behind https: the cookie is Secure
    public_url: str
    user: User | None = None
    address: str = ""  # the client's
    throttle: Throttle | None = None  # the process's count of failed logins

    @property
    def login_name(self) -> str:
        return self.arg("login").strip().lower()

    def arg(self, name: str, default: str = "") -> str:
        return self.form.get(name) or self.query.get(name) or default


@dataclass
class Page:
    """What the bridge's pages answer: HTML, or a redirection (303 See Other)."""

    status: HTTPStatus
    html: str = ""
    location: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def form_fields(text: str) -> dict[str, str]:
    """A form's (or query's) fields, the first value of each; ValueError when one holds a NUL
    (no login, token or text of the CRM has one, and PostgreSQL's text cannot)."""
    fields = {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}
    if any("\x00" in k or "\x00" in v for k, v in fields.items()):
        raise ValueError("NUL characters are not accepted in a form")
    return fields


def parse(
    method: str, route: str, query_string: str, body: bytes, cookie_header: str, public_url: str
) -> Request:
    """The request to the pages; ValueError when its form cannot be taken (``form_fields``)."""

    cookie = login_cookie = ""
    try:
        jar = SimpleCookie(cookie_header)
        cookie = jar[COOKIE].value if COOKIE in jar else ""
        login_cookie = jar[LOGIN_COOKIE].value if LOGIN_COOKIE in jar else ""
    except CookieError:
        pass
    return Request(
        method,
        route.strip("/"),
        form_fields(query_string),
        form_fields(body.decode("utf-8", "replace")),
        cookie,
        login_cookie,
        public_url.startswith("https:"),
        public_url,
    )


def signed_in(session: Session, request: Request) -> User | None:
    return tokens.session_user(session, request.cookie, time.time()) if request.cookie else None


def _cookie(value: str, secure: bool, max_age: int, name: str = COOKIE) -> str:
    flags = f"Path={PAGES}; HttpOnly; SameSite=Lax; Max-Age={max_age}"
    return f"{name}={value}; {flags}{'; Secure' if secure else ''}"


def next_page(wanted: str) -> str:
    """Where to go after the login: ``wanted`` if it is one of these pages, else the desk."""
    return wanted if _NEXT.fullmatch(wanted) and "//" not in wanted else PAGES


def login_form(session: Session, request: Request, status: HTTPStatus, **context: object) -> Page:
    """The login form, with a fresh check value in a cookie and in the form: a page on another
    site cannot post a login in the user's browser (login CSRF)."""
    check = secrets.token_urlsafe(16)
    shown = page(session, request, "login.html", status, check=check, **context)
    shown.headers["Set-Cookie"] = _cookie(check, request.secure, 3600, LOGIN_COOKIE)
    return shown


def login_check_ok(request: Request) -> bool:
    sent = request.form.get("check", "")
    return bool(sent) and hmac.compare_digest(sent.encode(), request.login_cookie.encode())


def login_throttled(session: Session, request: Request, then: str) -> Page | None:
    """429 with Retry-After, the password unchecked, while the login (or the address) has
    failed too often of late (``throttle``)."""
    wait = request.throttle.wait(request.login_name, request.address) if request.throttle else 0
    if not wait:
        return None
    logger.warning(
        "throttled web login %r from %s for %d s", request.login_name, request.address, wait
    )
    error = f"{throttle.reason(wait).capitalize()}."
    shown = login_form(session, request, HTTPStatus.TOO_MANY_REQUESTS, then=then, error=error)
    shown.headers["Retry-After"] = str(wait)
    return shown


def login_failed(request: Request) -> None:
    logger.warning("failed web login %r from %s", request.login_name, request.address)
    if request.throttle:
        request.throttle.failed(request.login_name, request.address, request.arg("password"))


def start(session: Session, request: Request, user: User, then: str) -> Page:
    """Signed in: the cookie, and on to ``then``."""
    if request.throttle:
        request.throttle.succeeded(user.login, request.address)
    token = tokens.session_token(session, user, time.time())
    cookie = _cookie(token, request.secure, tokens.SESSION_HOURS * 3600)
    return Page(HTTPStatus.SEE_OTHER, location=then, headers={"Set-Cookie": cookie})


def end(request: Request) -> Page:
    """Logged out: every session of the user ends (``tokens.end_sessions``), this cookie too."""
    assert request.user is not None
    tokens.end_sessions(request.user)
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

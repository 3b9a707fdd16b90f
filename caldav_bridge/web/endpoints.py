"""The endpoints under ``/.bridge/`` (``links``), each a function of the request:

- ``GET /.bridge/messages[?unread=1]``: the logged-in user's messenger notices (JSON);
- ``POST /.bridge/messages/read`` with ``{"ids": [...]}`` or ``{"all": true}``: mark them read;
- ``GET|POST /.bridge/interactions/<id>?token=…``: the RSVP page (``rsvp``), no login: the token;
- ``GET /.bridge/feeds/<token>.ics``: an ICS feed (``feeds``), no login: the token;
- ``/.bridge/crm/…``: the CRM's web pages (``pages``), with their own login and cookie.
"""

from __future__ import annotations

import json
from email.message import Message
from http import HTTPStatus
from urllib.parse import urlsplit

from werkzeug.http import parse_etags

from caldav_bridge.db import Database
from caldav_bridge.domain import links, messenger, tokens
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.domain.throttle import Throttle
from caldav_bridge.web import feeds, pages, rsvp
from caldav_bridge.web import session as web_session
from caldav_bridge.web.http import Answer, Request, json_answer, refusal
from caldav_bridge.web.session import Page

MESSAGES = "messages"
CRM = "crm"
FORM_LIMIT = 10_000  # bytes of an RSVP form
BODY_LIMIT = FORM_LIMIT * 10  # bytes of any other body

# Pages carry tokens in their URL: never sent on as a Referer, never cached, never framed.
_PAGE_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
}


def _origin(address: str) -> str:
    parts = urlsplit(address)
    return f"{parts.scheme}://{parts.netloc}".lower()


def foreign_origin(request: Request, public_url: str) -> str | None:
    """Why a state-changing request comes from another site, or None: its Origin (else, from
    browsers that send no Origin, Sec-Fetch-Site, else the Referer) must be this server's,
    as configured (``public_url``) or as the browser addressed it (the Host header). Pages
    sent with Referrer-Policy no-referrer post with "Origin: null", where Sec-Fetch-Site
    speaks. A request with none of them is no browser's (curl, calendar clients)."""
    own = {_origin(public_url)}
    host = request.header("HTTP_HOST")
    if host:
        own.add(f"{request.environ.get('wsgi.url_scheme', 'http')}://{host}".lower())
    origin = request.header("HTTP_ORIGIN").strip()
    site = request.header("HTTP_SEC_FETCH_SITE").strip().lower()
    referer = request.header("HTTP_REFERER").strip()
    if origin and origin != "null":
        allowed = origin.lower() in own
    elif site:
        allowed = site in ("same-origin", "none")
    elif referer:
        allowed = _origin(referer) in own
    elif origin:
        allowed = False
    else:
        return None
    return None if allowed else "refused: the request comes from another site"


def _json_body(request: Request) -> bool:
    """True when the request says its body is JSON (a form from another site cannot)."""
    parsed = Message()
    parsed["Content-Type"] = request.header("CONTENT_TYPE")
    return parsed.get_content_type() == "application/json"


def page(shown: Page) -> Answer:
    headers = {**_PAGE_HEADERS, **shown.headers}
    if shown.location is not None:
        return Answer(shown.status, {**headers, "Location": shown.location})
    return Answer(shown.status, headers, shown.html.encode())


def too_large() -> Answer:
    return refusal(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "the form is too large")


def rsvp_page(database: Database, public_url: str, request: Request, rest: str) -> Answer:
    if not (rest.isascii() and rest.isdecimal() and len(rest) < 12):
        return page(Page(HTTPStatus.NOT_FOUND, "no such page"))
    interaction_id = int(rest)
    if request.method == "GET":
        with database.session() as session:
            answered = request.query("answered") == "1"
            return page(rsvp.show(session, interaction_id, request.query("token"), answered))
    if request.body is None or len(request.body) > FORM_LIMIT:
        return too_large()
    try:
        form = web_session.form_fields(request.body.decode("utf-8", "replace"))
    except ValueError as exc:
        return page(Page(HTTPStatus.BAD_REQUEST, str(exc)))
    token = form.get("token", "") or request.query("token")
    base = f"{request.environ.get('SCRIPT_NAME', '')}{links.PREFIX}"
    with database.session(write=True) as session:
        service = InteractionService(session, public_url)
        return page(rsvp.answer(service, interaction_id, token, form.get("answer", ""), base))


def crm_page(
    database: Database, public_url: str, request: Request, throttle: Throttle | None
) -> Answer:
    try:
        shown = web_session.parse(
            request.method,
            request.route[len(CRM) :],
            request.query_string,
            request.body or b"",
            request.header("HTTP_COOKIE"),
            public_url,
        )
    except ValueError as exc:
        return page(Page(HTTPStatus.BAD_REQUEST, str(exc)))
    shown.address = request.address
    shown.throttle = throttle
    # A login only reads: a flood of them never holds SQLite's write lock.
    writes = request.method == "POST" and shown.route != "login"
    with database.session(write=writes) as session:
        return page(pages.handle(session, shown))


def feed(database: Database, request: Request, rest: str) -> Answer:
    if request.method != "GET":
        return refusal(HTTPStatus.METHOD_NOT_ALLOWED, "feeds are read-only")
    with database.session() as session:
        subject = tokens.feed_subject(session, rest.removesuffix(links.FEED_SUFFIX))
        if subject is None or not rest.endswith(links.FEED_SUFFIX):
            return refusal(HTTPStatus.NOT_FOUND, "no feed at this address (revoked or mistyped)")
        etag = feeds.etag(session, subject)
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if parse_etags(request.header("HTTP_IF_NONE_MATCH")).contains_weak(etag.strip('"')):
            return Answer(HTTPStatus.NOT_MODIFIED, headers)
        headers["Content-Type"] = "text/calendar; charset=utf-8"
        return Answer(HTTPStatus.OK, headers, feeds.body(session, subject))


def messages(database: Database, request: Request, user: str) -> Answer:
    """The messenger notices of ``user`` (logged in by the caller)."""
    if request.route == MESSAGES and request.method == "GET":
        unread = request.query("unread")
        with database.session() as session:
            found = messenger.notices(
                session, Directory(session).user(user), unread_only=unread in ("1", "true")
            )
            return json_answer(HTTPStatus.OK, [messenger.as_json(n) for n in found])
    if request.route == f"{MESSAGES}/read" and request.method == "POST":
        if not _json_body(request):
            return refusal(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send the body as Content-Type: application/json"
            )
        try:
            sent = json.loads(request.body or b"{}")
            ids = None if sent.get("all") is True else [int(i) for i in sent["ids"]]
        except (ValueError, KeyError, TypeError, AttributeError):
            return refusal(
                HTTPStatus.BAD_REQUEST, 'send {"ids": [numbers]} or {"all": true} as JSON'
            )
        with database.session(write=True) as session:
            marked = messenger.mark_read(session, Directory(session).user(user), ids)
        return json_answer(HTTPStatus.OK, {"marked": marked})
    return refusal(HTTPStatus.METHOD_NOT_ALLOWED, f"{request.method} is not answered here")

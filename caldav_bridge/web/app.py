"""The bridge's own HTTP endpoints, beside CalDAV under ``/.bridge/`` (``links``).

- ``GET /.bridge/messages[?unread=1]``: the logged-in user's messenger notices (JSON);
- ``POST /.bridge/messages/read`` with ``{"ids": [...]}`` or ``{"all": true}``: mark them read;
- ``GET|POST /.bridge/interactions/<id>?token=…``: the RSVP page (``rsvp``), no login: the token;
- ``GET /.bridge/feeds/<token>.ics``: an ICS feed (``feeds``), no login: the token;
- ``/.bridge/crm/…``: the CRM's web pages (``crm_pages``), with their own login and cookie.
"""

from __future__ import annotations

import json
from email.message import Message
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from radicale import httputils, types

from caldav_bridge.db import Database
from caldav_bridge.domain import links, messenger, tokens
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.interactions import InteractionService
from caldav_bridge.web import feeds, rsvp
from caldav_bridge.web import pages as crm_pages
from caldav_bridge.web import session as web_session
from caldav_bridge.web.session import Page

PREFIX = links.PREFIX
MESSAGES = "messages"
CRM = "crm"
_FORM_LIMIT = 10_000
THROTTLE = "caldav_bridge.domain.throttle"  # where the environ holds the process's login throttle

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


def _json(status: HTTPStatus, value: Any) -> types.WSGIResponse:
    body = json.dumps(value, ensure_ascii=False).encode()
    return int(status), {"Content-Type": "application/json"}, body, None


def _refusal(status: HTTPStatus, reason: str) -> types.WSGIResponse:
    return _json(status, {"error": reason})


def _query(environ: types.WSGIEnviron, name: str) -> str:
    return parse_qs(str(environ.get("QUERY_STRING", ""))).get(name, [""])[0]


def _body(environ: types.WSGIEnviron, limit: int) -> bytes | None:
    """The request body, or None when it is larger than ``limit``."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if length > limit:
        return None
    return bytes(environ["wsgi.input"].read(length)) if length > 0 else b""


def handle(
    database: Database,
    public_url: str,
    method: str,
    path: str,
    user: str,
    environ: types.WSGIEnviron,
) -> types.WSGIResponse:
    """Answer a request under ``/.bridge/``."""
    route = path[len(PREFIX) :].rstrip("/")
    if method == "POST":
        foreign = _foreign_origin(environ, public_url)
        if foreign is not None:
            return _refusal(HTTPStatus.FORBIDDEN, foreign)
    if route.startswith(links.RSVP):
        return _rsvp(database, public_url, method, route[len(links.RSVP) :], environ)
    if route.startswith(links.FEEDS):
        return _feed(database, method, route[len(links.FEEDS) :], environ)
    if route == CRM or route.startswith(f"{CRM}/"):
        return _crm(database, public_url, method, route[len(CRM) :], environ)
    if route in (MESSAGES, f"{MESSAGES}/read"):
        if not user:
            return httputils.NOT_ALLOWED  # Radicale answers 401 with the challenge
        return _messages(database, method, route, user, environ)
    return _refusal(HTTPStatus.NOT_FOUND, f"nothing at {path}")


def _origin(address: str) -> str:
    parts = urlsplit(address)
    return f"{parts.scheme}://{parts.netloc}".lower()


def _foreign_origin(environ: types.WSGIEnviron, public_url: str) -> str | None:
    """Why a state-changing request comes from another site, or None: its Origin (else, from
    browsers that send no Origin, Sec-Fetch-Site, else the Referer) must be this server's,
    as configured (``public_url``) or as the browser addressed it (the Host header). Pages
    sent with Referrer-Policy no-referrer post with "Origin: null", where Sec-Fetch-Site
    speaks. A request with none of them is no browser's (curl, calendar clients)."""
    own = {_origin(public_url)}
    if environ.get("HTTP_HOST"):
        own.add(f"{environ.get('wsgi.url_scheme', 'http')}://{environ['HTTP_HOST']}".lower())
    origin = str(environ.get("HTTP_ORIGIN", "")).strip()
    site = str(environ.get("HTTP_SEC_FETCH_SITE", "")).strip().lower()
    referer = str(environ.get("HTTP_REFERER", "")).strip()
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


def _json_body(environ: types.WSGIEnviron) -> bool:
    """True when the request says its body is JSON (a form from another site cannot)."""
    parsed = Message()
    parsed["Content-Type"] = str(environ.get("CONTENT_TYPE", ""))
    return parsed.get_content_type() == "application/json"


def _page(page: Page) -> types.WSGIResponse:
    headers = {**_PAGE_HEADERS, **page.headers}
    if page.location is not None:
        return int(page.status), {**headers, "Location": page.location}, b"", None
    return int(page.status), headers, page.html.encode(), None


def _rsvp(
    database: Database, public_url: str, method: str, rest: str, environ: types.WSGIEnviron
) -> types.WSGIResponse:
    if not (rest.isascii() and rest.isdecimal() and len(rest) < 12):
        return _page(Page(HTTPStatus.NOT_FOUND, "no such page"))
    interaction_id = int(rest)
    if method == "GET":
        with database.session() as session:
            return _page(
                rsvp.show(
                    session,
                    interaction_id,
                    _query(environ, "token"),
                    answered=_query(environ, "answered") == "1",
                )
            )
    if method != "POST":
        return _refusal(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not answered here")
    body = _body(environ, _FORM_LIMIT)
    if body is None:
        return _refusal(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "the form is too large")
    try:
        form = web_session.form_fields(body.decode("utf-8", "replace"))
    except ValueError as exc:
        return _page(Page(HTTPStatus.BAD_REQUEST, str(exc)))
    token = form.get("token", "") or _query(environ, "token")
    base = f"{environ.get('SCRIPT_NAME', '')}{PREFIX}"
    with database.session(write=True) as session:
        service = InteractionService(session, public_url)
        return _page(rsvp.answer(service, interaction_id, token, form.get("answer", ""), base))


def _crm(
    database: Database, public_url: str, method: str, rest: str, environ: types.WSGIEnviron
) -> types.WSGIResponse:
    if method not in ("GET", "POST"):
        return _refusal(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not answered here")
    body = _body(environ, _FORM_LIMIT * 10) if method == "POST" else b""
    if body is None:
        return _refusal(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "the form is too large")
    try:
        request = web_session.parse(
            method,
            rest,
            str(environ.get("QUERY_STRING", "")),
            body,
            str(environ.get("HTTP_COOKIE", "")),
            public_url,
        )
    except ValueError as exc:
        return _page(Page(HTTPStatus.BAD_REQUEST, str(exc)))
    request.address = str(environ.get("REMOTE_ADDR", ""))
    request.throttle = environ.get(THROTTLE)
    # A login only reads: a flood of them never holds SQLite's write lock.
    writes = method == "POST" and request.route != "login"
    with database.session(write=writes) as session:
        return _page(crm_pages.handle(session, request))


def _feed(
    database: Database, method: str, rest: str, environ: types.WSGIEnviron
) -> types.WSGIResponse:
    if method != "GET":  # HEAD comes here as GET; Radicale drops the body
        return _refusal(HTTPStatus.METHOD_NOT_ALLOWED, "feeds are read-only")
    with database.session() as session:
        subject = tokens.feed_subject(session, rest.removesuffix(links.FEED_SUFFIX))
        if subject is None or not rest.endswith(links.FEED_SUFFIX):
            return _refusal(HTTPStatus.NOT_FOUND, "no feed at this address (revoked or mistyped)")
        etag = feeds.etag(session, subject)
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        wanted = str(environ.get("HTTP_IF_NONE_MATCH", ""))
        if etag in (t.strip() for t in wanted.split(",")) or wanted.strip() == "*":
            return int(HTTPStatus.NOT_MODIFIED), headers, b"", None
        headers["Content-Type"] = "text/calendar; charset=utf-8"
        return int(HTTPStatus.OK), headers, feeds.body(session, subject), None


def _messages(
    database: Database, method: str, route: str, user: str, environ: types.WSGIEnviron
) -> types.WSGIResponse:
    if route == MESSAGES and method == "GET":
        unread = _query(environ, "unread")
        with database.session() as session:
            found = messenger.notices(
                session, Directory(session).user(user), unread_only=unread in ("1", "true")
            )
            return _json(HTTPStatus.OK, [messenger.as_json(n) for n in found])
    if route == f"{MESSAGES}/read" and method == "POST":
        if not _json_body(environ):
            return _refusal(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send the body as Content-Type: application/json"
            )
        body = _body(environ, _FORM_LIMIT * 10)
        try:
            request = json.loads(body or b"{}")
            ids = None if request.get("all") is True else [int(i) for i in request["ids"]]
        except (ValueError, KeyError, TypeError, AttributeError):
            return _refusal(
                HTTPStatus.BAD_REQUEST, 'send {"ids": [numbers]} or {"all": true} as JSON'
            )
        with database.session(write=True) as session:
            marked = messenger.mark_read(session, Directory(session).user(user), ids)
        return _json(HTTPStatus.OK, {"marked": marked})
    return _refusal(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not answered here")

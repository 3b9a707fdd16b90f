"""The CalDAV application: one Radicale ``Application`` with the bridge's parts, one module
per HTTP method as Radicale's own (``options``, ``get``, ``propfind``, ``report``, ``put``,
``post``, ``mkcol``; RFC 6638's properties in ``scheduling``, the XML it writes in
``multistatus``, the URL layout in ``paths``, the headers it reads in ``headers``).

This module holds the class, the checks at the door, and the wrapper that speaks the bridge's
refusals in HTTP: Radicale answers a storage error with a bare 400 or 500, the domain's
refusals carry a reason a person understands (and, for CalDAV preconditions, the element
RFC 4791 and RFC 6638 name). Bodies are bounded before they are read (413), and XML bodies
that cannot be read safely are refused with the parser's reason.
"""

from __future__ import annotations

import io
import logging
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any, Protocol, runtime_checkable

import defusedxml.ElementTree as DefusedET
from defusedxml import DefusedXmlException
from radicale import types
from radicale.app import Application
from radicale.app import base as radicale_app_base
from radicale.storage import BaseStorage
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from caldav_bridge.caldav import headers as request_headers
from caldav_bridge.caldav import multistatus, paths
from caldav_bridge.caldav.base import PARSED_XML, BridgeStorage, Handler, buffered, text
from caldav_bridge.caldav.get import GetPart
from caldav_bridge.caldav.mkcol import MkcolPart
from caldav_bridge.caldav.options import OptionsPart
from caldav_bridge.caldav.post import PostPart
from caldav_bridge.caldav.propfind import PropfindPart
from caldav_bridge.caldav.put import PutPart
from caldav_bridge.caldav.reasons import line_ends_kept, reasons_given
from caldav_bridge.caldav.report import ReportPart
from caldav_bridge.db import run_again_if_raced
from caldav_bridge.domain import throttle
from caldav_bridge.domain.errors import (
    AlreadyExists,
    BridgeError,
    CalDavPrecondition,
    UidConflict,
    status_of,
)
from caldav_bridge.ical import timezones
from caldav_bridge.ical import vcards as contacts

logger = logging.getLogger("caldav_bridge")

# While the database cannot be reached: clients try again later, and the server recovers by
# itself (the connection pool checks each connection before use).
RETRY_AFTER_SECONDS = 10


def _unavailable(exc: OperationalError) -> types.WSGIResponse:
    logger.warning("database unavailable: %s", exc.orig)
    return (
        int(HTTPStatus.SERVICE_UNAVAILABLE),
        {"Content-Type": "text/plain", "Retry-After": str(RETRY_AFTER_SECONDS)},
        "the calendar database is unavailable; try again in a moment\n",
        None,
    )


# A request that lost a race with a concurrent one (both creating one UID, one calendar) is
# run again: it then sees the other's change, as if it had come a moment later.
RACE_ATTEMPTS = 3


def _refusal(environ: types.WSGIEnviron, path: str, refusal: BridgeError) -> types.WSGIResponse:
    logger.info("refused %s %r: %s", environ["REQUEST_METHOD"], path, refusal)
    status = status_of(refusal)
    if isinstance(refusal, CalDavPrecondition):
        body = multistatus.error(refusal.element, str(refusal))
        return int(status), {"Content-Type": multistatus.CONTENT_TYPE}, body, None
    return text(status, str(refusal))


def _refusals_answered(handler: Handler) -> Handler:
    """Wrap one of Radicale's request handlers so that domain refusals become 4xx answers,
    a request that lost a race to a concurrent one is run again, and an unreachable database
    is answered 503."""

    def answered(
        app: Application,
        environ: types.WSGIEnviron,
        base_prefix: str,
        path: str,
        user: str,
        user_groups: set[str],
        request_info: dict[str, Any],
    ) -> types.WSGIResponse:
        raw, environ = buffered(environ)

        def run() -> types.WSGIResponse:
            attempt = {**environ, "wsgi.input": io.BytesIO(raw)}
            return handler(app, attempt, base_prefix, path, user, user_groups, request_info)

        def run_again_if_made_meanwhile() -> types.WSGIResponse:
            try:
                return run()
            except (AlreadyExists, UidConflict):
                # Made by a concurrent request after this one looked (its If-None-Match, its
                # href): run once more, to be answered as if it had come a moment later.
                logger.info(
                    "%s %s met a concurrent creation: run again", environ["REQUEST_METHOD"], path
                )
                return run()

        try:
            answer = run_again_if_raced(run_again_if_made_meanwhile, RACE_ATTEMPTS)
        except BridgeError as refusal:
            return _refusal(environ, path, refusal)
        except OperationalError as exc:
            return _unavailable(exc)
        if answer is None:
            return text(
                HTTPStatus.CONFLICT,
                "the same thing was being changed by other requests at the same moment: try again",
            )
        return answer

    return answered


def _read_only_refused(handler: Handler) -> Handler:
    """Wrap a writing handler so that a write into what nobody may write (the address book of
    colleagues and rooms) is refused with the reason, rather than Radicale's bare 403."""

    def checked(
        app: Application,
        environ: types.WSGIEnviron,
        base_prefix: str,
        path: str,
        user: str,
        user_groups: set[str],
        request_info: dict[str, Any],
    ) -> types.WSGIResponse:
        # Without a user, Radicale turns its own refusal into 401: leave those to it. The
        # address book is the CRM's directory (the rights make it read-only, so that clients
        # show it so; Radicale's refusal says no more than 403).
        if user and paths.Place.of(path).in_directory:
            logger.info("refused %s %s: %s", environ["REQUEST_METHOD"], path, contacts.READ_ONLY)
            return text(HTTPStatus.FORBIDDEN, contacts.READ_ONLY)
        return handler(app, environ, base_prefix, path, user, user_groups, request_info)

    return checked


_XML_METHODS = {"PROPFIND", "REPORT", "PROPPATCH", "MKCALENDAR", "MKCOL"}
_MAX_XML_DEPTH = 64


def _checked_xml(raw: bytes) -> tuple[Any, str | None]:
    """The parsed XML request body, or why it is refused: not XML, a DTD or entities
    (expansion bombs, external files), or nesting deeper than any DAV request has."""
    try:
        root = DefusedET.fromstring(raw, forbid_dtd=True)
    except DefusedXmlException as exc:
        return None, f"DTDs and entities are not accepted ({type(exc).__name__})"
    except ET.ParseError as exc:
        return None, f"the body is not well-formed XML: {exc}"
    level = [root]
    for _ in range(_MAX_XML_DEPTH + 1):
        level = [child for element in level for child in element]
        if not level:
            return root, None
    return None, f"the XML is nested deeper than {_MAX_XML_DEPTH} levels"


_WARM_UP_REQUESTS = [
    ("PROPFIND", "1", '<propfind xmlns="DAV:"><prop><getetag/></prop></propfind>'),
    (
        "REPORT",
        "1",
        '<sync-collection xmlns="DAV:"><sync-token/><sync-level>1</sync-level>'
        "<prop><getetag/></prop></sync-collection>",
    ),
    (
        "PROPFIND",
        "0",
        '<propfind xmlns="DAV:" xmlns:CS="http://calendarserver.org/ns/"><prop><CS:getctag/>'
        "<sync-token/></prop></propfind>",
    ),
]

_COMPRESS_FROM = 1024  # bytes: smaller answers are sent as they are


def _refuse(
    start_response: types.WSGIStartResponse,
    status: str,
    reason: str,
    headers: tuple[tuple[str, str], ...] = (),
) -> list[bytes]:
    body = f"{reason}\n".encode()
    start_response(
        status,
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            *headers,
        ],
    )
    return [body]


def _any_name(self: BaseStorage, path: str, validation_type: str) -> bool:
    """In place of Radicale's check of a request's path, which refuses in every
    ``validate_path_value`` a name with a control character or any character of Unicode's
    category C (a line feed, the zero-width joiner of emoji sequences, a character newer than
    Python's Unicode tables), and ':' or ',' unless set to "none": all of them in names a
    client may give an item (RFC 3986 percent-encodes any byte). Names are text in the
    database; ``request_headers`` refuses at the door what is unsafe in them (NUL, '/',
    dot-segments, bytes that are not UTF-8, more than the columns keep)."""
    return "\x00" not in path


radicale_app_base._check_path_format = _any_name


@runtime_checkable
class _BridgeAuth(Protocol):
    """The auth plugin (``plugins.radicale_bridge_auth``) as the application uses it."""

    throttle: throttle.Throttle

    def warm_up(self) -> None: ...


class BridgeApplication(
    OptionsPart, GetPart, ReportPart, PutPart, PostPart, MkcolPart, Application
):
    """Radicale's application with the bridge's parts (their ``do_*`` wrapped below)."""

    def __init__(self, configuration: Any) -> None:
        super().__init__(configuration)
        self._body_limit: int = configuration.get("server", "max_content_length")
        try:
            self._warm_up()
        except SQLAlchemyError as exc:  # the first request will say what is wrong
            logger.warning("start-up warm-up skipped: %s", exc)

    def _warm_up(self) -> None:
        """Serve, once at start-up and for nobody, what a calendar client asks first (a
        listing, a sync, the CTag) of one user's interactions calendar: code paths, compiled
        statements and caches are ready before the first client waits for them."""
        if isinstance(self._auth, _BridgeAuth):
            self._auth.warm_up()
        login = self._storage.warm_up() if isinstance(self._storage, BridgeStorage) else None
        if not login:
            return
        calendar = f"/{login}/{paths.INTERACTIONS}/"
        for method, depth, body in _WARM_UP_REQUESTS:
            raw = body.encode()
            environ = {
                "REQUEST_METHOD": method,
                "HTTP_DEPTH": depth,
                "CONTENT_LENGTH": str(len(raw)),
                "wsgi.input": io.BytesIO(raw),
                "SCRIPT_NAME": "",
                "PATH_INFO": calendar,
            }
            handler = getattr(self, f"do_{method}")
            # What Radicale records of each request, which its conditional logging reads.
            info = {
                "method": method,
                "login": login,
                "path": environ["PATH_INFO"],
                "useragent": "",
                "host": "",
            }
            handler(environ, "", calendar, login, set(), info)

    def _handle_request(self, environ: types.WSGIEnviron) -> Any:
        """Radicale's, with the login check's database failures answered 503 too (the
        handlers answer their own)."""
        try:
            return super()._handle_request(environ)
        except OperationalError as exc:
            status, headers, reason, _ = _unavailable(exc)
            body = str(reason).encode()
            listed = [*dict(headers).items(), ("Content-Length", str(len(body)))]
            return f"{status} Service Unavailable", listed, [body]

    def _at_the_door(self, environ: types.WSGIEnviron) -> tuple[str, str, int] | None:
        """(status, reason, Retry-After) of a request refused before it is read: headers
        that cannot be read, or a login that failed too often of late (``throttle``)."""
        refused = request_headers.refusal(environ)
        if refused is not None:
            status = refused.status
            logger.info("refused %s: %s", environ.get("REQUEST_METHOD"), refused.reason)
            return f"{status.value} {status.phrase}", refused.reason, 0
        credentials = request_headers.basic_credentials(environ)
        limiter = self._auth.throttle if isinstance(self._auth, _BridgeAuth) else None
        if credentials is None or not credentials[0] or limiter is None:
            return None
        address = str(environ.get("REMOTE_ADDR", ""))
        wait = int(limiter.wait(credentials[0], address))
        if not wait:
            return None
        logger.warning("throttled login %r from %s for %d s", credentials[0], address, wait)
        return "429 Too Many Requests", throttle.reason(wait), wait

    def __call__(
        self, environ: types.WSGIEnviron, start_response: types.WSGIStartResponse
    ) -> Iterable[bytes]:
        door = self._at_the_door(environ)
        if door is not None:
            status, why, wait = door
            retry = (("Retry-After", str(wait)),) if wait else ()
            return _refuse(start_response, status, why, retry)
        environ = {
            **environ,
            "PATH_INFO": request_headers.path_text(environ),
        }
        environ, refused = self._read_body(environ)
        if refused is not None:
            return _refuse(start_response, *refused)
        timezones.forget()
        if isinstance(self._storage, BridgeStorage):  # else Radicale checks the conditions
            conditions = request_headers.conditions(environ)
            self._storage.begin_request(conditions)
            environ = conditions.for_radicale(environ)
        # Answers are compressed here, not by Radicale (HEAD: as GET's would be, uncounted).
        gzip = request_headers.accepts_gzip(environ)
        head = environ.get("REQUEST_METHOD") == "HEAD"
        environ = {**environ, "HTTP_ACCEPT_ENCODING": "gzip" if gzip and head else ""}
        if not gzip or head:
            return super().__call__(environ, start_response)
        return self._gzipped(environ, start_response)

    def _read_body(
        self, environ: types.WSGIEnviron
    ) -> tuple[types.WSGIEnviron, tuple[str, str] | None]:
        """The environ with the request's XML body parsed (``PARSED_XML``), or (status, reason)
        of a body refused: larger than the limit, chunked, or XML that cannot be read safely."""
        length = str(environ.get("CONTENT_LENGTH") or "0")
        if length.isdigit() and int(length) > self._body_limit:
            too_large = f"the request body is larger than {self._body_limit} bytes"
            return environ, ("413 Content Too Large", too_large)
        chunked = "chunked" in str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower()
        if chunked and not environ.get("CONTENT_LENGTH"):
            return environ, ("411 Length Required", "send the body with a Content-Length")
        if environ.get("REQUEST_METHOD") in _XML_METHODS and length.isdigit() and int(length):
            raw, environ = buffered(environ)
            root, reason = _checked_xml(raw)
            if reason is not None:
                return environ, ("400 Bad Request", reason)
            environ = {**environ, PARSED_XML: root}
        return environ, None

    def _gzipped(
        self, environ: types.WSGIEnviron, start_response: types.WSGIStartResponse
    ) -> Iterable[bytes]:
        """Radicale's answer, compressed here at zlib's fastest level (Radicale's own
        compression, at the default level, costs more than listing a large calendar)."""
        answered: list[Any] = []

        def keep(status: str, headers: list[tuple[str, str]], *_: Any) -> Any:
            answered[:] = [status, headers]
            return lambda data: None

        body = b"".join(super().__call__(environ, keep))
        status, headers = answered
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        if len(body) >= _COMPRESS_FROM:
            compressor = zlib.compressobj(1, wbits=16 + zlib.MAX_WBITS)
            body = compressor.compress(body) + compressor.flush()
            headers.append(("Content-Encoding", "gzip"))
        start_response(status, [*headers, ("Content-Length", str(len(body)))])
        return [body]

    do_GET = _refusals_answered(GetPart.do_GET)
    do_POST = _refusals_answered(PostPart.do_POST)
    do_HEAD = _refusals_answered(GetPart.do_HEAD)
    do_PROPFIND = _refusals_answered(PropfindPart.do_PROPFIND)
    do_REPORT = reasons_given(line_ends_kept(_refusals_answered(ReportPart.do_REPORT)))
    do_PUT = _read_only_refused(reasons_given(_refusals_answered(PutPart.do_PUT)))
    do_DELETE = _read_only_refused(reasons_given(_refusals_answered(Application.do_DELETE)))
    do_MKCOL = _read_only_refused(reasons_given(_refusals_answered(MkcolPart.do_MKCOL)))
    do_MOVE = _read_only_refused(_refusals_answered(Application.do_MOVE))
    do_MKCALENDAR = _read_only_refused(reasons_given(_refusals_answered(Application.do_MKCALENDAR)))
    do_PROPPATCH = _read_only_refused(reasons_given(_refusals_answered(Application.do_PROPPATCH)))

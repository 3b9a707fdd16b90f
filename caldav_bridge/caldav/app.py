"""The CalDAV application: Radicale's, with the bridge's refusals spoken in HTTP.

Radicale answers a storage error with a bare 400 or 500. The domain's refusals carry a reason a
person understands (and, for CalDAV preconditions, the element RFC 4791 and RFC 6638 name), so
the writing methods below turn them into a 4xx with that reason. Bodies are bounded before they
are read (413), and an iCalendar body that does not parse is refused with the parser's reason.
"""

from __future__ import annotations

import io
import logging
import posixpath
import re
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Callable, Iterable
from datetime import datetime
from email.utils import format_datetime
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import quote
from xml.sax.saxutils import escape

import defusedxml.ElementTree as DefusedET
from defusedxml import DefusedXmlException
from icalendar import Calendar, Component
from icalendar.parser import Contentline, Contentlines
from icalendar.prop import vText, vUnknown
from radicale import httputils, pathutils, types, xmlutils
from radicale import item as radicale_item
from radicale.app import Application
from radicale.app import base as radicale_app_base
from radicale.storage import BaseStorage
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from caldav_bridge.caldav import headers as request_headers
from caldav_bridge.caldav import principal_search
from caldav_bridge.caldav.scheduling import SchedulingApplication
from caldav_bridge.db import lost_a_race
from caldav_bridge.domain import recurrence, throttle, validation
from caldav_bridge.domain.errors import (
    AlreadyExists,
    BridgeError,
    CalDavPrecondition,
    InvalidInput,
    UidConflict,
    status_of,
)
from caldav_bridge.ical import timezones

logger = logging.getLogger("caldav_bridge")

Handler = Callable[..., types.WSGIResponse]


def _text(status: HTTPStatus, reason: str) -> types.WSGIResponse:
    # Radicale appends the charset to a text answer's Content-Type.
    return int(status), {"Content-Type": "text/plain"}, f"{reason}\n", None


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


# The namespace of the bridge's own XML: the reason of a refused precondition.
REASON_NS = "https://caldav-bridge.invalid/ns/"

# A request that lost a race with a concurrent one (both creating one UID, one calendar) is
# run again: it then sees the other's change, as if it had come a moment later.
RACE_ATTEMPTS = 3


def _refusal(
    app: Application, environ: types.WSGIEnviron, path: str, refusal: BridgeError, info: Any
) -> types.WSGIResponse:
    logger.info("refused %s %r: %s", environ["REQUEST_METHOD"], path, refusal)
    status = status_of(refusal)
    if isinstance(refusal, CalDavPrecondition):
        # The precondition for clients, and the reason for people (RFC 4918 section 16
        # lets DAV:error hold more elements; CalendarServer and SabreDAV do the same).
        error = xmlutils.webdav_error(refusal.element)
        ET.SubElement(error, f"{{{REASON_NS}}}reason").text = str(refusal)
        headers = {"Content-Type": "text/xml; charset=utf-8"}
        return int(status), headers, app._xml_response(error, info), None
    return _text(status, str(refusal))


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
        raw, environ = _buffered(environ)
        for tries in range(RACE_ATTEMPTS):
            attempt = {**environ, "wsgi.input": io.BytesIO(raw)}
            try:
                return handler(app, attempt, base_prefix, path, user, user_groups, request_info)
            except (AlreadyExists, UidConflict) as refusal:
                # Made by a concurrent request after this one looked (its If-None-Match, its
                # href): run once more, to be answered as if it had come a moment later.
                if tries:
                    return _refusal(app, environ, path, refusal, request_info)
                logger.info(
                    "%s %s met a concurrent creation: run again", attempt["REQUEST_METHOD"], path
                )
            except BridgeError as refusal:
                return _refusal(app, environ, path, refusal, request_info)
            except DBAPIError as exc:
                if not lost_a_race(exc):
                    if isinstance(exc, OperationalError):
                        return _unavailable(exc)
                    raise
                logger.info(
                    "%s %s met a concurrent change: run again", attempt["REQUEST_METHOD"], path
                )
        return _text(
            HTTPStatus.CONFLICT,
            "the same thing was being changed by other requests at the same moment: try again",
        )

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
        # Without a user, Radicale turns its own refusal into 401: leave those to it.
        storage_: Any = app._storage  # the bridge's (Radicale types it as any storage)
        reason = storage_.read_only_reason(path) if user else None
        if reason is not None:
            logger.info("refused %s %s: %s", environ["REQUEST_METHOD"], path, reason)
            return _text(HTTPStatus.FORBIDDEN, reason)
        return handler(app, environ, base_prefix, path, user, user_groups, request_info)

    return checked


# What a sync client asks of every item when it lists a calendar (RFC 4791 section 7.8.x,
# RFC 6578 clients before their first token): answered from the listing columns alone.
_DATED = "{DAV:}getlastmodified"
_LISTING_PROPS = {
    f"{{DAV:}}{name}" for name in ("getetag", "getcontenttype", "resourcetype", "getlastmodified")
}


Entry = tuple[str, str, str, str, datetime | None]


class Listable(Protocol):
    """A calendar or address book that can list its items' names, ETags and stamps without
    reading them."""

    path: str

    def entries(self, hrefs: list[str] | None = None, dated: bool = True) -> list[Entry]:
        """(href, ETag, object name, component, last modification when ``dated``) of each item
        (or of those of ``hrefs`` that exist)."""
        ...

    def sync(self, old_token: str = "") -> tuple[str, Iterable[str]]: ...

    def sync_page(self, old_token: str, limit: int) -> Any:
        """A page of at most ``limit`` changes: its ``token``, ``hrefs`` and whether it is
        ``truncated``."""
        ...


def _parse(raw: bytes) -> Any:
    try:
        return DefusedET.fromstring(raw) if raw.strip() else None
    except Exception:  # malformed or hostile XML: Radicale answers it
        return None


def _listing_props(prop: Any) -> list[str] | None:
    names = [child.tag for child in prop] if prop is not None else []
    if prop is None or not names or not set(names) <= _LISTING_PROPS:
        return None
    return names


def _listing_request(root: Any) -> list[str] | None:
    """The properties of a PROPFIND (parsed) that asks only for listing properties, else
    None."""
    if root is None or root.tag != "{DAV:}propfind" or len(root) != 1:
        return None
    return _listing_props(root.find("{DAV:}prop"))


def _sync_request(root: Any) -> tuple[str, list[str]] | None:
    """(old token, properties) of a sync-collection REPORT (parsed) that asks only for
    listing properties at sync-level 1, else None."""
    if root is None or root.tag != "{DAV:}sync-collection":
        return None
    if (root.findtext("{DAV:}sync-level") or "1").strip() != "1":
        return None
    names = _listing_props(root.find("{DAV:}prop"))
    return None if names is None else ((root.findtext("{DAV:}sync-token") or "").strip(), names)


# More than any calendar holds: a larger DAV:limit truncates nothing, and stays a number the
# databases compare.
_MOST_RESULTS = 1_000_000_000
_POSITIVE_INTEGER = re.compile(r"[0-9]+")


def _sync_limit(root: Any) -> int | None:
    """The DAV:limit of a sync-collection REPORT (parsed; RFC 6578 section 3.7), None for a
    REPORT without one. Its DAV:nresults is a positive integer (RFC 5323 section 5.17): any
    other is refused with the reason."""
    limit = root.find("{DAV:}limit") if root is not None else None
    if root is None or root.tag != "{DAV:}sync-collection" or limit is None:
        return None
    text = (limit.findtext("{DAV:}nresults") or "").strip().lstrip("0")
    if not _POSITIVE_INTEGER.fullmatch(text):
        raise InvalidInput(
            "DAV:limit holds DAV:nresults, the most changes to answer at once: a positive "
            "integer (RFC 6578 section 3.7, RFC 5323 section 5.17)"
        )
    return min(int(text), _MOST_RESULTS) if len(text) < 12 else _MOST_RESULTS


def _truncation(collection: str) -> str:
    """The response that says a sync answer holds only part of the changes, and that its
    token goes on from there (RFC 6578 section 3.6)."""
    return (
        f"<response><href>{collection}</href><status>HTTP/1.1 507 Insufficient Storage</status>"
        "<error><number-of-matches-within-limits /></error><responsedescription>"
        "more changes follow: ask again with this answer's sync-token</responsedescription>"
        "</response>"
    )


# urllib's quote() keeps only ASCII letters, digits and "_.~/-". It is slow, and most names
# need nothing, or only the "@" of a UID quoted: the names of a listing are checked at once.
_NEEDS_QUOTING = re.compile(r"[^A-Za-z0-9_.~/-]")
_SEPARATOR = "\x00"  # in no name that needs no quoting
_NEEDS_QUOTING_OR_SEPARATOR = re.compile(r"[^A-Za-z0-9_.~/\x00-]")


def _quoted(href: str) -> str:
    if not _NEEDS_QUOTING.search(href):
        return href
    if not _NEEDS_QUOTING.search(href.replace("@", "")):
        return href.replace("@", "%40")
    return quote(href)


def _quoted_all(hrefs: list[str]) -> list[str]:
    joined = _SEPARATOR.join(hrefs)
    if _NEEDS_QUOTING_OR_SEPARATOR.search(joined.replace("@", "")):
        return [_quoted(href) for href in hrefs]
    return joined.replace("@", "%40").split(_SEPARATOR) if "@" in joined else hrefs


_MARKUP = re.compile(r"[&<>]")


def _escaped_all(texts: list[str]) -> list[str]:
    return [escape(t) for t in texts] if _MARKUP.search("".join(texts)) else texts


def _content_types(entries: list[Entry]) -> list[str]:
    """Each item's Content-Type, by Radicale's rule (text/vcard for a vCard, text/calendar with
    the component for an iCalendar object), worked out once per kind of item."""
    kinds = {(entry[2], entry[3]): "" for entry in entries}
    for name, component in kinds:
        probe = radicale_item.Item(collection_path="", text="", name=name, component_name=component)
        kinds[name, component] = xmlutils.get_content_type(probe, "utf-8")
    return [kinds[entry[2], entry[3]] for entry in entries]


def _item_responses(prefix: str, entries: list[Entry], names: list[str]) -> list[str]:
    """The items' <response>s as text (``prefix`` already quoted): listing ten thousand
    items through ElementTree costs more than the database query."""
    hrefs = _quoted_all([e[0] for e in entries])
    etags = _escaped_all([e[1] for e in entries])
    wanted = set(names)
    eo, ec = ("<getetag>", "</getetag>") if "{DAV:}getetag" in wanted else ("", "")
    typed = "{DAV:}getcontenttype" in wanted
    types = _content_types(entries) if typed else [""] * len(entries)
    co, cc = ("<getcontenttype>", "</getcontenttype>") if typed else ("", "")
    rt = "<resourcetype />" if "{DAV:}resourcetype" in wanted else ""
    mo, mc = ("<getlastmodified>", "</getlastmodified>") if _DATED in wanted else ("", "")
    return [
        f"<response><href>{prefix}{href}</href><propstat><prop>{eo}{etag if eo else ''}{ec}"
        f"{co}{content_type}{cc}{rt}"
        f"{mo}{format_datetime(entry[4], usegmt=True) if mo and entry[4] else ''}{mc}"
        "</prop><status>HTTP/1.1 200 OK</status></propstat></response>"
        for href, etag, content_type, entry in zip(hrefs, etags, types, entries, strict=True)
    ]


_MAX_ATTENDEES = 500
_MAX_NESTING = 4  # VCALENDAR > VEVENT > VALARM, VTIMEZONE > STANDARD: never deeper


def _nesting(component: Any, depth: int = 1) -> int:
    if depth > _MAX_NESTING:
        return depth
    return max([depth, *(_nesting(sub, depth + 1) for sub in component.subcomponents)])


def _check_rules(calendar: Calendar, one_object: bool = True) -> None:
    """Refuse, with a reason, what Radicale would refuse without one (or not at all): values
    that are not what they claim (February 30), components without a UID or with several,
    an end before the start, nesting no calendar has, an invalid or runaway RRULE, too many
    attendees, and occurrences (RECURRENCE-ID) sent without their series. A whole calendar
    (a PUT on a collection: ``one_object`` False) may hold many UIDs."""
    if _nesting(calendar) > _MAX_NESTING:
        raise InvalidInput(f"components are nested more than {_MAX_NESTING} deep")
    uids = set()
    for component in calendar.walk():
        for name, error in component.errors:
            raise InvalidInput(f"{component.name} {name}: {error}")
        if component.name in ("VEVENT", "VTODO", "VJOURNAL"):
            if "UID" not in component:
                raise InvalidInput(f"a {component.name} has no UID")
            uids.add(validation.uid(str(component["UID"]), f"the UID of a {component.name}"))
            attendees = component.get("ATTENDEE", [])
            attendees = attendees if isinstance(attendees, list) else [attendees]
            if len(attendees) > _MAX_ATTENDEES:
                raise InvalidInput(f"an event has at most {_MAX_ATTENDEES} attendees")
            if any(not str(a).strip() for a in [*attendees, component.get("ORGANIZER", "x")]):
                raise InvalidInput("an ATTENDEE or the ORGANIZER has no address")
        if component.name == "VEVENT" and "DTSTART" in component and "DTEND" in component:
            start, end = component.decoded("DTSTART"), component.decoded("DTEND")
            floating = {getattr(m, "tzinfo", None) is None for m in (start, end)}
            if type(start) is type(end) and len(floating) == 1 and end < start:
                raise InvalidInput("the event ends (DTEND) before it starts (DTSTART)")
    if one_object and len(uids) > 1:
        raise InvalidInput("one calendar object holds one UID (RFC 4791 4.1): send one each")
    events = calendar.walk("VEVENT")
    if events and all("RECURRENCE-ID" in e for e in events):
        raise InvalidInput(
            "the object holds single occurrences (RECURRENCE-ID) without their series: "
            "send the whole recurring event"
        )
    for component in calendar.walk():
        found = component.get("RRULE")
        for rule in found if isinstance(found, list) else [found] if found is not None else []:
            value = rule.to_ical()
            text = value.decode() if isinstance(value, bytes) else value
            stored = recurrence.checked_rule(text, "UTC")
            if "DTSTART" in component:  # before Radicale expands it, in any calendar
                recurrence.check_object_rule(stored, component.decoded("DTSTART"))


# TEXT properties whose commas separate values (RFC 5545 3.8.1.10, 3.8.8.3; CATEGORIES is
# typed as a list by icalendar already): their commas are left as they are.
_TEXT_LISTS = frozenset({"RESOURCES", "REQUEST-STATUS"})
_TEXT_TYPES = (vText, vUnknown)  # an X- or unknown property's value is TEXT (RFC 5545 3.8.8)


def _texts_escaped(text: str) -> str:
    """``text`` with each TEXT value escaped as RFC 5545 (3.3.11) writes it.

    A comma left unescaped in a single TEXT value (``SUMMARY:Dentist, then lunch``) breaks
    the RFC, but icalendar and calendar clients read the value whole; vobject, which Radicale
    parses a PUT with, reads it as a list and keeps its first item (``Dentist``), in every
    property it does not know as a list (UID and X- properties included). Escaped here, before
    Radicale reads the body, every reader sees the whole value, in the interactions calendar
    and in one's own calendars. Lines without a comma, and values of other types, are left
    as they came."""
    if "," not in text:
        return text
    lines = Contentlines.from_ical(text)  # type: ignore[no-untyped-call]
    changed = False
    for index, line in enumerate(lines):
        if "," not in line:
            continue
        try:
            name, params, raw = line.raw_parts()
            value = line.parts()[2]
        except ValueError:  # not a content line: Radicale says so
            continue
        kind = Component.types_factory.for_property(name, params.get("VALUE"))
        if name.upper() in _TEXT_LISTS or kind not in _TEXT_TYPES:
            continue
        if vText(value).to_ical().decode() != raw:
            lines[index] = Contentline.from_parts(name, params, vText(value), sorted=False)
            changed = True
    return str(lines.to_ical().decode()) if changed else text


def _buffered(environ: types.WSGIEnviron) -> tuple[bytes, types.WSGIEnviron]:
    """The request body, and an environ from which Radicale can still read it."""
    raw: bytes = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    return raw, {**environ, "wsgi.input": io.BytesIO(raw)}


_XML_METHODS = {"PROPFIND", "REPORT", "PROPPATCH", "MKCALENDAR", "MKCOL"}
_MAX_XML_DEPTH = 64


# Where __call__ leaves the request body it parsed, for the handlers.
_PARSED_XML = "caldav_bridge.xml"


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


def _request_xml(environ: types.WSGIEnviron, raw: bytes) -> Any:
    """The request's XML body, as __call__ parsed it once (None when there is none)."""
    return environ.get(_PARSED_XML) if _PARSED_XML in environ else _parse(raw)


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


class BridgeApplication(SchedulingApplication):
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
        if hasattr(self._auth, "warm_up"):
            self._auth.warm_up()
        login = self._storage.warm_up() if hasattr(self._storage, "warm_up") else None
        if not login:
            return
        for method, depth, body in _WARM_UP_REQUESTS:
            raw = body.encode()
            environ = {
                "REQUEST_METHOD": method,
                "HTTP_DEPTH": depth,
                "CONTENT_LENGTH": str(len(raw)),
                "wsgi.input": io.BytesIO(raw),
                "SCRIPT_NAME": "",
                "PATH_INFO": f"/{login}/interactions/",
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
            handler(environ, "", f"/{login}/interactions/", login, set(), info)

    def _handle_request(self, environ: types.WSGIEnviron) -> Any:
        """Radicale's, with the login check's database failures answered 503 too (the
        handlers answer their own)."""
        try:
            return super()._handle_request(environ)
        except OperationalError as exc:
            status, headers, text, _ = _unavailable(exc)
            body = str(text).encode()
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
        limiter = getattr(self._auth, "throttle", None)
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
        length = str(environ.get("CONTENT_LENGTH") or "0")
        if length.isdigit() and int(length) > self._body_limit:
            return _refuse(
                start_response,
                "413 Content Too Large",
                f"the request body is larger than {self._body_limit} bytes",
            )
        chunked = "chunked" in str(environ.get("HTTP_TRANSFER_ENCODING", "")).lower()
        if chunked and not environ.get("CONTENT_LENGTH"):
            return _refuse(
                start_response, "411 Length Required", "send the body with a Content-Length"
            )
        if environ.get("REQUEST_METHOD") in _XML_METHODS and length.isdigit() and int(length):
            raw, environ = _buffered(environ)
            root, reason = _checked_xml(raw)
            if reason is not None:
                return _refuse(start_response, "400 Bad Request", reason)
            environ = {**environ, _PARSED_XML: root}
        timezones.forget()
        if hasattr(self._storage, "begin_request"):
            self._storage.begin_request(
                environ.get("HTTP_IF_MATCH"),
                environ.get("HTTP_IF_NONE_MATCH"),
                environ.get("HTTP_IF_SCHEDULE_TAG_MATCH"),
            )
        accepted = str(environ.get("HTTP_ACCEPT_ENCODING", ""))
        if "gzip" not in accepted or environ.get("REQUEST_METHOD") == "HEAD":
            return super().__call__(environ, start_response)
        return self._gzipped({**environ, "HTTP_ACCEPT_ENCODING": ""}, start_response)

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

    @_read_only_refused
    @_refusals_answered
    def do_PUT(
        self,
        environ: types.WSGIEnviron,
        base_prefix: str,
        path: str,
        user: str,
        user_groups: set[str],
        request_info: dict[str, Any],
    ) -> types.WSGIResponse:
        raw, environ = _buffered(environ)
        if len(raw) > self._max_resource_size:
            return _text(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"a calendar object is at most {self._max_resource_size} bytes",
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return _text(HTTPStatus.BAD_REQUEST, "the body is not valid UTF-8")
        if text.lstrip().upper().startswith("BEGIN:VCALENDAR"):
            try:
                _check_rules(Calendar.from_ical(text), one_object=not path.endswith("/"))
            except InvalidInput as exc:  # a TimezoneLimit is a ValueError too
                return _text(HTTPStatus.BAD_REQUEST, str(exc))
            except ValueError as exc:
                return _text(HTTPStatus.BAD_REQUEST, f"malformed iCalendar: {exc}")
            escaped = _texts_escaped(text).encode()
            if escaped != raw:
                environ = {
                    **environ,
                    "CONTENT_LENGTH": str(len(escaped)),
                    "wsgi.input": io.BytesIO(escaped),
                }
        answer = _put(self, environ, base_prefix, path, user, user_groups, request_info)
        answer = self._with_put_reason(answer, path, text)
        answer = self.with_schedule_tag(answer, path, written=True)
        return self.with_representation(answer, environ, path)

    def _with_put_reason(
        self, answer: types.WSGIResponse, path: str, text: str
    ) -> types.WSGIResponse:
        """Radicale's bare 400 for an object it refused (a vCard without UID, one that does not
        parse, a vCard in a calendar or an event in an address book), with its reason: Radicale
        logs it and answers "Bad Request". Its own checks give the reason, run again here only
        for a refusal."""
        if answer[0] != HTTPStatus.BAD_REQUEST or answer[2] != httputils.BAD_REQUEST[2]:
            return answer
        whole = path.endswith("/")
        folder = pathutils.unstrip_path(posixpath.dirname(pathutils.strip_path(path)), True)
        parent = None if whole else next(iter(self._storage.discover(folder)), None)
        try:
            objects = radicale_item.read_components(text)
            tag = getattr(parent, "tag", "") or radicale_item.predict_tag_of_whole_collection(
                objects
            )
            radicale_item.check_and_sanitize_items(objects, 0, is_collection=whole, tag=tag or "")
        except Exception as exc:  # whatever Radicale's parser and checks raise
            return _text(HTTPStatus.BAD_REQUEST, f"the object was refused: {exc}")
        return answer

    @_refusals_answered
    def do_GET(
        self,
        environ: types.WSGIEnviron,
        base_prefix: str,
        path: str,
        user: str,
        user_groups: set[str],
        request_info: dict[str, Any],
    ) -> types.WSGIResponse:
        answer = super().do_GET(environ, base_prefix, path, user, user_groups, request_info)
        return self.with_schedule_tag(answer, path)

    @_refusals_answered
    def do_HEAD(
        self,
        environ: types.WSGIEnviron,
        base_prefix: str,
        path: str,
        user: str,
        user_groups: set[str],
        request_info: dict[str, Any],
    ) -> types.WSGIResponse:
        answer = super().do_HEAD(environ, base_prefix, path, user, user_groups, request_info)
        return self.with_schedule_tag(answer, path)

    @_refusals_answered
    def do_PROPFIND(
        self,
        environ: types.WSGIEnviron,
        base_prefix: str,
        path: str,
        user: str,
        user_groups: set[str],
        request_info: dict[str, Any],
    ) -> types.WSGIResponse:
        raw, environ = _buffered(environ)
        root = _request_xml(environ, raw)
        if root is not None and (root.tag != "{DAV:}propfind" or len(root) == 0):
            return _text(
                HTTPStatus.BAD_REQUEST,
                "a PROPFIND body is a DAV:propfind naming prop, propname or allprop "
                "(RFC 4918 section 14.20), or no body at all",
            )
        free_busy_only = self._free_busy_only(path, user, user_groups)
        if free_busy_only == "calendar":
            return _text(
                HTTPStatus.FORBIDDEN,
                "another user's calendars are free-busy only: ask for free-busy by scheduling "
                "(a POST to your outbox)",
            )
        if free_busy_only == "home":  # their principal, not the names of their calendars
            environ = {**environ, "HTTP_DEPTH": "0"}
        answer = self._propfind(
            environ, raw, root, base_prefix, path, user, user_groups, request_info
        )
        if root is not None and root.find("{DAV:}propname") is not None:
            return answer  # names only (RFC 4918 section 9.1)
        answer = self.with_schedule_tag_props(answer, root, base_prefix)
        return self.with_scheduling_props(answer, base_prefix, path)

    def _free_busy_only(self, path: str, user: str, user_groups: set[str]) -> str:
        """ "calendar" for another user's calendar, "home" for their home, else "": Radicale
        would show the names, descriptions and change tags of calendars a user may see only
        the free-busy of."""
        parts = [part for part in path.split("/") if part]
        if not user or not parts or parts[0] == user:
            return ""
        child = f"/{parts[0]}/{parts[1] if len(parts) > 1 else 'calendar'}/"
        if self._rights.authorization(user, user_groups, child) != "f":
            return ""
        return "calendar" if len(parts) > 1 else "home"

    def _propfind(
        self,
        environ: types.WSGIEnviron,
        raw: bytes,
        root: Any,
        base_prefix: str,
        path: str,
        user: str,
        user_groups: set[str],
        request_info: dict[str, Any],
    ) -> types.WSGIResponse:
        """Radicale's PROPFIND, with a fast path for the request every sync client repeats:
        Depth 1 on a calendar for ETags and content types. Radicale answers for the calendar
        itself (Depth 0, rights included); the items are listed from the index columns."""
        if environ.get("HTTP_DEPTH") != "1" or not user:
            return super().do_PROPFIND(environ, base_prefix, path, user, user_groups, request_info)
        names = _listing_request(root)
        listable = self._listable(path, user, user_groups) if names else None
        if names is None or listable is None:
            return super().do_PROPFIND(environ, base_prefix, path, user, user_groups, request_info)
        status, headers, answer, request = super().do_PROPFIND(
            {**environ, "HTTP_DEPTH": "0", "wsgi.input": io.BytesIO(raw)},
            base_prefix,
            path,
            user,
            user_groups,
            request_info,
        )
        closing = b"</multistatus>"
        if status != 207 or not isinstance(answer, bytes) or not answer.endswith(closing):
            return status, headers, answer, request
        prefix = quote(f"{base_prefix}/{listable.path}/")
        entries = listable.entries(dated=_DATED in names)
        items = "".join(_item_responses(prefix, entries, names))
        return status, headers, answer[: -len(closing)] + items.encode() + closing, request

    @_refusals_answered
    def do_REPORT(
        self,
        environ: types.WSGIEnviron,
        base_prefix: str,
        path: str,
        user: str,
        user_groups: set[str],
        request_info: dict[str, Any],
    ) -> types.WSGIResponse:
        """Radicale's REPORT, with the same fast path for sync-collection (RFC 6578) when only
        listing properties are asked: names and ETags of what changed, 404 for what left."""
        raw, environ = _buffered(environ)
        root = _request_xml(environ, raw) if user else None
        search = principal_search.parse(root)
        if search is not None:
            return self.principal_search_report(
                search, environ, base_prefix, path, user, user_groups, request_info
            )
        if (
            root is not None
            and root.tag == f"{{{principal_search.D}}}principal-search-property-set"
        ):
            return self.search_property_set_report()
        free_busy = self.free_busy_query_report(root, path, user, user_groups)
        if free_busy is not None:
            return free_busy
        limit = _sync_limit(root)
        request = _sync_request(root)
        listable = self._listable(path, user, user_groups) if request else None
        if request is None or listable is None:
            return self._radicale_report(
                environ, base_prefix, path, user, user_groups, request_info, root, limit
            )
        old_token, names = request
        try:
            if limit is None:
                token, hrefs = listable.sync(old_token)
                changed, truncated = (list(hrefs) if old_token else None), False
            else:
                page = listable.sync_page(old_token, limit)
                token, changed, truncated = page.token, page.hrefs, page.truncated
        except ValueError:  # Radicale answers with its valid-sync-token error
            return super().do_REPORT(environ, base_prefix, path, user, user_groups, request_info)
        entries = listable.entries(changed, dated=_DATED in names)
        prefix = quote(f"{base_prefix}/{listable.path}/")
        parts = [f"<sync-token>{escape(token)}</sync-token>"]
        parts += _item_responses(prefix, entries, names)
        present = {e[0] for e in entries}
        parts += [
            f"<response><href>{prefix}{_quoted(href)}</href>"
            "<status>HTTP/1.1 404 Not Found</status></response>"
            for href in changed or ()
            if href not in present
        ]
        parts += [_truncation(prefix)] if truncated else []
        body = (
            "<?xml version='1.0' encoding='utf-8'?>\n"
            f'<multistatus xmlns="DAV:">{"".join(parts)}</multistatus>'
        ).encode()
        return 207, {"Content-Type": "text/xml; charset=utf-8"}, body, None

    def _radicale_report(
        self,
        environ: types.WSGIEnviron,
        base_prefix: str,
        path: str,
        user: str,
        user_groups: set[str],
        request_info: dict[str, Any],
        root: Any,
        limit: int | None,
    ) -> types.WSGIResponse:
        """Radicale's REPORT; for a sync-collection with DAV:limit, the calendar answers one
        page, and the answer says so when more follow."""
        paging = self._bridge_storage.page_sync(limit) if limit is not None else None
        answer = super().do_REPORT(environ, base_prefix, path, user, user_groups, request_info)
        status, headers, body, xml = self.with_schedule_tag_props(answer, root, base_prefix)
        if paging is None or not paging.truncated or not isinstance(body, bytes):
            return status, headers, body, xml
        # A truncated page was answered: a multistatus, to end with one more response (in
        # the DAV: namespace, whatever prefix the writer gave it).
        root = DefusedET.fromstring(body)
        collection = quote(f"{base_prefix}/{pathutils.strip_path(path)}/")
        root.append(DefusedET.fromstring(f'<r xmlns="DAV:">{_truncation(collection)}</r>')[0])
        return status, headers, ET.tostring(root, encoding="utf-8", xml_declaration=True), xml

    def _listable(self, path: str, user: str, user_groups: set[str]) -> Listable | None:
        """The calendar at ``path`` if ``user`` may read its items and it can list itself."""
        if "r" not in self._rights.authorization(user, user_groups, path):
            return None
        collection = next(iter(self._storage.discover(path)), None)
        return collection if hasattr(collection, "entries") else None  # type: ignore[return-value]

    @_read_only_refused
    @_refusals_answered
    def do_DELETE(
        self,
        environ: types.WSGIEnviron,
        base_prefix: str,
        path: str,
        user: str,
        user_groups: set[str],
        request_info: dict[str, Any],
    ) -> types.WSGIResponse:
        return _delete(self, environ, base_prefix, path, user, user_groups, request_info)

    @_refusals_answered
    def do_POST(
        self,
        environ: types.WSGIEnviron,
        base_prefix: str,
        path: str,
        user: str,
        user_groups: set[str],
        request_info: dict[str, Any],
    ) -> types.WSGIResponse:
        return _post(self, environ, base_prefix, path, user, user_groups, request_info)

    @_read_only_refused
    @_refusals_answered
    def do_MKCOL(
        self,
        environ: types.WSGIEnviron,
        base_prefix: str,
        path: str,
        user: str,
        user_groups: set[str],
        request_info: dict[str, Any],
    ) -> types.WSGIResponse:
        """Radicale's MKCOL (an address book, a calendar or a folder, RFC 5689), whose 405
        for a name already taken says so."""
        answer = Application.do_MKCOL(
            self, environ, base_prefix, path, user, user_groups, request_info
        )
        if answer[0] == HTTPStatus.METHOD_NOT_ALLOWED:
            return _text(
                HTTPStatus.METHOD_NOT_ALLOWED,
                f"{path} exists already (MKCOL makes a new collection only, RFC 4918 9.3.1): "
                "choose another name",
            )
        return answer

    do_MOVE = _read_only_refused(_refusals_answered(Application.do_MOVE))
    do_MKCALENDAR = _read_only_refused(_refusals_answered(Application.do_MKCALENDAR))
    do_PROPPATCH = _read_only_refused(_refusals_answered(Application.do_PROPPATCH))


_put = _refusals_answered(Application.do_PUT)
_delete = _refusals_answered(Application.do_DELETE)
_post = _refusals_answered(SchedulingApplication.do_POST)

"""The CalDAV application: Radicale's, with the bridge's refusals spoken in HTTP.

Radicale answers a storage error with a bare 400 or 500. The domain's refusals carry a reason a
person understands (and, for CalDAV preconditions, the element RFC 4791 and RFC 6638 name), so
the writing methods below turn them into a 4xx with that reason. Bodies are bounded before they
are read (413), and an iCalendar body that does not parse is refused with the parser's reason.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Iterable
from datetime import datetime
from email.utils import format_datetime
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import quote
from xml.sax.saxutils import escape

import defusedxml.ElementTree as DefusedET
from icalendar import Calendar
from radicale import types
from radicale.app import Application
from sqlalchemy.exc import SQLAlchemyError

from caldav_bridge.errors import (
    AlreadyExists,
    BookingConflict,
    BridgeError,
    CalDavPrecondition,
    InteractionCancelled,
    InvalidInput,
    NotFound,
)

logger = logging.getLogger("caldav_bridge")

Handler = Callable[..., types.WSGIResponse]

_STATUS: list[tuple[type[BridgeError], HTTPStatus]] = [
    (InvalidInput, HTTPStatus.BAD_REQUEST),
    (NotFound, HTTPStatus.NOT_FOUND),
    (AlreadyExists, HTTPStatus.CONFLICT),
    (BookingConflict, HTTPStatus.CONFLICT),
    (InteractionCancelled, HTTPStatus.CONFLICT),
]


def _text(status: HTTPStatus, reason: str) -> types.WSGIResponse:
    # Radicale appends the charset to a text answer's Content-Type.
    return int(status), {"Content-Type": "text/plain"}, f"{reason}\n", None


def _refusals_answered(handler: Handler) -> Handler:
    """Wrap one of Radicale's request handlers so that domain refusals become 4xx answers."""

    def answered(
        app: Application,
        environ: types.WSGIEnviron,
        base_prefix: str,
        path: str,
        user: str,
        user_groups: set[str],
        request_info: dict[str, Any],
    ) -> types.WSGIResponse:
        try:
            return handler(app, environ, base_prefix, path, user, user_groups, request_info)
        except CalDavPrecondition as refusal:
            logger.info("refused %s %s: %s", environ["REQUEST_METHOD"], path, refusal)
            return app._webdav_error_response(
                int(HTTPStatus.FORBIDDEN), refusal.element, request_info
            )
        except BridgeError as refusal:
            logger.info("refused %s %s: %s", environ["REQUEST_METHOD"], path, refusal)
            status = next(
                (s for kind, s in _STATUS if isinstance(refusal, kind)), HTTPStatus.FORBIDDEN
            )
            return _text(status, str(refusal))

    return answered


# What a sync client asks of every item when it lists a calendar (RFC 4791 section 7.8.x,
# RFC 6578 clients before their first token): answered from the listing columns alone.
_DATED = "{DAV:}getlastmodified"
_LISTING_PROPS = {
    f"{{DAV:}}{name}" for name in ("getetag", "getcontenttype", "resourcetype", "getlastmodified")
}


Entry = tuple[str, str, str, datetime | None]


class Listable(Protocol):
    """A calendar that can list its items' names, ETags and stamps without reading them."""

    path: str

    def entries(self, hrefs: list[str] | None = None, dated: bool = True) -> list[Entry]:
        """(href, ETag, component, last modification when ``dated``) of each item (or of
        those of ``hrefs`` that exist)."""
        ...

    def sync(self, old_token: str = "") -> tuple[str, Iterable[str]]: ...


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


def _listing_request(raw: bytes) -> list[str] | None:
    """The properties of a PROPFIND that asks only for listing properties, else None."""
    root = _parse(raw)
    if root is None or root.tag != "{DAV:}propfind" or len(root) != 1:
        return None
    return _listing_props(root.find("{DAV:}prop"))


def _sync_request(raw: bytes) -> tuple[str, list[str]] | None:
    """(old token, properties) of a sync-collection REPORT that asks only for listing
    properties at sync-level 1, else None."""
    root = _parse(raw)
    if root is None or root.tag != "{DAV:}sync-collection":
        return None
    if (root.findtext("{DAV:}sync-level") or "1").strip() != "1" or (
        root.find("{DAV:}limit") is not None
    ):
        return None
    names = _listing_props(root.find("{DAV:}prop"))
    return None if names is None else ((root.findtext("{DAV:}sync-token") or "").strip(), names)


# urllib's quote() keeps only ASCII letters, digits and "_.~/-". It is slow; most names need
# nothing, or only the "@" of a UID quoted, so those two cases go first.
_NEEDS_QUOTING = re.compile(r"[^A-Za-z0-9_.~/-]")


def _quoted(href: str) -> str:
    if not _NEEDS_QUOTING.search(href):
        return href
    if not _NEEDS_QUOTING.search(href.replace("@", "")):
        return href.replace("@", "%40")
    return quote(href)


_PLAIN_TEXT = re.compile(r"[^&<>]*")


def _item_template(names: list[str]) -> str:
    """The <response> of one item for the asked properties, with {href}, {etag},
    {component} and {modified} left to fill: built once per request."""
    props = {
        "{DAV:}getetag": "<getetag>{etag}</getetag>",
        "{DAV:}getcontenttype": (
            "<getcontenttype>text/calendar;charset=utf-8;component={component}</getcontenttype>"
        ),
        "{DAV:}resourcetype": "<resourcetype />",
        "{DAV:}getlastmodified": "<getlastmodified>{modified}</getlastmodified>",
    }
    return (
        "<response><href>{href}</href><propstat><prop>"
        + "".join(props[name] for name in names)
        + "</prop><status>HTTP/1.1 200 OK</status></propstat></response>"
    )


def _item_responses(prefix: str, entries: list[Entry], names: list[str]) -> list[str]:
    """The items' <response>s as text (``prefix`` already quoted): listing ten thousand
    items through ElementTree costs more than the database query."""
    template = _item_template(names)
    return [
        template.format(
            href=prefix + _quoted(href),
            etag=etag if _PLAIN_TEXT.fullmatch(etag) else escape(etag),
            component=component,
            modified=format_datetime(modified, usegmt=True) if modified else "",
        )
        for href, etag, component, modified in entries
    ]


def _buffered(environ: types.WSGIEnviron) -> tuple[bytes, types.WSGIEnviron]:
    """The request body, and an environ from which Radicale can still read it."""
    raw: bytes = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    return raw, {**environ, "wsgi.input": io.BytesIO(raw)}


class BridgeApplication(Application):
    def __init__(self, configuration: Any) -> None:
        super().__init__(configuration)
        self._body_limit: int = configuration.get("server", "max_content_length")
        try:
            for plugin in (self._auth, self._storage):
                if hasattr(plugin, "warm_up"):
                    plugin.warm_up()
        except SQLAlchemyError as exc:  # the first request will say what is wrong
            logger.warning("start-up warm-up skipped: %s", exc)

    def __call__(
        self, environ: types.WSGIEnviron, start_response: types.WSGIStartResponse
    ) -> Iterable[bytes]:
        length = str(environ.get("CONTENT_LENGTH") or "0")
        if length.isdigit() and int(length) > self._body_limit:
            body = f"the request body is larger than {self._body_limit} bytes\n".encode()
            start_response(
                "413 Content Too Large",
                [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
            )
            return [body]
        if hasattr(self._storage, "begin_request"):
            self._storage.begin_request()
        return super().__call__(environ, start_response)

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
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return _text(HTTPStatus.BAD_REQUEST, "the body is not valid UTF-8")
        if text.lstrip().upper().startswith("BEGIN:VCALENDAR"):
            try:
                Calendar.from_ical(text)
            except ValueError as exc:
                return _text(HTTPStatus.BAD_REQUEST, f"malformed iCalendar: {exc}")
        return _put(self, environ, base_prefix, path, user, user_groups, request_info)

    def do_PROPFIND(
        self,
        environ: types.WSGIEnviron,
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
        raw, environ = _buffered(environ)
        names = _listing_request(raw)
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
        request = _sync_request(raw) if user else None
        listable = self._listable(path, user, user_groups) if request else None
        if request is None or listable is None:
            return super().do_REPORT(environ, base_prefix, path, user, user_groups, request_info)
        old_token, names = request
        try:
            token, hrefs = listable.sync(old_token)
        except ValueError:  # Radicale answers with its valid-sync-token error
            return super().do_REPORT(environ, base_prefix, path, user, user_groups, request_info)
        changed = list(hrefs) if old_token else None
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
        body = (
            "<?xml version='1.0' encoding='utf-8'?>\n"
            f'<multistatus xmlns="DAV:">{"".join(parts)}</multistatus>'
        ).encode()
        return 207, {"Content-Type": "text/xml; charset=utf-8"}, body, None

    def _listable(self, path: str, user: str, user_groups: set[str]) -> Listable | None:
        """The calendar at ``path`` if ``user`` may read its items and it can list itself."""
        if "r" not in self._rights.authorization(user, user_groups, path):
            return None
        collection = next(iter(self._storage.discover(path)), None)
        return collection if hasattr(collection, "entries") else None  # type: ignore[return-value]

    do_DELETE = _refusals_answered(Application.do_DELETE)
    do_MOVE = _refusals_answered(Application.do_MOVE)
    do_MKCALENDAR = _refusals_answered(Application.do_MKCALENDAR)
    do_MKCOL = _refusals_answered(Application.do_MKCOL)
    do_PROPPATCH = _refusals_answered(Application.do_PROPPATCH)


_put = _refusals_answered(Application.do_PUT)

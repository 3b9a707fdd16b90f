"""The CalDAV application: Radicale's, with the bridge's refusals spoken in HTTP.

Radicale answers a storage error with a bare 400 or 500. The domain's refusals carry a reason a
person understands (and, for CalDAV preconditions, the element RFC 4791 and RFC 6638 name), so
the writing methods below turn them into a 4xx with that reason. Bodies are bounded before they
are read (413), and an iCalendar body that does not parse is refused with the parser's reason.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

from icalendar import Calendar
from radicale import types
from radicale.app import Application

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


class BridgeApplication(Application):
    def __init__(self, configuration: Any) -> None:
        super().__init__(configuration)
        self._body_limit: int = configuration.get("server", "max_content_length")

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
        raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ = {**environ, "wsgi.input": io.BytesIO(raw)}
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

    do_DELETE = _refusals_answered(Application.do_DELETE)
    do_MOVE = _refusals_answered(Application.do_MOVE)
    do_MKCALENDAR = _refusals_answered(Application.do_MKCALENDAR)
    do_MKCOL = _refusals_answered(Application.do_MKCOL)
    do_PROPPATCH = _refusals_answered(Application.do_PROPPATCH)


_put = _refusals_answered(Application.do_PUT)

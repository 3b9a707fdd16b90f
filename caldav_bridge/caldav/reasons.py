"""What Radicale answers, made to say why: its bare 4xx bodies ("Bad Request", "Conflict in
the request.") and its DAV:error answers that name a precondition and nothing else get the
reason, as the bridge's own refusals give it; a REPORT's calendar data keeps its carriage
returns. Each is a wrapper of Radicale's request handlers (``app``)."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import defusedxml.ElementTree as DefusedET
from radicale import httputils, types
from radicale.app import Application

from caldav_bridge.caldav import multistatus, paths
from caldav_bridge.caldav.base import Handler, text

logger = logging.getLogger("caldav_bridge")


# What each method does, to say what was not allowed.
_VERBS = {
    "PUT": "write",
    "DELETE": "delete",
    "MKCALENDAR": "make a calendar at",
    "MKCOL": "make a collection at",
    "PROPPATCH": "change the properties of",
    "REPORT": "read",
}
_SETTING = "the request's properties cannot be set as sent (RFC 4791 5.3.1, RFC 5689)"


def _bare_reason(method: str, body: str, path: str) -> str | None:
    """Why Radicale refused ``method`` on ``path`` with one of its bare answers (``body``: it
    logs the reason, and answers "Bad Request", "Conflict in the request." ...), or None."""
    parent, verb = paths.parent(path), _VERBS.get(method, "change")
    kind = "make" if method in ("MKCALENDAR", "MKCOL") else method
    specific = {
        (httputils.FORBIDDEN[2], "make"): f"{parent} is a calendar or address book: "
        "collections are made in a calendar home or a folder of it",
        (httputils.FORBIDDEN[2], "PROPPATCH"): f"{path} is a calendar object: properties "
        "are set on collections",
        (httputils.BAD_REQUEST[2], "make"): _SETTING,
        (httputils.BAD_REQUEST[2], "PROPPATCH"): _SETTING,
        (httputils.BAD_REQUEST[2], "REPORT"): "the REPORT's filter or properties cannot be "
        "read (RFC 4791 7.8, 9.7)",
    }
    general = {
        httputils.NOT_ALLOWED[2]: f"you may not {verb} {path}",
        httputils.FORBIDDEN[2]: f"the server may not {verb} {path}",
        httputils.CONFLICT[2]: f"{parent} does not exist: make the collection that holds "
        f"{path} first",
        httputils.PRECONDITION_FAILED[2]: f"{path} is not as the request's If-Match or "
        "If-None-Match expects, or the object is larger than the server stores",
        httputils.BAD_REQUEST[2]: f"the {method} cannot be done as sent",
    }
    return specific.get((body, kind)) or general.get(body)


# What a wrapper makes of a handler's answer: (environ, path, user, answer) -> answer.
AnswerChange = Callable[[types.WSGIEnviron, str, str, types.WSGIResponse], types.WSGIResponse]


def _answer_changed(change: AnswerChange) -> Callable[[Handler], Handler]:
    """A wrapper of Radicale's request handlers that passes their answer through ``change``."""

    def wrap(handler: Handler) -> Handler:
        def changed(
            app: Application,
            environ: types.WSGIEnviron,
            base_prefix: str,
            path: str,
            user: str,
            user_groups: set[str],
            request_info: dict[str, Any],
        ) -> types.WSGIResponse:
            answer = handler(app, environ, base_prefix, path, user, user_groups, request_info)
            return change(environ, path, user, answer)

        return changed

    return wrap


# What Radicale's DAV:error answers (which name the precondition, and nothing else) mean.
_PRECONDITIONS = {
    "no-uid-conflict": "another object of this collection has the UID of the one sent, or {path} "
    "holds an object with another UID: a UID names one object (RFC 4791 5.3.2.1)",
    "resource-must-be-null": "{path} exists already",
    "supported-report": "{path} does not answer this REPORT (RFC 3253 3.6)",
    "valid-sync-token": "the sync-token is not one this collection gave out: sync again without "
    "one (RFC 6578 3.2)",
    "expand": "the expansion asked for holds more occurrences than the server expands",
}


def _precondition_explained(path: str, body: bytes) -> bytes | None:
    """Radicale's DAV:error ``body`` with the reason beside the precondition, or None."""
    if multistatus.REASON_NS.encode() in body:
        return None
    for name, reason in _PRECONDITIONS.items():
        if f":{name}".encode() in body or f"<{name}".encode() in body:
            root = DefusedET.fromstring(body)
            ET.SubElement(root, f"{{{multistatus.REASON_NS}}}reason").text = reason.format(
                path=path
            )
            return multistatus.document(root)
    return None


def _with_reason(
    environ: types.WSGIEnviron, path: str, user: str, answer: types.WSGIResponse
) -> types.WSGIResponse:
    """Radicale's bare 4xx answers with the reason, as the bridge's own refusals give it.
    Without a user, Radicale turns its bare 403 into 401: left as it is."""
    status, headers, body, xml = answer
    if not user or not 400 <= int(status) < 500:
        return answer
    if isinstance(body, bytes):
        explained = _precondition_explained(path, body)
        return answer if explained is None else (status, headers, explained, xml)
    if not isinstance(body, str):
        return answer
    reason = _bare_reason(str(environ["REQUEST_METHOD"]), body, path)
    if reason is None:
        return answer
    logger.info("refused %s %r: %s", environ["REQUEST_METHOD"], path, reason)
    return text(HTTPStatus(int(status)), reason)


def _carriage_returns_kept(
    environ: types.WSGIEnviron, path: str, user: str, answer: types.WSGIResponse
) -> types.WSGIResponse:
    """A REPORT's XML answer with the carriage returns of its calendar data written
    ``&#13;``: an XML parser reads a CR LF in text as LF (XML 1.0 section 2.11), and ``&#13;``
    as CR. Calendar data in a multiget, a query or a sync is then the object's bytes, as GET
    serves them (ElementTree writes the CRs of attributes so already)."""
    status, headers, body, xml = answer
    kind = str(dict(headers).get("Content-Type", ""))
    if not isinstance(body, bytes) or "xml" not in kind or b"\r" not in body:
        return answer
    return status, headers, body.replace(b"\r", b"&#13;"), xml


reasons_given = _answer_changed(_with_reason)
line_ends_kept = _answer_changed(_carriage_returns_kept)

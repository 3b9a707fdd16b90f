"""The bridge's own HTTP endpoints, beside CalDAV under ``/.bridge/`` (a path no calendar can
take: Radicale's names never start with a dot), for the logged-in user.

- ``GET /.bridge/messages[?unread=1]``: the user's messenger notices, newest first (JSON);
- ``POST /.bridge/messages/read`` with ``{"ids": [...]}`` or ``{"all": true}``: mark them read.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from radicale import httputils, types

from caldav_bridge import messenger
from caldav_bridge.db import Database
from caldav_bridge.directory import Directory

PREFIX = "/.bridge/"
MESSAGES = f"{PREFIX}messages"


def _json(status: HTTPStatus, value: Any) -> types.WSGIResponse:
    body = json.dumps(value, ensure_ascii=False).encode()
    return int(status), {"Content-Type": "application/json"}, body, None


def _refusal(status: HTTPStatus, reason: str) -> types.WSGIResponse:
    return _json(status, {"error": reason})


def handle(
    database: Database, method: str, path: str, user: str, environ: types.WSGIEnviron
) -> types.WSGIResponse:
    """Answer a request under ``/.bridge/``."""
    if not user:
        return httputils.NOT_ALLOWED  # Radicale answers 401 with the challenge
    if path.rstrip("/") == MESSAGES and method == "GET":
        unread = parse_qs(str(environ.get("QUERY_STRING", ""))).get("unread", ["0"])[0]
        with database.session() as session:
            found = messenger.notices(
                session, Directory(session).user(user), unread_only=unread in ("1", "true")
            )
            return _json(HTTPStatus.OK, [messenger.as_json(n) for n in found])
    if path.rstrip("/") == f"{MESSAGES}/read" and method == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        try:
            request = json.loads(environ["wsgi.input"].read(length) or b"{}")
            ids = None if request.get("all") is True else [int(i) for i in request["ids"]]
        except (ValueError, KeyError, TypeError, AttributeError):
            return _refusal(
                HTTPStatus.BAD_REQUEST, 'send {"ids": [numbers]} or {"all": true} as JSON'
            )
        with database.session(write=True) as session:
            marked = messenger.mark_read(session, Directory(session).user(user), ids)
        return _json(HTTPStatus.OK, {"marked": marked})
    if path.rstrip("/") in (MESSAGES, f"{MESSAGES}/read"):
        return _refusal(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not answered here")
    return _refusal(HTTPStatus.NOT_FOUND, f"nothing at {path}")

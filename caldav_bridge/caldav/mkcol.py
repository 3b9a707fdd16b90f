"""MKCOL: Radicale's (an address book, a calendar or a folder, RFC 5689), whose 405 for a name
already taken says so."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from radicale import types
from radicale.app.mkcol import ApplicationPartMkcol

from caldav_bridge.caldav.base import Part, text


class MkcolPart(Part, ApplicationPartMkcol):
    def do_MKCOL(
        self,
        environ: types.WSGIEnviron,
        base_prefix: str,
        path: str,
        user: str,
        user_groups: set[str],
        request_info: dict[str, Any],
    ) -> types.WSGIResponse:
        answer = super().do_MKCOL(environ, base_prefix, path, user, user_groups, request_info)
        if answer[0] == HTTPStatus.METHOD_NOT_ALLOWED:
            return text(
                HTTPStatus.METHOD_NOT_ALLOWED,
                f"{path} exists already (MKCOL makes a new collection only, RFC 4918 9.3.1): "
                "choose another name",
            )
        return answer

"""OPTIONS: Radicale's, with the DAV header saying the server schedules (RFC 6638 section 2)
and answers Apple's principal search."""

from __future__ import annotations

from typing import Any

from radicale import types
from radicale.app.options import ApplicationPartOptions

from caldav_bridge.caldav.base import Part, fields
from caldav_bridge.caldav.scheduling import AUTO_SCHEDULE, PRINCIPAL_SEARCH


class OptionsPart(Part, ApplicationPartOptions):
    def do_OPTIONS(
        self,
        environ: types.WSGIEnviron,
        base_prefix: str,
        path: str,
        user: str,
        user_groups: set[str],
        request_info: dict[str, Any],
    ) -> types.WSGIResponse:
        status, headers, answer, xml = super().do_OPTIONS(
            environ, base_prefix, path, user, user_groups, request_info
        )
        found = fields(headers)
        found["DAV"] = f"{found['DAV']}, {AUTO_SCHEDULE}, {PRINCIPAL_SEARCH}"
        return status, found, answer, xml

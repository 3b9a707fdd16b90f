"""GET and HEAD: Radicale's, an interaction's answer carrying its Schedule-Tag."""

from __future__ import annotations

from typing import Any

from radicale import types
from radicale.app.head import ApplicationPartHead

from caldav_bridge.caldav.scheduling import SchedulingPart


class GetPart(SchedulingPart, ApplicationPartHead):
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

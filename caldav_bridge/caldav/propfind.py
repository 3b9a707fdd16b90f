"""PROPFIND: Radicale's, with RFC 6638's properties and Schedule-Tags filled in, free-busy-only
calendars kept to themselves, and a fast path for the request every sync client repeats:
Depth 1 on a calendar for ETags and content types."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from radicale import types
from radicale.app.propfind import ApplicationPartPropfind

from caldav_bridge.caldav import multistatus, paths
from caldav_bridge.caldav.base import Listable, buffered, request_xml, text, with_body
from caldav_bridge.caldav.multistatus import LISTING_PROPS
from caldav_bridge.caldav.scheduling import SchedulingPart


def listing_props(prop: Any) -> list[str] | None:
    """The properties a DAV:prop (parsed) names when they are listing properties only."""
    names = [child.tag for child in prop] if prop is not None else []
    if prop is None or not names or not set(names) <= LISTING_PROPS:
        return None
    return names


def _listing_request(root: Any) -> list[str] | None:
    """The properties of a PROPFIND (parsed) that asks only for listing properties, else
    None."""
    if root is None or root.tag != "{DAV:}propfind" or len(root) != 1:
        return None
    return listing_props(root.find("{DAV:}prop"))


class PropfindPart(SchedulingPart, ApplicationPartPropfind):
    def do_PROPFIND(
        self,
        environ: types.WSGIEnviron,
        base_prefix: str,
        path: str,
        user: str,
        user_groups: set[str],
        request_info: dict[str, Any],
    ) -> types.WSGIResponse:
        raw, environ = buffered(environ)
        root = request_xml(environ, raw)
        if root is not None and (root.tag != "{DAV:}propfind" or len(root) == 0):
            return text(
                HTTPStatus.BAD_REQUEST,
                "a PROPFIND body is a DAV:propfind naming prop, propname or allprop "
                "(RFC 4918 section 14.20), or no body at all",
            )
        free_busy_only = self._free_busy_only(path, user, user_groups)
        if free_busy_only == "calendar":
            return text(
                HTTPStatus.FORBIDDEN,
                "another user's calendars are free-busy only: ask for free-busy by scheduling "
                "(a POST to your outbox)",
            )
        if free_busy_only == "home":  # their principal, not the names of their calendars
            environ = {**environ, "HTTP_DEPTH": "0"}
        self.with_default_calendar(path, user)
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
        place = paths.Place.of(path)
        if not user or not place.parts or place.home == user:
            return ""
        if self._rights.authorization(user, user_groups, paths.home_child(path)) != "f":
            return ""
        return "home" if place.is_principal else "calendar"

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
        """Radicale's PROPFIND; for a listing (Depth 1, listing properties only) Radicale
        answers for the calendar itself (Depth 0, rights included) and the items are listed
        from the index columns. When Radicale's answer is not the one expected, its own
        Depth 1 answer is served."""
        args = (base_prefix, path, user, user_groups, request_info)
        names = _listing_request(root) if environ.get("HTTP_DEPTH") == "1" and user else None
        listable = self.listable(path, user, user_groups) if names else None
        if names is None or listable is None:
            return super().do_PROPFIND(environ, *args)
        status, headers, answer, xml = super().do_PROPFIND(
            with_body(environ, raw, HTTP_DEPTH="0"), *args
        )
        prefix = paths.collection_href(base_prefix, listable.path)
        if status == 207 and isinstance(answer, bytes):
            entries = listable.entries(dated=multistatus.DATED in names)
            items = multistatus.item_responses(prefix, entries, names)
            body = multistatus.listing(answer, prefix, items)
            if body is not None:
                return status, headers, body, xml
        return super().do_PROPFIND(with_body(environ, raw), *args)

    def listable(self, path: str, user: str, user_groups: set[str]) -> Listable | None:
        """The calendar at ``path`` if ``user`` may read its items and it can list itself."""
        if "r" not in self._rights.authorization(user, user_groups, path):
            return None
        collection = self.collection(path)
        return collection if isinstance(collection, Listable) else None

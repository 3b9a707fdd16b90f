"""REPORT: Radicale's, with what the bridge answers itself: principal searches (RFC 3744,
Apple's), free-busy queries on the calendars the CRM holds, and sync-collection (RFC 6578)
when only listing properties are asked (names and ETags of what changed, 404 for what left),
paged by DAV:limit."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # builds XML only; requests are parsed with defusedxml
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

from radicale import types
from radicale.app.propfind import ApplicationPartPropfind
from radicale.app.report import ApplicationPartReport
from radicale.item import filter as radicale_filter

from caldav_bridge.caldav import multistatus, paths, principal_search
from caldav_bridge.caldav.base import Busy, buffered, request_xml, text, with_body
from caldav_bridge.caldav.multistatus import CONTENT_TYPE, C
from caldav_bridge.caldav.post import as_utc, check_range
from caldav_bridge.caldav.propfind import PropfindPart, listing_props
from caldav_bridge.domain.errors import InvalidInput
from caldav_bridge.ical import freebusy


def _sync_request(root: Any) -> tuple[str, list[str]] | None:
    """(old token, properties) of a sync-collection REPORT (parsed) that asks only for
    listing properties at sync-level 1, else None."""
    if root is None or root.tag != "{DAV:}sync-collection":
        return None
    if (root.findtext("{DAV:}sync-level") or "1").strip() != "1":
        return None
    names = listing_props(root.find("{DAV:}prop"))
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
    given = (limit.findtext("{DAV:}nresults") or "").strip().lstrip("0")
    if not _POSITIVE_INTEGER.fullmatch(given):
        raise InvalidInput(
            "DAV:limit holds DAV:nresults, the most changes to answer at once: a positive "
            "integer (RFC 6578 section 3.7, RFC 5323 section 5.17)"
        )
    return min(int(given), _MOST_RESULTS) if len(given) < 12 else _MOST_RESULTS


_MORE_PRINCIPALS = "more principals match: search with more of the name or address"


class ReportPart(PropfindPart, ApplicationPartReport):
    def do_REPORT(
        self,
        environ: types.WSGIEnviron,
        base_prefix: str,
        path: str,
        user: str,
        user_groups: set[str],
        request_info: dict[str, Any],
    ) -> types.WSGIResponse:
        raw, environ = buffered(environ)
        root = request_xml(environ, raw) if user else None
        args = (base_prefix, path, user, user_groups, request_info)
        search = principal_search.parse(root)
        if search is not None:
            return self.principal_search_report(search, environ, *args)
        if principal_search.asks_searchable(root):
            return self.search_property_set_report()
        free_busy = self.free_busy_query_report(root, path, user, user_groups)
        if free_busy is not None:
            return free_busy
        limit = _sync_limit(root)
        request = _sync_request(root)
        listable = self.listable(path, user, user_groups) if request else None
        if request is None or listable is None:
            return self._radicale_report(environ, root, limit, *args)
        old_token, names = request
        try:
            if limit is None:
                token, hrefs = listable.sync(old_token)
                changed, more = (list(hrefs) if old_token else None), False
            else:
                page = listable.sync_page(old_token, limit)
                token, changed, more = page.token, page.hrefs, page.truncated
        except ValueError:  # Radicale answers with its valid-sync-token error
            return super().do_REPORT(with_body(environ, raw), *args)
        entries = listable.entries(changed, dated=multistatus.DATED in names)
        prefix = paths.collection_href(base_prefix, listable.path)
        items = multistatus.item_responses(prefix, entries, names)
        present = {e[0] for e in entries}
        gone = [href for href in changed or () if href not in present]
        body = multistatus.sync_answer(token, prefix, items, gone, more)
        return 207, {"Content-Type": CONTENT_TYPE}, body, None

    def _radicale_report(
        self,
        environ: types.WSGIEnviron,
        root: Any,
        limit: int | None,
        base_prefix: str,
        path: str,
        user: str,
        user_groups: set[str],
        request_info: dict[str, Any],
    ) -> types.WSGIResponse:
        """Radicale's REPORT; for a sync-collection with DAV:limit, the calendar answers one
        page, and the answer says so when more follow."""
        paging = self._bridge_storage.page_sync(limit) if limit is not None else None
        answer = super().do_REPORT(environ, base_prefix, path, user, user_groups, request_info)
        status, headers, body, xml = self.with_schedule_tag_props(answer, root, base_prefix)
        if paging is None or not paging.truncated or not isinstance(body, bytes):
            return status, headers, body, xml
        collection = paths.collection_href(base_prefix, path)
        more = multistatus.truncated(collection, multistatus.MORE_CHANGES)
        return status, headers, multistatus.with_response(body, more), xml

    def principal_search_report(
        self,
        request: principal_search.PrincipalSearch,
        environ: types.WSGIEnviron,
        base_prefix: str,
        path: str,
        user: str,
        user_groups: set[str],
        request_info: dict[str, Any],
    ) -> types.WSGIResponse:
        """principal-property-search and calendarserver-principal-search: each principal found
        answered as a PROPFIND of it would be; a 507 for the request-URI when more matched
        than the search may answer (RFC 3744 section 9.4's number-of-matches-within-limits)."""
        with self.database_session() as session:
            found, truncated = principal_search.find(session, request)
        body = multistatus.propfind_body(request.props)
        responses: list[ET.Element] = []
        for name in found:
            home = f"/{name}/"
            answer = ApplicationPartPropfind.do_PROPFIND(
                self,
                with_body(environ, body, HTTP_DEPTH="0"),
                base_prefix,
                home,
                user,
                user_groups,
                request_info,
            )
            _, _, answered, _ = self.with_scheduling_props(answer, base_prefix, home)
            if isinstance(answered, bytes):
                responses += multistatus.responses_of(answered)
        if truncated:
            responses.append(multistatus.truncated(quote(f"{base_prefix}{path}"), _MORE_PRINCIPALS))
        return 207, {"Content-Type": CONTENT_TYPE}, multistatus.multistatus(responses), None

    def search_property_set_report(self) -> types.WSGIResponse:
        """RFC 3744 section 9.5: the properties principal-property-search can match."""
        body = multistatus.searchable(principal_search.SEARCHABLE)
        return 200, {"Content-Type": CONTENT_TYPE}, body, None

    def free_busy_query_report(
        self, root: Any, path: str, user: str, user_groups: set[str]
    ) -> types.WSGIResponse | None:
        """A free-busy-query REPORT (RFC 4791 section 7.10, parsed) on an interactions or
        bookings calendar, answered by the same rule as the outbox; None for any other (a
        calendar of a user's own: Radicale answers, once its range is checked here too)."""
        if root is None or root.tag != f"{{{C}}}free-busy-query":
            return None
        collection = self.collection(path)
        if collection is None:
            return None
        if not set(self._rights.authorization(user, user_groups, path)) & set("rRfF"):
            return text(HTTPStatus.FORBIDDEN, "you may not see this calendar's free-busy time")
        time_range = root.find(f"{{{C}}}time-range")
        if time_range is None:
            return text(HTTPStatus.BAD_REQUEST, "a free-busy-query needs a time-range")
        try:
            start, end = radicale_filter.parse_time_range(time_range)
        except ValueError as exc:
            return text(HTTPStatus.BAD_REQUEST, f"malformed time-range: {exc}")
        start, end = as_utc(start), as_utc(end)
        try:
            check_range(start, end)
        except InvalidInput as exc:
            return text(HTTPStatus.BAD_REQUEST, str(exc))
        if not isinstance(collection, Busy):
            return None
        body = freebusy.vfreebusy(collection.busy(start, end), start, end)
        return 200, {"Content-Type": "text/calendar"}, body, None  # Radicale adds the charset

"""RFC 6638 (CalDAV scheduling) over Radicale: what the server says of principals, schedule
inboxes and outboxes, the outbox's free-busy answers, principal searches and Schedule-Tag.

Delivery itself (REQUEST, CANCEL and REPLY messages into calendars and inboxes) happens in the
interaction service when a client's write changes an interaction. This module speaks HTTP and
XML and asks the domain; it decides nothing about interactions.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET  # builds XML only; requests are parsed with defusedxml
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, unquote

import defusedxml.ElementTree as DefusedET
from icalendar import Calendar, vCalAddress
from radicale import httputils, types
from radicale.app import Application
from radicale.app import report as radicale_report
from radicale.item import filter as radicale_filter
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from caldav_bridge.caldav import principal_search
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.errors import CalDavPrecondition, InvalidInput
from caldav_bridge.domain.models import Interaction, Resource, ResourceKind, User
from caldav_bridge.ical import freebusy
from caldav_bridge.ical.mapping import USER_URN, addresses_of, normalize_address

INBOX = "inbox"
OUTBOX = "outbox"
INTERACTIONS = "interactions"
AUTO_SCHEDULE = "calendar-auto-schedule"
PRINCIPAL_SEARCH = "calendarserver-principal-search"  # Apple Calendar searches when it is said

D = "DAV:"
C = "urn:ietf:params:xml:ns:caldav"
CS = "http://calendarserver.org/ns/"

# Bounds of one free-busy request (RFC 6638 section 5 leaves them to the server), refused with
# the limit named: the range, the attendees (each address counts once), and the busy periods
# and calendar items the answers may gather, which stops the work where it would pass them.
LONGEST_RANGE = timedelta(days=400)
MAX_ATTENDEES = 100
MAX_WORK = 50_000


@dataclass(frozen=True)
class Principal:
    """A calendar user as scheduling sees it: a CRM user or a resource."""

    name: str  # login or slug: the principal is /<name>/
    display_name: str
    addresses: tuple[str, ...]  # email addresses, the first one preferred
    cutype: str  # RFC 5545 CUTYPE: INDIVIDUAL, ROOM or RESOURCE
    user: User | None
    resource: Resource | None


def _of_user(user: User) -> Principal:
    return Principal(
        user.login,
        user.display_name,
        tuple(e.address for e in user.emails),
        "INDIVIDUAL",
        user,
        None,
    )


def _of_resource(resource: Resource) -> Principal:
    cutype = "ROOM" if resource.kind is ResourceKind.ROOM else "RESOURCE"
    return Principal(resource.slug, resource.name, (resource.email,), cutype, None, resource)


def principal(session: Session, name: str) -> Principal | None:
    user = session.scalar(
        select(User)
        .where(User.login == name, User.active.is_(True))
        .options(selectinload(User.emails))
    )
    if user is not None:
        return _of_user(user)
    resource = session.scalar(
        select(Resource).where(Resource.slug == name, Resource.active.is_(True))
    )
    return _of_resource(resource) if resource is not None else None


def principals_by_addresses(session: Session, addresses: list[str]) -> dict[str, Principal]:
    """The active users and resources of ``addresses`` (normalised), in two queries."""
    directory = Directory(session)
    found = {
        address: _of_resource(resource)
        for address, resource in directory.resources_by_addresses(addresses).items()
        if resource.active
    }
    for address, user in directory.users_by_addresses(addresses).items():
        if user.active:
            found[address] = _of_user(user)
    return found


# ---------------------------------------------------------------------------- properties


def _href(parent: ET.Element, text: str) -> None:
    ET.SubElement(parent, f"{{{D}}}href").text = text


def _fill(tag: str, kind: str, who: Principal, prefix: str) -> ET.Element | None:
    """The value of a scheduling property of a principal (``kind`` "principal") or of its
    inbox or outbox, or None when the property is not one of ours there."""
    home = f"{prefix}/{quote(who.name)}/"
    element = ET.Element(tag)
    if kind == "principal":
        if tag == f"{{{C}}}calendar-user-address-set":
            for address in who.addresses:
                _href(element, f"mailto:{address}")
            if who.user is not None and not who.addresses:  # how events name them
                _href(element, f"{USER_URN}{who.user.login}")
            _href(element, home)
        elif tag == f"{{{C}}}calendar-user-type":
            element.text = who.cutype
        elif tag == f"{{{C}}}schedule-inbox-URL" and who.user is not None:
            _href(element, f"{home}{INBOX}/")
        elif tag == f"{{{C}}}schedule-outbox-URL" and who.user is not None:
            _href(element, f"{home}{OUTBOX}/")
        elif tag == f"{{{CS}}}email-address-set":
            for address in who.addresses:
                ET.SubElement(element, f"{{{CS}}}email-address").text = address
        else:
            return None
        return element
    if tag == f"{{{D}}}resourcetype":
        ET.SubElement(element, f"{{{D}}}collection")
        ET.SubElement(element, f"{{{C}}}schedule-{kind}")
        return element
    if kind == INBOX and tag == f"{{{C}}}schedule-default-calendar-URL":
        _href(element, f"{home}{INTERACTIONS}/")
        return element
    return None


def enrich(answer: bytes, prefix: str, describe: Callable[[str], Principal | None]) -> bytes:
    """Radicale's PROPFIND multistatus, with the scheduling properties of principals and of
    schedule inboxes and outboxes filled in (RFC 6638 sections 2.1, 2.2 and 2.4)."""
    root = DefusedET.fromstring(answer)
    changed = False
    for response in root.findall(f"{{{D}}}response"):
        path = unquote(response.findtext(f"{{{D}}}href") or "")[len(prefix) :]
        parts = [p for p in path.split("/") if p]
        if len(parts) == 1:
            kind = "principal"
        elif len(parts) == 2 and parts[1] in (INBOX, OUTBOX):
            kind = parts[1]
        else:
            continue
        who = describe(parts[0])
        if who is None:
            continue
        filled: list[ET.Element] = []
        for propstat in response.findall(f"{{{D}}}propstat"):
            prop = propstat.find(f"{{{D}}}prop")
            for element in list(prop if prop is not None else ()):
                value = _fill(element.tag, kind, who, prefix)
                if value is not None and prop is not None:
                    prop.remove(element)
                    filled.append(value)
            if prop is not None and not len(prop):
                response.remove(propstat)
        if filled:
            changed = True
            response.append(_propstat(filled))
    if not changed:
        return answer
    return _xml(root)


def _xml(root: ET.Element) -> bytes:
    text: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return text


def _propstat(props: Iterable[ET.Element], status: str = "200 OK") -> ET.Element:
    propstat = ET.Element(f"{{{D}}}propstat")
    prop = ET.SubElement(propstat, f"{{{D}}}prop")
    prop.extend(props)
    ET.SubElement(propstat, f"{{{D}}}status").text = f"HTTP/1.1 {status}"
    return propstat


# ---------------------------------------------------------------------------- searches


def search_body(props: list[str]) -> bytes:
    """The PROPFIND that asks Radicale for ``props`` of one principal."""
    root = ET.Element(f"{{{D}}}propfind")
    prop = ET.SubElement(root, f"{{{D}}}prop")
    for tag in props:
        ET.SubElement(prop, tag)
    return _xml(root)


def _truncated(href: str) -> ET.Element:
    """The response for the request-URI of an answer holding only the first matches."""
    response = ET.Element(f"{{{D}}}response")
    _href(response, quote(href))
    ET.SubElement(response, f"{{{D}}}status").text = "HTTP/1.1 507 Insufficient Storage"
    ET.SubElement(
        ET.SubElement(response, f"{{{D}}}error"), f"{{{D}}}number-of-matches-within-limits"
    )
    ET.SubElement(
        response, f"{{{D}}}responsedescription"
    ).text = "more principals match: search with more of the name or address"
    return response


def multistatus(responses: Iterable[ET.Element]) -> bytes:
    root = ET.Element(f"{{{D}}}multistatus")
    root.extend(responses)
    return _xml(root)


def responses_of(answer: bytes) -> list[ET.Element]:
    return list(DefusedET.fromstring(answer).findall(f"{{{D}}}response"))


# ---------------------------------------------------------------------------- the outbox


def freebusy_request(text: str, sender: User) -> tuple[Calendar, datetime, datetime]:
    """A free-busy request POSTed to ``sender``'s outbox (RFC 6638 section 5), checked."""
    try:
        calendar = Calendar.from_ical(text)
    except ValueError as exc:
        raise InvalidInput(f"malformed iCalendar: {exc}") from exc
    method = str(calendar.get("METHOD", "")).upper()
    requests = list(calendar.walk("VFREEBUSY"))
    if method != "REQUEST" or len(requests) != 1:
        raise CalDavPrecondition(
            "C:valid-calendar-data",
            "the outbox takes free-busy requests (METHOD:REQUEST with one VFREEBUSY): events "
            "are scheduled by the server when they are saved",
        )
    request = requests[0]
    organizer = request.get("ORGANIZER")
    if organizer is None or normalize_address(organizer) not in addresses_of(sender):
        raise CalDavPrecondition(
            "C:organizer-allowed", "the request's ORGANIZER must be one of your addresses"
        )
    try:
        start = _utc(request.decoded("DTSTART"))
        end = _utc(request.decoded("DTEND"))
    except (KeyError, ValueError, TypeError) as exc:
        raise InvalidInput("a free-busy request needs DTSTART and DTEND date-times") from exc
    check_range(start, end)
    if not request.get("ATTENDEE"):
        raise InvalidInput("a free-busy request names at least one ATTENDEE")
    if len(attendees_of(calendar)) > MAX_ATTENDEES:
        raise InvalidInput(f"a free-busy request names at most {MAX_ATTENDEES} attendees")
    return calendar, start, end


def check_range(start: datetime, end: datetime) -> None:
    if not start < end or end - start > LONGEST_RANGE:
        raise InvalidInput(
            f"the free-busy range must end after it starts and span at most "
            f"{LONGEST_RANGE.days} days"
        )


class Budget:
    """The work one free-busy request may cause: busy periods gathered and calendar items
    read. Spending past it refuses the request, with the limit named."""

    def __init__(self) -> None:
        self.units = self.left = MAX_WORK

    def spend(self, units: int) -> None:
        self.left -= units
        if self.left < 0:
            raise InvalidInput(
                f"the free-busy request would gather more than {self.units} busy periods and "
                "calendar items: ask about fewer attendees or a shorter range"
            )


def _utc(value: object) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError("not a date-time")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def attendees_of(calendar: Calendar) -> list[vCalAddress]:
    """The request's attendees, each address once (the first time it is named)."""
    found = calendar.walk("VFREEBUSY")[0].get("ATTENDEE")
    unique: dict[str, vCalAddress] = {}
    for attendee in found if isinstance(found, list) else [found]:
        unique.setdefault(normalize_address(attendee), attendee)
    return list(unique.values())


OwnBusy = Callable[[User, datetime, datetime, Budget], list[freebusy.Busy]]


def freebusy_answers(
    session: Session,
    calendar: Calendar,
    start: datetime,
    end: datetime,
    own_calendars: OwnBusy,
    budget: Budget | None = None,
) -> list[tuple[str, str, str | None]]:
    """Each recipient's answer to a free-busy request: their VFREEBUSY reply, or why not.
    ``own_calendars`` adds what a user's calendars of their own hold."""
    budget = budget or Budget()
    request = calendar.walk("VFREEBUSY")[0]
    attendees = attendees_of(calendar)
    principals = principals_by_addresses(session, [str(a) for a in attendees])
    answers: list[tuple[str, str, str | None]] = []
    for attendee in attendees:
        who = principals.get(normalize_address(attendee))
        if who is None:
            answers.append((str(attendee), "3.7;Invalid calendar user", None))
            continue
        if who.user is not None:
            periods = freebusy.busy_user(session, who.user, start, end)
            budget.spend(len(periods))
            periods += own_calendars(who.user, start, end, budget)
        else:
            assert who.resource is not None
            periods = freebusy.busy_resource(session, who.resource, start, end)
            budget.spend(len(periods))
        reply = freebusy.vfreebusy(
            periods,
            start,
            end,
            method="REPLY",
            uid=str(request.get("UID", "")) or None,
            organizer=request.get("ORGANIZER"),
            attendee=attendee,
        )
        answers.append((str(attendee), "2.0;Success", reply))
    return answers


def schedule_response(answers: Iterable[tuple[str, str, str | None]]) -> bytes:
    """The C:schedule-response to an outbox POST: (recipient, request status, calendar data)
    per recipient."""
    root = ET.Element(f"{{{C}}}schedule-response")
    for recipient, status, data in answers:
        response = ET.SubElement(root, f"{{{C}}}response")
        _href(ET.SubElement(response, f"{{{C}}}recipient"), recipient)
        ET.SubElement(response, f"{{{C}}}request-status").text = status
        if data is not None:
            ET.SubElement(response, f"{{{C}}}calendar-data").text = data
    return _xml(root)


# ---------------------------------------------------------------------------- the HTTP layer

Answer = tuple[int, dict[str, str], Any, Any]


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p]


def item_path(path: str) -> tuple[str, str] | None:
    """(calendar path, item name) when ``path`` can be an item of a calendar in a home."""
    parts = _parts(path)
    if len(parts) < 3:
        return None
    return "/" + "/".join(parts[:-1]) + "/", parts[-1]


def _fields(headers: Any) -> dict[str, str]:
    return dict(headers)


def _text(status: HTTPStatus, reason: str) -> Answer:
    return int(status), {"Content-Type": "text/plain"}, f"{reason}\n", None


class SchedulingApplication(Application):
    """Radicale's application with what RFC 6638 adds; the bridge's application extends it."""

    @property
    def _bridge_storage(self) -> Any:
        """The bridge's storage plugin (Radicale types it as any storage)."""
        return self._storage

    def _database_session(self) -> Any:
        return self._bridge_storage.database.session()

    def do_OPTIONS(
        self,
        environ: types.WSGIEnviron,
        base_prefix: str,
        path: str,
        user: str,
        user_groups: set[str],
        request_info: dict[str, Any],
    ) -> types.WSGIResponse:
        """The DAV header says the server schedules (RFC 6638 section 2)."""
        status, headers, answer, xml = super().do_OPTIONS(
            environ, base_prefix, path, user, user_groups, request_info
        )
        fields = _fields(headers)
        fields["DAV"] = f"{fields['DAV']}, {AUTO_SCHEDULE}, {PRINCIPAL_SEARCH}"
        return status, fields, answer, xml

    def with_scheduling_props(
        self, answer: types.WSGIResponse, base_prefix: str, path: str
    ) -> types.WSGIResponse:
        """A PROPFIND answer on a principal, an inbox or an outbox, with RFC 6638's
        properties filled in; other answers as they are."""
        status, headers, body, xml = answer
        parts = _parts(path)
        if status != 207 or not isinstance(body, bytes):
            return answer
        if len(parts) > 2 or (len(parts) == 2 and parts[1] not in (INBOX, OUTBOX)):
            return answer
        with self._database_session() as session:
            enriched = enrich(body, base_prefix, lambda name: principal(session, name))
        return status, headers, enriched, xml

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
        with self._database_session() as session:
            found, truncated = principal_search.find(session, request)
        body = search_body(list(request.props))
        responses: list[ET.Element] = []
        for name in found:
            answer = Application.do_PROPFIND(
                self,
                {
                    **environ,
                    "HTTP_DEPTH": "0",
                    "CONTENT_LENGTH": str(len(body)),
                    "wsgi.input": io.BytesIO(body),
                },
                base_prefix,
                f"/{name}/",
                user,
                user_groups,
                request_info,
            )
            _, _, text, _ = self.with_scheduling_props(answer, base_prefix, f"/{name}/")
            if isinstance(text, bytes):
                responses += responses_of(text)
        if truncated:
            responses.append(_truncated(f"{base_prefix}{path}"))
        return 207, {"Content-Type": "text/xml; charset=utf-8"}, multistatus(responses), None

    def search_property_set_report(self) -> types.WSGIResponse:
        """RFC 3744 section 9.5: the properties principal-property-search can match."""
        root = ET.Element(f"{{{D}}}principal-search-property-set")
        for tag, description in principal_search.SEARCHABLE:
            searchable = ET.SubElement(root, f"{{{D}}}principal-search-property")
            ET.SubElement(ET.SubElement(searchable, f"{{{D}}}prop"), tag)
            text = ET.SubElement(searchable, f"{{{D}}}description")
            text.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
            text.text = description
        return 200, {"Content-Type": "text/xml; charset=utf-8"}, _xml(root), None

    def free_busy_query_report(
        self, root: Any, path: str, user: str, user_groups: set[str]
    ) -> types.WSGIResponse | None:
        """A free-busy-query REPORT (RFC 4791 section 7.10, parsed) on an interactions or
        bookings calendar, answered by the same rule as the outbox; None for any other (a
        calendar of a user's own: Radicale answers, once its range is checked here too)."""
        if root is None or root.tag != f"{{{C}}}free-busy-query":
            return None
        collection = next(iter(self._storage.discover(path)), None)
        if collection is None:
            return None
        if not set(self._rights.authorization(user, user_groups, path)) & set("rRfF"):
            return _text(HTTPStatus.FORBIDDEN, "you may not see this calendar's free-busy time")
        time_range = root.find(f"{{{C}}}time-range")
        if time_range is None:
            return _text(HTTPStatus.BAD_REQUEST, "a free-busy-query needs a time-range")
        try:
            start, end = radicale_filter.parse_time_range(time_range)
        except ValueError as exc:
            return _text(HTTPStatus.BAD_REQUEST, f"malformed time-range: {exc}")
        start, end = _utc(start), _utc(end)
        try:
            check_range(start, end)
        except InvalidInput as exc:
            return _text(HTTPStatus.BAD_REQUEST, str(exc))
        busy = getattr(collection, "busy", None)
        if busy is None:
            return None
        body = freebusy.vfreebusy(busy(start, end), start, end)
        return 200, {"Content-Type": "text/calendar"}, body, None  # Radicale adds the charset

    def do_POST(
        self,
        environ: types.WSGIEnviron,
        base_prefix: str,
        path: str,
        user: str,
        user_groups: set[str],
        request_info: dict[str, Any],
    ) -> types.WSGIResponse:
        """A free-busy request POSTed to the user's own schedule outbox (RFC 6638 section
        5); every other POST is Radicale's."""
        parts = _parts(path)
        if len(parts) != 2 or parts[1] != OUTBOX:
            return super().do_POST(environ, base_prefix, path, user, user_groups, request_info)
        if not user:  # Radicale answers 401 with the authentication challenge
            return httputils.NOT_ALLOWED
        if parts[0] != user:
            return _text(HTTPStatus.FORBIDDEN, "you can only post to your own schedule outbox")
        raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return _text(HTTPStatus.BAD_REQUEST, "the body is not valid UTF-8")
        with self._database_session() as session:
            sender = Directory(session).user(user)
            calendar, start, end = freebusy_request(text, sender)
            answers = freebusy_answers(session, calendar, start, end, self._own_busy)
        return 200, {"Content-Type": "text/xml; charset=utf-8"}, schedule_response(answers), None

    def _own_busy(
        self, user: User, start: datetime, end: datetime, budget: Budget
    ) -> list[freebusy.Busy]:
        """What the calendars a user made themselves hold, by Radicale's free-busy rules
        (recurrences expanded, transparent and cancelled events left out)."""
        periods: list[freebusy.Busy] = []
        for calendar in self._bridge_storage.own_calendars(user.login):
            for item, _ in calendar.stored_filtered([_time_filter(start, end)]):
                budget.spend(1)
                try:
                    found = radicale_report.freebusy_periods(item, start, end, _MAX_OCCURRENCES)
                except ValueError:  # too many occurrences to list: busy all along, to be safe
                    found = [(start, end, freebusy.BUSY)]
                budget.spend(len(found))
                periods += [
                    freebusy.Busy(_utc(first), _utc(last), kind)
                    for first, last, kind in found
                    if kind != "FREE"
                ]
        return periods

    def _schedule_tags(self, calendar: str, hrefs: list[str]) -> dict[str, str]:
        """The Schedule-Tags of the interactions among ``hrefs`` in the calendar at
        ``calendar`` (any calendar of a home may hold interactions)."""
        collection = next(iter(self._storage.discover(calendar)), None)
        tags = getattr(collection, "schedule_tags", None)
        return tags(hrefs) if tags is not None else {}

    def with_schedule_tag(
        self, answer: types.WSGIResponse, path: str, written: bool = False
    ) -> types.WSGIResponse:
        """GET, HEAD and PUT of an interaction carry its Schedule-Tag (RFC 6638 section
        3.2.10). A PUT's answer (``written``) carries no ETag: the server rewrote what was
        sent (RFC 4791 section 5.3.4), so the client reads it back."""
        item = item_path(path)
        status, headers, body, xml = answer
        if item is None or status >= 300:
            return answer
        calendar, href = item
        tag = self._bridge_storage.written_schedule_tag(href)
        if tag is None and not written:
            tag = self._schedule_tags(calendar, [href]).get(href)
        if tag is None:
            return answer
        headers = _fields(headers)
        headers["Schedule-Tag"] = tag
        if written:
            headers.pop("ETag", None)
        return status, headers, body, xml

    def with_representation(
        self, answer: types.WSGIResponse, environ: types.WSGIEnviron, path: str
    ) -> types.WSGIResponse:
        """``Prefer: return=representation`` (RFC 7240) on a PUT of a meeting: the event as
        the server stored it, room answers and SCHEDULE-STATUS included, in the answer."""
        status, headers, _, xml = answer
        item = item_path(path)
        href = item[1] if item is not None else None
        prefer = str(environ.get("HTTP_PREFER", "")).replace(" ", "").lower()
        written = None if href is None else self._bridge_storage.written_interaction(href)
        if written is None or status not in (201, 204) or "return=representation" not in prefer:
            return answer
        with self._database_session() as session:
            stored = session.execute(
                select(Interaction.ical, Interaction.etag).where(Interaction.id == written)
            ).first()
        if stored is None:
            return answer
        fields = _fields(headers)
        fields.update(
            {
                "Content-Type": "text/calendar",  # Radicale adds the charset
                "ETag": stored.etag,
                "Preference-Applied": "return=representation",
            }
        )
        return 201 if status == 201 else 200, fields, stored.ical, xml

    def with_schedule_tag_props(
        self, answer: types.WSGIResponse, request: Any, base_prefix: str
    ) -> types.WSGIResponse:
        """A multistatus answering a request (parsed) that asked for C:schedule-tag, with the
        tag of each interaction in it (RFC 6638 section 3.2.10)."""
        status, headers, body, xml = answer
        wanted = f"{{{C}}}schedule-tag"
        if status != 207 or not isinstance(body, bytes) or request is None:
            return answer
        if request.find(f".//{{{D}}}prop/{wanted}") is None:
            return answer
        root = DefusedET.fromstring(body)
        items: dict[tuple[str, str], Any] = {}
        for response in root.findall(f"{{{D}}}response"):
            found = item_path(unquote(response.findtext(f"{{{D}}}href") or "")[len(base_prefix) :])
            if found is not None:
                items[found] = response
        calendars: dict[str, list[str]] = {}
        for calendar, href in items:
            calendars.setdefault(calendar, []).append(href)
        tags = {
            (calendar, href): tag
            for calendar, hrefs in calendars.items()
            for href, tag in self._schedule_tags(calendar, hrefs).items()
        }
        if not tags:
            return answer
        for key, response in items.items():
            if key not in tags:
                continue
            for propstat in response.findall(f"{{{D}}}propstat"):
                prop = propstat.find(f"{{{D}}}prop")
                missing = prop.find(wanted) if prop is not None else None
                if prop is not None and missing is not None:
                    prop.remove(missing)
                    if not len(prop):
                        response.remove(propstat)
            tag = ET.Element(wanted)
            tag.text = tags[key]
            response.append(_propstat([tag]))
        return status, headers, _xml(root), xml


_MAX_OCCURRENCES = 10_000


def _time_filter(start: datetime, end: datetime) -> ET.Element:
    """A calendar-query filter for events overlapping [start, end), as Radicale reads it."""
    stamp = "%Y%m%dT%H%M%SZ"
    root = ET.Element(f"{{{C}}}filter")
    calendar = ET.SubElement(root, f"{{{C}}}comp-filter", name="VCALENDAR")
    event = ET.SubElement(calendar, f"{{{C}}}comp-filter", name="VEVENT")
    ET.SubElement(event, f"{{{C}}}time-range", start=start.strftime(stamp), end=end.strftime(stamp))
    return root

"""RFC 6638 (CalDAV scheduling) as the server says it: the scheduling properties of
principals and of schedule inboxes and outboxes, and Schedule-Tag (headers and property).

Delivery itself (REQUEST, CANCEL and REPLY messages into calendars and inboxes) happens in the
interaction service when a client's write changes an interaction; the outbox's free-busy
answers are ``post``'s. This module speaks HTTP and XML and asks the domain; it decides
nothing about interactions.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # builds XML only; requests are parsed with defusedxml
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import defusedxml.ElementTree as DefusedET
from radicale import types
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from caldav_bridge.caldav import multistatus, paths
from caldav_bridge.caldav.base import Part, Scheduled, fields
from caldav_bridge.caldav.multistatus import CS, C, D
from caldav_bridge.domain import outside
from caldav_bridge.domain.directory import Directory
from caldav_bridge.domain.models import Resource, ResourceKind, User
from caldav_bridge.ical.mapping import USER_URN

AUTO_SCHEDULE = "calendar-auto-schedule"
PRINCIPAL_SEARCH = "calendarserver-principal-search"  # Apple Calendar searches when it is said


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


def _fill(tag: str, kind: str, who: Principal, prefix: str) -> ET.Element | None:
    """The value of a scheduling property of a principal (``kind`` "principal") or of its
    inbox or outbox, or None when the property is not one of ours there."""
    home = paths.href(prefix, who.name)
    element = ET.Element(tag)
    if kind == "principal":
        if tag == f"{{{C}}}calendar-user-address-set":
            for address in who.addresses:
                multistatus.href(element, f"mailto:{address}")
            if who.user is not None and not who.addresses:  # how events name them
                multistatus.href(element, f"{USER_URN}{who.user.login}")
            multistatus.href(element, home)
        elif tag == f"{{{C}}}calendar-user-type":
            element.text = who.cutype
        elif tag == f"{{{C}}}schedule-inbox-URL" and who.user is not None:
            multistatus.href(element, paths.href(prefix, who.name, paths.INBOX))
        elif tag == f"{{{C}}}schedule-outbox-URL" and who.user is not None:
            multistatus.href(element, paths.href(prefix, who.name, paths.OUTBOX))
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
    if kind == paths.INBOX and tag == f"{{{C}}}schedule-default-calendar-URL":
        # The user's own calendar, not the interactions one: invitations from outside the
        # CRM are filed there (``outside``).
        multistatus.href(element, paths.href(prefix, who.name, outside.DEFAULT_CALENDAR))
        return element
    return None


def enrich(answer: bytes, prefix: str, describe: Callable[[str], Principal | None]) -> bytes:
    """Radicale's PROPFIND multistatus, with the scheduling properties of principals and of
    schedule inboxes and outboxes filled in (RFC 6638 sections 2.1, 2.2 and 2.4)."""
    root = DefusedET.fromstring(answer)
    changed = False
    for response in root.findall(f"{{{D}}}response"):
        place = paths.Place.of(
            multistatus.unquoted_path(response.findtext(f"{{{D}}}href") or "", prefix)
        )
        kind = "principal" if place.is_principal else place.schedule_box
        if kind is None:
            continue
        who = describe(place.home)
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
            response.append(multistatus.propstat(filled))
    if not changed:
        return answer
    return multistatus.document(root)


class SchedulingPart(Part):
    """The scheduling properties and Schedule-Tags the application adds to Radicale's
    answers."""

    def with_scheduling_props(
        self, answer: types.WSGIResponse, base_prefix: str, path: str
    ) -> types.WSGIResponse:
        """A PROPFIND answer on a principal, an inbox or an outbox, with RFC 6638's
        properties filled in; other answers as they are."""
        status, headers, body, xml = answer
        place = paths.Place.of(path)
        if status != 207 or not isinstance(body, bytes):
            return answer
        if len(place.parts) > 2 or (len(place.parts) == 2 and place.schedule_box is None):
            return answer
        with self.database_session() as session:
            enriched = enrich(body, base_prefix, lambda name: principal(session, name))
        return status, headers, enriched, xml

    def with_default_calendar(self, path: str, user: str) -> None:
        """Make the user's default calendar (RFC 6638 9.2) when they first look at their
        principal, home or inbox, so that it is listed where its URL is named; again if they
        removed it."""
        place = paths.Place.of(path)
        if not user or place.home != user or len(place.parts) > 2:
            return
        if len(place.parts) == 2 and place.schedule_box != paths.INBOX:
            return
        with self.database_session() as session:
            if outside.has_default_calendar(session, user):
                return
        with self._bridge_storage.database.session(write=True) as session:
            outside.default_calendar(session, Directory(session).user(user))

    def _schedule_tags(self, calendar: str, hrefs: list[str]) -> dict[str, str]:
        """The Schedule-Tags of the interactions among ``hrefs`` in the calendar at
        ``calendar`` (any calendar of a home may hold interactions)."""
        collection = self.collection(calendar)
        return collection.schedule_tags(hrefs) if isinstance(collection, Scheduled) else {}

    def with_schedule_tag(
        self, answer: types.WSGIResponse, path: str, written: bool = False
    ) -> types.WSGIResponse:
        """GET, HEAD and PUT of an interaction carry its Schedule-Tag (RFC 6638 section
        3.2.10). A PUT's answer (``written``) carries no ETag: the server rewrote what was
        sent (RFC 4791 section 5.3.4), so the client reads it back."""
        item = paths.Place.of(path).item()
        status, headers, body, xml = answer
        if item is None or status >= 300:
            return answer
        calendar, href = item
        done = self._bridge_storage.written_interaction(href)
        tag = done.schedule_tag if done is not None else None
        if tag is None and not written:
            tag = self._schedule_tags(calendar, [href]).get(href)
        if tag is None:
            return answer
        headers = fields(headers)
        headers["Schedule-Tag"] = tag
        if written:
            headers.pop("ETag", None)
        return status, headers, body, xml

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
            path = multistatus.unquoted_path(response.findtext(f"{{{D}}}href") or "", base_prefix)
            found = paths.Place.of(path).item()
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
            response.append(multistatus.propstat([tag]))
        return status, headers, multistatus.document(root), xml

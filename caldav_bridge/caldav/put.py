"""PUT: Radicale's, once the object is checked (what Radicale would refuse without a reason, or
not at all) and its TEXT values escaped; a meeting's answer carries its Schedule-Tag, and its
stored representation when the client prefers it (RFC 7240)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from icalendar import Calendar, Component
from icalendar.parser import Contentline, Contentlines
from icalendar.prop import vText, vUnknown
from radicale import httputils, types
from radicale import item as radicale_item
from radicale.app.put import ApplicationPartPut
from sqlalchemy import select

from caldav_bridge.caldav import headers, paths
from caldav_bridge.caldav.base import buffered, fields, text, with_body
from caldav_bridge.caldav.scheduling import SchedulingPart
from caldav_bridge.domain import per_user, recurrence, validation
from caldav_bridge.domain.errors import InvalidInput
from caldav_bridge.domain.models import Interaction, User

_MAX_ATTENDEES = 500
_MAX_NESTING = 4  # VCALENDAR > VEVENT > VALARM, VTIMEZONE > STANDARD: never deeper


def _nesting(component: Any, depth: int = 1) -> int:
    if depth > _MAX_NESTING:
        return depth
    return max([depth, *(_nesting(sub, depth + 1) for sub in component.subcomponents)])


def _check_component(component: Component, uids: set[str]) -> None:
    """Refuse what one component holds that no calendar may; gather its UID in ``uids``."""
    for name, error in component.errors:
        raise InvalidInput(f"{component.name} {name}: {error}")
    if component.name in ("VEVENT", "VTODO", "VJOURNAL"):
        if "UID" not in component:
            raise InvalidInput(f"a {component.name} has no UID")
        uids.add(validation.uid(str(component["UID"]), f"the UID of a {component.name}"))
        attendees = component.get("ATTENDEE", [])
        attendees = attendees if isinstance(attendees, list) else [attendees]
        if len(attendees) > _MAX_ATTENDEES:
            raise InvalidInput(f"an event has at most {_MAX_ATTENDEES} attendees")
        if any(not str(a).strip() for a in [*attendees, component.get("ORGANIZER", "x")]):
            raise InvalidInput("an ATTENDEE or the ORGANIZER has no address")
    if component.name == "VEVENT" and "DTSTART" in component and "DTEND" in component:
        start, end = component.decoded("DTSTART"), component.decoded("DTEND")
        floating = {getattr(m, "tzinfo", None) is None for m in (start, end)}
        if type(start) is type(end) and len(floating) == 1 and end < start:
            raise InvalidInput("the event ends (DTEND) before it starts (DTSTART)")


def _check_recurrence(component: Component) -> None:
    """Refuse an invalid or runaway RRULE, before Radicale expands it, in any calendar."""
    found = component.get("RRULE")
    for rule in found if isinstance(found, list) else [found] if found is not None else []:
        value = rule.to_ical()
        rule_text = value.decode() if isinstance(value, bytes) else value
        stored = recurrence.checked_rule(rule_text, "UTC")
        if "DTSTART" in component:
            recurrence.check_object_rule(stored, component.decoded("DTSTART"))


def _check_rules(calendar: Calendar, one_object: bool = True, own: bool = False) -> None:
    """Refuse, with a reason, what Radicale would refuse without one (or not at all): values
    that are not what they claim (February 30), components without a UID or with several,
    an end before the start, nesting no calendar has, an invalid or runaway RRULE, too many
    attendees, and occurrences (RECURRENCE-ID) sent without their series, except in a
    calendar of the user's ``own`` (an invitation from outside to one occurrence is kept
    there). A whole calendar (a PUT on a collection: ``one_object`` False) may hold many
    UIDs."""
    if _nesting(calendar) > _MAX_NESTING:
        raise InvalidInput(f"components are nested more than {_MAX_NESTING} deep")
    uids: set[str] = set()
    for component in calendar.walk():
        _check_component(component, uids)
    if one_object and len(uids) > 1:
        raise InvalidInput("one calendar object holds one UID (RFC 4791 4.1): send one each")
    events = calendar.walk("VEVENT")
    if events and not own and all("RECURRENCE-ID" in e for e in events):
        raise InvalidInput(
            "the object holds single occurrences (RECURRENCE-ID) without their series: "
            "send the whole recurring event"
        )
    for component in calendar.walk():
        _check_recurrence(component)


# TEXT properties whose commas separate values (RFC 5545 3.8.1.10, 3.8.8.3; CATEGORIES is
# typed as a list by icalendar already): their commas are left as they are.
_TEXT_LISTS = frozenset({"RESOURCES", "REQUEST-STATUS"})
_TEXT_TYPES = (vText, vUnknown)  # an X- or unknown property's value is TEXT (RFC 5545 3.8.8)


def _texts_escaped(text: str) -> str:
    """``text`` with each TEXT value escaped as RFC 5545 (3.3.11) writes it.

    A comma left unescaped in a single TEXT value (``SUMMARY:Dentist, then lunch``) breaks
    the RFC, but icalendar and calendar clients read the value whole; vobject, which Radicale
    parses a PUT with, reads it as a list and keeps its first item (``Dentist``), in every
    property it does not know as a list (UID and X- properties included). Escaped here, before
    Radicale reads the body, every reader sees the whole value, in the interactions calendar
    and in one's own calendars. Lines without a comma, and values of other types, are left
    as they came."""
    if "," not in text:
        return text
    lines = Contentlines.from_ical(text)  # type: ignore[no-untyped-call]
    changed = False
    for index, line in enumerate(lines):
        if "," not in line:
            continue
        try:
            name, params, raw = line.raw_parts()
            value = line.parts()[2]
        except ValueError:  # not a content line: Radicale says so
            continue
        kind = Component.types_factory.for_property(name, params.get("VALUE"))
        if name.upper() in _TEXT_LISTS or kind not in _TEXT_TYPES:
            continue
        if vText(value).to_ical().decode() != raw:
            lines[index] = Contentline.from_parts(name, params, vText(value), sorted=False)
            changed = True
    return str(lines.to_ical().decode()) if changed else text


class PutPart(SchedulingPart, ApplicationPartPut):
    def do_PUT(
        self,
        environ: types.WSGIEnviron,
        base_prefix: str,
        path: str,
        user: str,
        user_groups: set[str],
        request_info: dict[str, Any],
    ) -> types.WSGIResponse:
        raw, environ = buffered(environ)
        if len(raw) > self._max_resource_size:
            return text(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"a calendar object is at most {self._max_resource_size} bytes",
            )
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            return text(HTTPStatus.BAD_REQUEST, "the body is not valid UTF-8")
        if body.lstrip().upper().startswith("BEGIN:VCALENDAR"):
            try:
                own = paths.Place.of(path).child not in paths.MADE_BY_SERVER
                _check_rules(Calendar.from_ical(body), not path.endswith("/"), own)
            except InvalidInput as exc:  # a TimezoneLimit is a ValueError too
                return text(HTTPStatus.BAD_REQUEST, str(exc))
            except ValueError as exc:
                return text(HTTPStatus.BAD_REQUEST, f"malformed iCalendar: {exc}")
            escaped = _texts_escaped(body).encode()
            if escaped != raw:
                environ = with_body(environ, escaped)
        answer = super().do_PUT(environ, base_prefix, path, user, user_groups, request_info)
        answer = self._with_put_reason(answer, path, body)
        answer = self.with_schedule_tag(answer, path, written=True)
        return self.with_representation(answer, environ, path, user)

    def _with_put_reason(
        self, answer: types.WSGIResponse, path: str, body: str
    ) -> types.WSGIResponse:
        """Radicale's bare 400 for an object it refused (a vCard without UID, one that does not
        parse, a vCard in a calendar or an event in an address book), with its reason: Radicale
        logs it and answers "Bad Request". Its own checks give the reason, run again here only
        for a refusal."""
        if answer[0] != HTTPStatus.BAD_REQUEST or answer[2] != httputils.BAD_REQUEST[2]:
            return answer
        whole = path.endswith("/")
        folder = paths.parent(path)
        parent = None if whole else self.collection(folder)
        try:
            objects = radicale_item.read_components(body)
            tag = getattr(parent, "tag", "") or radicale_item.predict_tag_of_whole_collection(
                objects
            )
            radicale_item.check_and_sanitize_items(objects, 0, is_collection=whole, tag=tag or "")
        except Exception as exc:  # whatever Radicale's parser and checks raise
            return text(HTTPStatus.BAD_REQUEST, f"the object was refused: {exc}")
        return answer

    def with_representation(
        self, answer: types.WSGIResponse, environ: types.WSGIEnviron, path: str, user: str
    ) -> types.WSGIResponse:
        """``Prefer: return=representation`` (RFC 7240) on a PUT of a meeting: the event as
        the server stored it, room answers and SCHEDULE-STATUS included, in the answer: the
        writer's copy (``per_user``)."""
        status, answered, _, xml = answer
        item = paths.Place.of(path).item()
        written = None if item is None else self._bridge_storage.written_interaction(item[1])
        wanted = headers.preferences(environ).get("return") == "representation"
        if written is None or status not in (201, 204) or not wanted:
            return answer
        with self.database_session() as session:
            interaction = session.get(Interaction, written.interaction_id)
            writer = session.scalar(select(User.id).where(User.login == user))
            if interaction is None or writer is None:
                return answer
            text, etag = per_user.copy_for(session, interaction, writer)
        found = fields(answered)
        found.update(
            {
                "Content-Type": "text/calendar",  # Radicale adds the charset
                "ETag": etag,
                "Preference-Applied": "return=representation",
            }
        )
        return 201 if status == 201 else 200, found, text, xml
